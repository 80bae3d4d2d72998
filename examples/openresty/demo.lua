-- `make openresty-demo`: the demo's database on a throwaway cluster, and
-- Debian's nginx serving its check (examples/demo-config.lua) through
-- examples/openresty/nginx.conf, on a free port, in the foreground. Ctrl-C
-- stops nginx, then the cluster (spec/support/with-cluster.sh).
local neoconn = require("neoconn")
local env = os.getenv

local top = env("PWD")
local tmp = env("NEOCONN_TEST_TMP")
local port = env("NEOCONN_TEST_PROXY_PORT")

local admin = assert(neoconn.connect({ host = env("NEOCONN_TEST_SOCKET"),
  port = env("NEOCONN_TEST_PORT"), user = env("NEOCONN_TEST_ADMIN"), dbname = "postgres" }))
dofile("examples/demo_setup.lua")(admin)
admin:close()

-- The example's nginx.conf as it is, but for the port, the pid file (where
-- the harness stops it) and the variables the demo's config reads.
local f = assert(io.open("examples/openresty/nginx.conf"))
local conf = f:read("*a")
f:close()
local function replace(text, from, to)
  local at = assert(text:find(from, 1, true), from)
  return text:sub(1, at - 1) .. to .. text:sub(at + #from)
end
conf = replace(conf, "listen 127.0.0.1:8080;", "listen 127.0.0.1:" .. port .. ";")
conf = replace(conf, "pid logs/nginx.pid;", "pid " .. tmp .. "/nginx/nginx.pid;")
conf = replace(conf, "env NEOCONN_CONFIG;", "env NEOCONN_CONFIG;\nenv NEOCONN_TEST_PORT;\n"
  .. "env NEOCONN_TEST_CA;")
local root = io.popen("id -u"):read("*l") == "0"
os.execute("mkdir -p " .. tmp .. "/nginx")
local path = tmp .. "/nginx/nginx.conf"
f = assert(io.open(path, "w"))
f:write("daemon off;\n", root and "user root;\n" or "", conf)
f:close()

local base = "http://127.0.0.1:" .. port .. "/neoconn"
print("neoconn in nginx, checking examples/demo-config.lua on a throwaway PostgreSQL:")
print("  JSON:        curl " .. base)
print("  Prometheus:  curl '" .. base .. "?format=prometheus'")
print("Ctrl-C stops nginx and the database.")
io.stdout:flush()
local quote = function(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
os.execute(("NEOCONN_CONFIG=%s nginx -e stderr -p %s -c %s"):format(
  quote(top .. "/examples/demo-config.lua"), quote(top .. "/examples/openresty"), quote(path)))
