rockspec_format = "3.0"
package = "neoconn"
version = "scm-1"
source = { url = "git+file:///dev/null" }
description = {
  summary = "Can this PostgreSQL connection be used as a sync source or destination?",
  detailed = [[
    A Lua module in C on libpq that connects with a deadline, classifies every
    failure, and reports exactly what the role may do, as PostgreSQL enforces it,
    against what a sync job needs.
  ]],
  license = "MIT",
}
-- dkjson: the CLI's JSON (Debian: lua-dkjson; `make install` builds with
-- --deps-mode=none so the system's copy serves).
dependencies = { "lua >= 5.1", "dkjson >= 2.5" }
external_dependencies = {
  PQ = { header = "libpq-fe.h", library = "pq" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
}
build = {
  type = "builtin",
  modules = {
    ["neoconn.core"] = {
      sources = { "src/args.c", "src/box.c", "src/catalog_sql.c", "src/classify.c", "src/compat.c", "src/conn.c", "src/conninfo.c",
        "src/core.c", "src/errors.c", "src/ident.c", "src/names.c", "src/pipeline.c", "src/probe.c", "src/proof.c",
        "src/replication.c", "src/report.c", "src/report_parts.c", "src/requirements.c", "src/result.c", "src/row_checks.c", "src/layout.c", "src/certificate.c", "src/sandbox.c",
        "src/scope.c", "src/shape.c", "src/test.c", "src/text.c", "src/time.c" },
      libraries = { "pq", "ssl", "crypto" },
      incdirs = { "$(PQ_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(PQ_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      defines = { "_POSIX_C_SOURCE=200809L" },
    },
    ["neoconn"] = "lua/neoconn/init.lua",
    ["neoconn.config"] = "lua/neoconn/config.lua",
    ["neoconn.policy"] = "lua/neoconn/policy.lua",
    ["neoconn.check"] = "lua/neoconn/check.lua",
    ["neoconn.report"] = "lua/neoconn/report.lua",
    ["neoconn.cli"] = "lua/neoconn/cli.lua",
    ["neoconn.job_checks"] = "lua/neoconn/job_checks.lua",
    ["neoconn.cdc_checks"] = "lua/neoconn/cdc_checks.lua",
    ["neoconn.row_checks"] = "lua/neoconn/row_checks.lua",
    ["neoconn.writable"] = "lua/neoconn/writable.lua",
    ["neoconn.endpoint"] = "lua/neoconn/endpoint.lua",
    ["neoconn.document"] = "lua/neoconn/document.lua",
    ["neoconn.fix_sql"] = "lua/neoconn/fix_sql.lua",
    ["neoconn.sandbox"] = "lua/neoconn/sandbox.lua",
    ["neoconn.nginx"] = "lua/neoconn/nginx.lua",
    ["neoconn.job"] = "lua/neoconn/job.lua",
    ["neoconn.jobs_config"] = "lua/neoconn/jobs_config.lua",
    ["neoconn.layout"] = "lua/neoconn/layout.lua",
    ["neoconn.pair"] = "lua/neoconn/pair.lua",
    ["neoconn.pair_checks"] = "lua/neoconn/pair_checks.lua",
    ["neoconn.shard"] = "lua/neoconn/shard.lua",
    ["neoconn.standby"] = "lua/neoconn/standby.lua",
    ["neoconn.prometheus"] = "lua/neoconn/prometheus.lua",
    ["neoconn.openresty"] = "lua/neoconn/openresty.lua",
  },
  install = { bin = { neoconn = "bin/neoconn" } },
}
