#!/usr/bin/env bash
# The specs under lua5.4 on every other PostgreSQL version the project
# supports (13, 14, 16, 17, 18: the pinned server builds in node_modules;
# 15 is Debian's, run by make test under lua5.4 and luajit). A line per
# version; fails if any version fails. The specs tagged #client never reach
# a server (the config loader, the builds): they ran under both
# interpreters already, and are left out here.
#
# Two lanes of versions run side by side, each version on a harness of its
# own (its own servers, ports and directory): most of a run is waiting on
# servers and timeouts, so the two share the machine's cores well.
# NEOCONN_MATRIX_LANES=1 runs them one after another. Each version's output
# is printed whole when its lane is done, in version order.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/neoconn-matrix.XXXXXX")
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait
  rm -rf "$out"
}
trap stop EXIT INT TERM

first_port=${NEOCONN_TEST_PORT_BASE:-$((20000 + ($$ * 7) % 5000))}

# Runs the versions given, one after another, each into $out/VERSION.
lane() {
  local base=$1 v
  shift
  for v in "$@"; do
    # Each lane its own range of ports: harnesses started together would
    # otherwise take the same free ports before either binds them.
    local ports=$((first_port + base))
    [ "$ports" -gt 32700 ] && ports=$((first_port - base))
    NEOCONN_TEST_PORT_BASE=$ports \
    NEOCONN_PGBIN="$top/node_modules/pg$v/native/bin" NEOCONN_EXCLUDE_TAGS=client \
      "$top/spec/support/with-cluster.sh" "$top/spec/support/run-specs.sh" lua5.4 \
      >"$out/$v.log" 2>&1
    echo $? >"$out/$v.status"
  done
}

if [ "${NEOCONN_MATRIX_LANES:-2}" = 1 ]; then
  lane 0 13 14 16 17 18 &
  pids+=($!)
else
  lane 0 13 16 18 &
  pids+=($!)
  lane 6000 14 17 &
  pids+=($!)
fi
wait "${pids[@]}"
pids=()
status=0
for v in 13 14 16 17 18; do
  echo "== PostgreSQL $v"
  cat "$out/$v.log" 2>/dev/null
  [ "$(cat "$out/$v.status" 2>/dev/null)" = 0 ] || status=1
done
exit $status
