-- Randomized: the privileges neoconn.test computes from relacl (without a
-- syscache lookup per relation) equal the server's own has_table_privilege,
-- has_column_privilege, has_schema_privilege and has_sequence_privilege for
-- every object and privilege, and a table's owner flags pg_has_role, on
-- random catalogs: group roles in chains, NOINHERIT roles (and memberships
-- WITH INHERIT FALSE on 16+), PUBLIC,
-- owners that are the role, a group or another role, privileges revoked
-- from owners, grant options, column grants, the predefined roles of each
-- version (pg_read_all_data and pg_write_all_data 14+, pg_maintain 17+),
-- and now and then a superuser. NEOCONN_SEED picks other catalogs,
-- NEOCONN_ACL_ROUNDS how many (make test runs a fixed set).
local neoconn = require("neoconn")
local pg = require("pg")
local q = neoconn.quote_ident

local seed = tonumber(os.getenv("NEOCONN_SEED") or "20261127")
local ROUNDS = tonumber(os.getenv("NEOCONN_ACL_ROUNDS") or "8")
local OBJECTS = 10

local TABLE_PRIVILEGES = { "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES",
  "TRIGGER" }
if pg.major >= 17 then TABLE_PRIVILEGES[#TABLE_PRIVILEGES + 1] = "MAINTAIN" end
local SEQUENCE_PRIVILEGES = { "USAGE", "SELECT", "UPDATE" }
local COLUMN_PRIVILEGES = { "SELECT", "INSERT", "UPDATE", "REFERENCES" }
local KINDS = { "TABLE", "TABLE", "TABLE", "VIEW", "PARTITIONED", "MATVIEW", "SEQUENCE" }

local function pick(random, list) return list[random(#list)] end

-- A random subset of list (maybe empty).
local function some(random, list)
  local out = {}
  for _, x in ipairs(list) do
    if random(3) == 1 then out[#out + 1] = x end
  end
  return out
end

-- One random catalog; returns the login role, its password and the schema.
local function build(random)
  local user, password = pg.login_role("acl")
  local groups = {}
  for i = 1, 4 do groups[i] = pg.unique("acl_g" .. i) end
  local other = pg.unique("acl_o")
  local schema = pg.unique("acl_s")
  local sql = {}
  local function add(text) sql[#sql + 1] = text end
  for i, g in ipairs(groups) do
    add(("CREATE ROLE %s %s"):format(q(g), random(3) == 1 and "NOINHERIT" or ""))
    if i > 1 and random(2) == 1 then add(("GRANT %s TO %s"):format(q(g), q(groups[i - 1]))) end
  end
  add(("CREATE ROLE %s"):format(q(other)))
  if random(4) == 1 then add(("ALTER ROLE %s NOINHERIT"):format(q(user))) end
  if random(8) == 1 then add(("ALTER ROLE %s SUPERUSER"):format(q(user))) end
  for _, g in ipairs(some(random, groups)) do
    local option = pg.major >= 16 and random(4) == 1 and " WITH INHERIT FALSE" or ""
    add(("GRANT %s TO %s%s"):format(q(g), q(user), option))
  end
  local predefined = {}
  if pg.major >= 14 then predefined = { "pg_read_all_data", "pg_write_all_data" } end
  if pg.major >= 17 then predefined[#predefined + 1] = "pg_maintain" end
  for _, role in ipairs(some(random, predefined)) do
    add(("GRANT %s TO %s"):format(role, q(random(2) == 1 and user or pick(random, groups))))
  end
  add(("CREATE SCHEMA %s"):format(q(schema)))
  local grantees = { q(user), "PUBLIC", q(other) }
  for _, g in ipairs(groups) do grantees[#grantees + 1] = q(g) end
  local owners = { q(user), q(other), q(groups[1]), q(groups[2]), q(pg.admin_user) }
  add(("GRANT USAGE ON SCHEMA %s TO %s"):format(q(schema), pick(random, grantees)))
  if random(2) == 1 then
    add(("GRANT CREATE ON SCHEMA %s TO %s"):format(q(schema), pick(random, grantees)))
  end
  if random(3) == 1 then
    add(("ALTER SCHEMA %s OWNER TO %s"):format(q(schema), pick(random, owners)))
  end
  for i = 1, OBJECTS do
    local kind = pick(random, KINDS)
    local name = q(schema, "o" .. i)
    local sequence = kind == "SEQUENCE"
    if kind == "TABLE" then
      add(("CREATE TABLE %s (id int, a text, b text)"):format(name))
    elseif kind == "PARTITIONED" then
      add(("CREATE TABLE %s (id int, a text, b text) PARTITION BY RANGE (id)"):format(name))
    elseif kind == "VIEW" then
      add(("CREATE VIEW %s AS SELECT 1 AS id, 'x'::text AS a, 'y'::text AS b"):format(name))
    elseif kind == "MATVIEW" then
      add(("CREATE MATERIALIZED VIEW %s AS SELECT 1 AS id, 'x'::text AS a, 'y'::text AS b")
        :format(name))
    else
      add(("CREATE SEQUENCE %s"):format(name))
    end
    local owner = pick(random, owners)
    add(("ALTER %s %s OWNER TO %s"):format(sequence and "SEQUENCE"
      or kind == "VIEW" and "VIEW" or kind == "MATVIEW" and "MATERIALIZED VIEW" or "TABLE",
      name, owner))
    local privileges = sequence and SEQUENCE_PRIVILEGES or TABLE_PRIVILEGES
    local on = sequence and "SEQUENCE " or "TABLE "
    for _ = 1, random(4) - 1 do
      local granted = some(random, privileges)
      local grantee = pick(random, grantees)
      if #granted > 0 then
        -- PUBLIC cannot hold grant options.
        add(("GRANT %s ON %s%s TO %s%s"):format(table.concat(granted, ", "), on, name, grantee,
          grantee ~= "PUBLIC" and random(4) == 1 and " WITH GRANT OPTION" or ""))
      end
    end
    if random(3) == 1 then
      local revoked = some(random, privileges)
      if #revoked > 0 then
        add(("REVOKE %s ON %s%s FROM %s"):format(table.concat(revoked, ", "), on, name, owner))
      end
    end
    if not sequence and random(2) == 1 then
      add(("GRANT %s (%s) ON %s TO %s"):format(pick(random, COLUMN_PRIVILEGES),
        pick(random, { "a", "b", "a, b" }), name, pick(random, grantees)))
    end
  end
  pg.exec(table.concat(sql, "; "))
  return user, password, schema
end

-- What the server says, asked as an administrator about the role.
local function server_truth(user, schema)
  local relations = pg.exec([[
    SELECT c.relname AS name, c.relkind = 'S' AS sequence, c.oid::int AS oid,
      c.relowner = to_regrole(quote_ident($2))::oid AS owner_is_self,
      pg_has_role($2, c.relowner, 'USAGE') AS owner_is_member
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S')]], { schema, user })
  local truth = {}
  for _, r in ipairs(relations) do
    local privileges = {}
    for _, p in ipairs(r.sequence and SEQUENCE_PRIVILEGES or TABLE_PRIVILEGES) do
      local fn = r.sequence and "has_sequence_privilege" or "has_table_privilege"
      privileges[p] = pg.exec(("SELECT %s($1, $2::oid, $3) AS ok"):format(fn),
        { user, tostring(r.oid), p })[1].ok
    end
    local columns
    if not r.sequence then
      columns = {}
      for _, p in ipairs({ "SELECT", "INSERT", "UPDATE" }) do
        local held = pg.exec([[
          SELECT count(*) FILTER (WHERE has_column_privilege($1, a.attrelid, a.attnum, $2))::int AS yes,
            count(*)::int AS n
          FROM pg_attribute a WHERE a.attrelid = $3::oid AND a.attnum > 0 AND NOT a.attisdropped]],
          { user, p, tostring(r.oid) })[1]
        columns[p] = held.yes == held.n and "all" or held.yes > 0 and "some" or "none"
      end
    end
    truth[r.name] = { sequence = r.sequence, privileges = privileges, columns = columns,
      owner = not r.sequence and { is_self = r.owner_is_self, is_member = r.owner_is_member } or nil }
  end
  local s = pg.exec("SELECT has_schema_privilege($1, $2, 'USAGE') AS usage,"
    .. " has_schema_privilege($1, $2, 'CREATE') AS \"create\"", { user, schema })[1]
  return truth, s
end

describe("privileges computed from the catalog's ACLs", function()
  local random = pg.random(seed)
  for round = 1, ROUNDS do
    it(("equal the server's has_*_privilege on random catalog %d (seed %d)"):format(round, seed),
      function()
        local user, password, schema = build(random)
        -- The rounds take turns: the whole catalog (whose relations with
        -- column ACLs are found by another query than a scope's, keeping
        -- the random schema's part), the schema, and its relations listed
        -- (queries planned in their written join order; sequences only as
        -- a listed table's own, so those are compared in the other two).
        local mode = ({ "whole", "schema", "listed" })[round % 3 + 1]
        local options = {}
        if mode == "schema" then options.schemas = { schema } end
        if mode == "listed" then
          options.tables = {}
          for _, r in ipairs(pg.exec("SELECT c.relname AS name FROM pg_class c"
            .. " JOIN pg_namespace n ON n.oid = c.relnamespace"
            .. " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')", { schema })) do
            options.tables[#options.tables + 1] = { schema = schema, name = r.name }
          end
        end
        local report = neoconn.test(pg.target(user, password), options)
        assert.is_true(report.ok, tostring(report.error))
        local truth, schema_truth = server_truth(user, schema)
        local seen = 0
        -- Each relation of the report against the server's answer for it.
        local function compare(list, sequence)
          for _, x in ipairs(list) do
            local want, where = truth[x.name], ("%s.%s"):format(schema, x.name)
            if x.schema == schema then
              assert.are.equal(sequence, want.sequence, where)
              for p, held in pairs(want.privileges) do
                assert.are.equal(held, x.privileges[p] == true, where .. " " .. p)
              end
              for p, coverage in pairs(want.columns or {}) do
                assert.are.equal(coverage, x.columns[p], where .. " columns " .. p)
              end
              if want.owner then
                assert.are.same(want.owner, { is_self = x.owner.is_self, is_member = x.owner.is_member },
                  where .. " owner")
              end
              seen = seen + 1
            end
          end
        end
        compare(report.tables, false)
        if mode ~= "listed" then compare(report.sequences, true) end
        local count = 0
        for _, want in pairs(truth) do
          if mode ~= "listed" or not want.sequence then count = count + 1 end
        end
        assert.are.equal(count, seen)
        for _, s in ipairs(report.schemas) do
          if s.name == schema then
            assert.are.equal(schema_truth.usage, s.usage)
            assert.are.equal(schema_truth.create, s.create)
          end
        end
      end)
  end
end)
