--- A real nginx with Debian's lua module, for the specs: one worker on a
-- loopback port, prefix inside the cluster's temp dir (with-cluster.sh
-- stops it whatever happens), neoconn loaded from this checkout's LuaJIT
-- build.
local pg = require("pg")

local nginx = {}

local MODULES = "/usr/lib/nginx/modules"

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

--- Starts nginx serving `locations` (nginx.conf text for the server block)
-- with `http` (more text for the http block); returns its base URL.
function nginx.start(locations, http)
  local top = os.getenv("PWD")
  local prefix = os.getenv("NEOCONN_TEST_TMP") .. "/nginx"
  -- A fresh port each time: a stopped nginx may still hold the last one.
  nginx.started = (nginx.started or 0) + 1
  local port = tonumber(pg.refused_port) + 100 + nginx.started
  os.execute("mkdir -p " .. prefix .. "/logs " .. prefix .. "/tmp")
  local root = io.popen("id -u"):read("*l") == "0"
  write(prefix .. "/nginx.conf", ([[
%s
worker_processes 1;
pid %s/nginx.pid;
error_log %s/logs/error.log warn;
load_module %s/ndk_http_module.so;
load_module %s/ngx_http_lua_module.so;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %s/tmp/body;
  proxy_temp_path %s/tmp/proxy;
  fastcgi_temp_path %s/tmp/fastcgi;
  uwsgi_temp_path %s/tmp/uwsgi;
  scgi_temp_path %s/tmp/scgi;
  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;%s/spec/support/?.lua;%s/examples/openresty/?.lua;;";
  lua_package_cpath "%s/build/luajit/?.so;;";
%s
  server {
    listen 127.0.0.1:%d;
%s
  }
}
]]):format(root and "user root;" or "", prefix, prefix, MODULES, MODULES, prefix, prefix, prefix,
    prefix, prefix, top, top, top, top, top, http or "", port, locations))
  local code = pg.execute(("nginx -p %s -c %s/nginx.conf"):format(prefix, prefix))
  assert(code == 0, "nginx did not start: " .. (io.open(prefix .. "/logs/error.log") or
    { read = function() return "" end }):read("*a"))
  nginx.prefix = prefix
  return ("http://127.0.0.1:%d"):format(port)
end

function nginx.stop()
  if nginx.prefix then
    pg.execute(("nginx -p %s -c %s/nginx.conf -s stop 2>/dev/null"):format(nginx.prefix, nginx.prefix))
    nginx.prefix = nil
  end
end

--- The error log, to show when a spec fails.
function nginx.log()
  local f = nginx.prefix and io.open(nginx.prefix .. "/logs/error.log")
  return f and f:read("*a") or ""
end

function nginx.urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

return nginx
