std = "max"
files["spec"] = { std = "+busted" }
max_line_length = 110
-- Config files: they define connections, rules and disable_rules, and call env().
files["examples/neoconn.lua"] = { globals = { "connections", "rules", "disable_rules" }, read_globals = { "env" } }
files["examples/demo-config.lua"] = { globals = { "connections", "rules", "disable_rules" }, read_globals = { "env" } }
-- Code that runs inside nginx sees OpenResty's ngx.
files["spec/support/nginx_check.lua"] = { std = "+ngx_lua" }
files["spec/support/nginx_rules.lua"] = { std = "+ngx_lua" }
files["examples/openresty"] = { std = "+ngx_lua" }
files["lua/neoconn/openresty.lua"] = { std = "+ngx_lua" }
exclude_files = { "spec/hostile_configs" } -- hostile config files, broken on purpose
