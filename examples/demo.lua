-- `make demo`: a source and a destination role on a throwaway cluster, and
-- a human-readable neoconn.test of each against what its sync job needs.
local neoconn = require("neoconn")
local q = neoconn.quote_ident
local env = os.getenv

local admin = assert(neoconn.connect({ host = env("NEOCONN_TEST_SOCKET"),
  port = env("NEOCONN_TEST_PORT"), user = env("NEOCONN_TEST_ADMIN"), dbname = "postgres" }))
assert(admin:query([[
  CREATE ROLE readers;
  CREATE ROLE sync_source LOGIN PASSWORD 'source-pw' IN ROLE readers;
  CREATE ROLE sync_dest LOGIN PASSWORD 'dest-pw';
  CREATE SCHEMA app; CREATE SCHEMA "Audit Log";
  CREATE TABLE app.users (id serial PRIMARY KEY, email text NOT NULL);
  CREATE TABLE app.orders (id bigserial PRIMARY KEY, user_id int, total numeric);
  CREATE TABLE "Audit Log"."events.2026" (id int, what text);
  ALTER TABLE app.orders ENABLE ROW LEVEL SECURITY;
  GRANT USAGE ON SCHEMA app TO readers;
  GRANT SELECT ON ALL TABLES IN SCHEMA app TO readers;
  GRANT USAGE ON SCHEMA app TO sync_dest;
  GRANT INSERT, UPDATE ON app.users TO sync_dest;
  GRANT INSERT ON app.orders TO sync_dest;
]]))

local function yes(v) return v and "yes" or "no" end

local function show(title, target, kind, opts)
  print(("== %s (%s) =="):format(title, kind))
  local report = neoconn.test(target)
  for _, s in ipairs(report.stages) do
    io.write(("  %-12s %-4s %7.2f ms%s\n"):format(s.name, s.ok and "ok" or "FAIL", s.ms,
      s.skipped and " (not used)" or ""))
  end
  if not report.ok then
    print("  error: " .. tostring(report.error))
    return
  end
  local r = report.role
  print(("  role %s: superuser=%s inherits={%s} ssl=%s"):format(r.name, yes(r.superuser),
    table.concat(r.inherits, ","), yes(report.session.ssl.in_use)))
  local needs = neoconn.requirements(kind, opts)
  local usage = {}
  for _, s in ipairs(report.schemas) do usage[s.name] = s.usage end
  for _, t in ipairs(report.tables) do
    local missing = {}
    if not usage[t.schema] then missing[#missing + 1] = "USAGE on schema" end
    for _, need in ipairs(needs) do
      if need.object_type == "table" then
        for _, p in ipairs(need.privileges) do
          local has = t.privileges[p] or (need.columns_suffice and t.columns[p] == "all")
          if not has then missing[#missing + 1] = p end
        end
      elseif need.id == "policy.insert" and t.rls.applies and not t.rls.insert_policy then
        missing[#missing + 1] = "an INSERT policy (row-level security)"
      end
    end
    print(("  %-28s %s"):format(q(t.schema, t.name),
      #missing == 0 and "usable" or "missing: " .. table.concat(missing, ", ")))
  end
  print()
end

local tcp = { host = "localhost", port = env("NEOCONN_TEST_PORT"), dbname = "postgres",
  sslmode = "verify-full", sslrootcert = env("NEOCONN_TEST_CA") }
local function as(user, password)
  local t = {}
  for k, v in pairs(tcp) do t[k] = v end
  t.user, t.password = user, password
  return t
end
show("source", as("sync_source", "source-pw"), "source")
show("destination", as("sync_dest", "dest-pw"), "destination", { on_conflict = "update" })
show("wrong password", as("sync_dest", "not-the-password"), "destination")
admin:close()
