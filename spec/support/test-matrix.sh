#!/bin/sh
# The specs under lua5.4 on every other PostgreSQL version the project
# supports (13, 14, 16, 17, 18: the pinned server builds in node_modules;
# 15 is Debian's, run by make test under lua5.4 and luajit). A line per
# version; fails if any version fails. The specs tagged #client never reach
# a server (the config loader, the builds): they ran under both
# interpreters already, and are left out here.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
status=0
for v in 13 14 16 17 18; do
  echo "== PostgreSQL $v"
  NEOCONN_PGBIN="$top/node_modules/pg$v/native/bin" NEOCONN_EXCLUDE_TAGS=client \
    "$top/spec/support/with-cluster.sh" \
    "$top/spec/support/run-specs.sh" lua5.4 || status=1
done
exit $status
