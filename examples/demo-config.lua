-- The config `make demo` checks: roles on the throwaway cluster.
local common = { host = "localhost", port = env("NEOCONN_TEST_PORT"), dbname = "postgres",
  sslmode = "verify-full", sslrootcert = env("NEOCONN_TEST_CA") }
local function connection(fields)
  for k, v in pairs(common) do fields[k] = fields[k] or v end
  return fields
end

connections = {
  app_source = connection({ user = "sync_source", password = "source-pw", kind = "source",
    schemas = { "app", "Audit Log" } }),
  app_destination = connection({ user = "sync_dest", password = "dest-pw", kind = "destination",
    schemas = { "app" }, on_conflict = "update", truncate = true, reset_sequences = true }),
  -- Reads the tables, then their changes through logical replication: the
  -- role lacks REPLICATION and the publication does not exist yet.
  app_cdc = connection({ user = "sync_cdc", password = "cdc-pw", kind = "source",
    schemas = { "app" }, cdc = true, publication = "app_changes" }),
  wrong_password = connection({ user = "sync_dest", password = "not-the-password",
    kind = "destination" }),
}

rules = {
  audit_untouchable = function(ctx)
    for t in ctx.tables() do
      if t.schema == "Audit Log" and (t.privileges.INSERT or t.privileges.DELETE) then
        ctx.error({ object_type = "table", schema = t.schema, name = t.name,
          message = "the audit log must not be writable by sync roles" })
      end
    end
  end,
}
