#!/bin/sh
# Runs the busted specs once per interpreter named (lua5.4, luajit, ...),
# each against its own build; fails if any run fails. Run inside
# with-cluster.sh. NEOCONN_EXCLUDE_TAGS: busted tags to leave out (the
# version matrix leaves out #client, the specs that never reach a server).
# Specs tagged #once (the build's objects, make install of every
# interpreter, the harness, the README's shape) run under the first
# interpreter only: under another they would do the same work again.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
status=0
exclude=${NEOCONN_EXCLUDE_TAGS:-}
for lua in "$@"; do
  echo "== specs under $lua"
  LUA=$lua "$lua" /usr/bin/busted --lpath="$top/lua/?.lua;$top/lua/?/init.lua" \
    --cpath="$top/build/$lua/?.so" ${exclude:+--exclude-tags="$exclude"} \
    "$top/spec" || status=1
  exclude=${exclude:+$exclude,}once
done
exit $status
