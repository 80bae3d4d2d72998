-- A realistic neoconn config: a production source, a staging destination,
-- and two house rules. Check it with:  neoconn check examples/neoconn.lua
-- Secrets come from the environment through env("NAME").

connections = {
  prod_src = {
    url = "postgresql://sync_reader@db1.internal:5432/app?sslmode=verify-full",
    sslrootcert = "/etc/ssl/certs/internal-ca.pem",
    password = env("PROD_SYNC_PW"),
    kind = "source",
    schemas = { "public", "billing" },
  },
  stage_dst = {
    host = "db2.internal", port = 5432, dbname = "app", user = "sync_loader",
    password = env("STAGE_SYNC_PW"), sslmode = "require",
    kind = "destination",
    tables = { "public.users", "public.orders", { schema = "Odd Schema", name = "a.b" } },
    truncate = true, on_conflict = "update", reset_sequences = true,
    -- Staging has no CA bundle yet: accept sslmode=require there.
    disable_rules = { "insecure_sslmode" },
  },
}

rules = {
  -- A source must never be able to change what it reads: an error, not
  -- just the built-in warning.
  source_read_only = function(ctx)
    if ctx.kind ~= "source" then return end
    for t in ctx.tables() do
      for _, p in ipairs({ "INSERT", "UPDATE", "DELETE", "TRUNCATE" }) do
        if t.privileges[p] then
          ctx.error({ object_type = "table", schema = t.schema, name = t.name, missing = {},
            message = "source roles must be read-only, but it has " .. p,
            fix = "REVOKE " .. p .. " ON TABLE " .. ctx.quote(t.schema, t.name)
              .. " FROM " .. ctx.quote(ctx.role) .. ";" })
        end
      end
    end
  end,

  -- Nothing in the audit schema may be writable by a sync role.
  audit_untouchable = function(ctx)
    for t in ctx.tables() do
      if t.schema == "audit" and (t.privileges.INSERT or t.privileges.UPDATE
          or t.privileges.DELETE or t.privileges.TRUNCATE) then
        ctx.error({ object_type = "table", schema = t.schema, name = t.name,
          message = "tables in schema audit must not be writable by sync roles" })
      end
    end
  end,
}
