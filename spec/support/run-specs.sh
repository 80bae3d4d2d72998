#!/bin/sh
# Runs the busted specs once per interpreter named (lua5.4, luajit, ...),
# each against its own build; fails if any run fails. Run inside
# with-cluster.sh. NEOCONN_EXCLUDE_TAGS: busted tags to leave out (the
# version matrix leaves out #client, the specs that never reach a server).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
status=0
for lua in "$@"; do
  echo "== specs under $lua"
  LUA=$lua "$lua" /usr/bin/busted --lpath="$top/lua/?.lua;$top/lua/?/init.lua" \
    --cpath="$top/build/$lua/?.so" ${NEOCONN_EXCLUDE_TAGS:+--exclude-tags="$NEOCONN_EXCLUDE_TAGS"} \
    "$top/spec" || status=1
done
exit $status
