-- neoconn.requirements describes exactly what a sync job's statements
-- need: a role granted exactly the requirements runs them all, and with any
-- one (not optional) requirement revoked, one of them fails.
local neoconn = require("neoconn")
local pg = require("pg")
local q = neoconn.quote_ident

local db = "neoconn_req"

-- GRANT/REVOKE text for a requirement on the test objects.
local function grant_sql(req, verb, names)
  local to = verb == "GRANT" and " TO " or " FROM "
  local privileges = table.concat(req.privileges, ", ")
  local on = {
    database = "DATABASE " .. q(db),
    schema = "SCHEMA " .. names.schema,
    table = "TABLE " .. names.table,
    sequence = "SEQUENCE " .. names.sequence,
  }
  return verb .. " " .. privileges .. " ON " .. on[req.object_type] .. to .. names.role
end

local function statements(kind, opts, names)
  if kind == "source" then
    return { "SELECT id, v FROM " .. names.table }
  end
  local list = {}
  if opts.on_conflict == "update" then
    list[#list + 1] = "INSERT INTO " .. names.table .. " (id, v) VALUES (1, 'a')"
      .. " ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v"
  else
    list[#list + 1] = "INSERT INTO " .. names.table .. " (id, v) VALUES (1, 'a')"
      .. " ON CONFLICT DO NOTHING"
  end
  if opts.truncate then list[#list + 1] = "TRUNCATE " .. names.table end
  if opts.reset_sequences then
    list[#list + 1] = "SELECT setval('" .. names.sequence:gsub("'", "''") .. "', 10)"
  end
  if opts.init_schema then
    list[#list + 1] = "CREATE TABLE " .. names.schema .. ".created_by_job (id int)"
    list[#list + 1] = "CREATE SCHEMA " .. q(names.new_schema)
  end
  return list
end

local db_exec, admin

local function all_succeed(conn, list)
  for _, sql in ipairs(list) do
    local ok, err = pg.try(conn, sql)
    if not ok then return false, sql .. ": " .. tostring(err) end
  end
  return true
end

local function prove(kind, opts)
  local reqs = neoconn.requirements(kind, opts)
  local user, password = pg.login_role("req")
  local schema = pg.unique("req_s")
  local names = { role = q(user), schema = q(schema), table = q(schema, "T a.b"),
    sequence = q(schema, "T a.b_id_seq"), new_schema = pg.unique("new_s") }
  db_exec(("CREATE SCHEMA %s; CREATE TABLE %s (id bigserial PRIMARY KEY, v text);"
    .. " INSERT INTO %s (v) VALUES ('existing')")
    :format(names.schema, names.table, names.table))
  local granted = {}
  for _, req in ipairs(reqs) do
    if not req.optional and (req.check == "grant" or req.check == "grant_if_schema_missing") then
      db_exec(grant_sql(req, "GRANT", names))
      granted[#granted + 1] = req
    end
  end
  local target = pg.target(user, password, { dbname = db })
  local conn = assert(neoconn.connect(target))
  local list = statements(kind, opts, names)
  assert(all_succeed(conn, list))

  for _, req in ipairs(granted) do
    db_exec(grant_sql(req, "REVOKE", names))
    if req.id == "database.connect" then
      local c2, err = neoconn.connect(target)
      assert.is_nil(c2, "connected without CONNECT")
      assert.are.equal("connect_denied", err.code)
    else
      local ok = all_succeed(conn, list)
      assert.is_false(ok, req.id .. " is not needed by " .. table.concat(list, "; "))
    end
    db_exec(grant_sql(req, "GRANT", names))
  end
  conn:close()
  return reqs
end

describe("neoconn.requirements", function()
  setup(function()
    db_exec, admin = pg.private_database(db)
    db_exec("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    -- A column default only some roles may call.
    db_exec([[CREATE OR REPLACE FUNCTION public.req_stamp() RETURNS text LANGUAGE sql
      AS $$SELECT 'x'$$; REVOKE EXECUTE ON FUNCTION public.req_stamp() FROM PUBLIC]])
  end)
  teardown(function() admin:close() end)

  it("are exactly what a source's SELECT needs", function()
    local reqs = prove("source", {})
    local ids = {}
    for _, r in ipairs(reqs) do ids[#ids + 1] = r.id end
    assert.are.same({ "database.connect", "schema.usage", "table.select", "policy.select",
      "table.statements", "policy.filters_rows" }, ids)
  end)

  it("are exactly what a destination's INSERT ... ON CONFLICT DO NOTHING needs", function()
    prove("destination", {})
  end)

  it("are exactly what an upsert, truncate, setval and schema creation need", function()
    prove("destination", { on_conflict = "update", truncate = true, reset_sequences = true,
      init_schema = true })
  end)

  -- A login role that may connect and use a fresh schema holding one table
  -- of these columns, with the given grants on it; then runs more_sql,
  -- where every %s names the table.
  local function role_with_table(prefix, columns, grants, more_sql)
    local user, password = pg.login_role(prefix)
    db_exec(("GRANT CONNECT ON DATABASE %s TO %s"):format(q(db), q(user)))
    local _, t = pg.schema_with_table(user, prefix, { columns = columns, grant = grants,
      exec = db_exec })
    if more_sql then db_exec((more_sql:gsub("%%s", t))) end
    return assert(neoconn.connect(pg.target(user, password, { dbname = db }))), t, q(user)
  end

  local function requirement(kind, id)
    for _, r in ipairs(neoconn.requirements(kind)) do
      if r.id == id then return r end
    end
  end

  it("mark sequence USAGE optional: needed only when a row takes the column default", function()
    assert.is_true(requirement("destination", "sequence.usage").optional)
    local conn, t = role_with_table("seq", "id serial PRIMARY KEY, v text", "INSERT")
    assert.is_true((pg.try(conn, ("INSERT INTO %s (id, v) VALUES (5, 'x')"):format(t))))
    assert.is_false((pg.try(conn, ("INSERT INTO %s (v) VALUES ('x')"):format(t))))
    conn:close()
  end)

  it("mark function EXECUTE optional: needed only when a row takes the column default", function()
    assert.is_true(requirement("destination", "function.execute").optional)
    local conn, t = role_with_table("fnx", "id int PRIMARY KEY, v text DEFAULT public.req_stamp()",
      "INSERT")
    assert.is_true((pg.try(conn, ("INSERT INTO %s (id, v) VALUES (5, 'x')"):format(t))))
    assert.is_false((pg.try(conn, ("INSERT INTO %s (id) VALUES (6)"):format(t))))
    conn:close()
  end)

  it("fail every insert under row-level security without a permissive INSERT policy", function()
    local conn, t, role = role_with_table("rlsreq", "id int PRIMARY KEY, v text", "INSERT",
      "ALTER TABLE %s ENABLE ROW LEVEL SECURITY")
    local insert = ("INSERT INTO %s (id, v) VALUES (1, 'x') ON CONFLICT DO NOTHING"):format(t)
    assert.is_false((pg.try(conn, insert)))
    db_exec(("CREATE POLICY p ON %s FOR INSERT TO %s WITH CHECK (true)"):format(t, role))
    assert.is_true((pg.try(conn, insert)))
    conn:close()
  end)

  it("need INSERT, UPDATE and SELECT policies for an upsert under row-level security", function()
    local conn, t, role = role_with_table("rlsups", "id int PRIMARY KEY, v text",
      "SELECT, INSERT, UPDATE",
      "INSERT INTO %s VALUES (1, 'old'); ALTER TABLE %s ENABLE ROW LEVEL SECURITY")
    local policies = {
      INSERT = "CREATE POLICY p_insert ON %s FOR INSERT TO %s WITH CHECK (true)",
      UPDATE = "CREATE POLICY p_update ON %s FOR UPDATE TO %s USING (true)",
      SELECT = "CREATE POLICY p_select ON %s FOR SELECT TO %s USING (true)",
    }
    local upsert = ("INSERT INTO %s (id, v) VALUES (1, 'new') ON CONFLICT (id)"
      .. " DO UPDATE SET v = EXCLUDED.v"):format(t)
    for _, sql in pairs(policies) do db_exec(sql:format(t, role)) end
    assert(pg.try(conn, upsert))
    -- policy.insert and policy.update together name exactly these three.
    local named = {}
    for _, r in ipairs(neoconn.requirements("destination", { on_conflict = "update" })) do
      if r.object_type == "policy" then
        for _, p in ipairs(r.privileges) do named[p] = true end
      end
    end
    assert.are.same({ INSERT = true, UPDATE = true, SELECT = true }, named)
    for command, sql in pairs(policies) do
      db_exec(("DROP POLICY p_%s ON %s"):format(command:lower(), t))
      assert.is_false((pg.try(conn, upsert)), "upsert works without the " .. command .. " policy")
      db_exec(sql:format(t, role))
    end
    conn:close()
  end)

  it("reject unknown kinds and options as programmer mistakes", function()
    assert.has_error(function() neoconn.requirements("sink") end)
    assert.has_error(function() neoconn.requirements("destination", { truncat = true }) end)
    assert.has_error(function() neoconn.requirements("destination", { truncate = "yes" }) end)
    assert.has_error(function() neoconn.requirements("destination", { on_conflict = "merge" }) end)
    assert.has_error(function() neoconn.requirements("source", { truncate = true }) end)
  end)
end)
