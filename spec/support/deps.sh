#!/bin/sh
# Installs the Debian packages neoconn's build, tests and demo need, when
# some are missing. As root it uses apt-get; otherwise it names them.
set -eu
packages="gcc make pkg-config libc6-dev lua5.4 liblua5.4-dev libpq-dev postgresql-15
  postgresql-client-15 lua-busted lua-check lua-dkjson luarocks openssl libssl-dev valgrind
  luajit2 libluajit2-5.1-dev lua5.1 liblua5.1-0-dev liblua5.3-dev
  nginx libnginx-mod-http-lua pgbouncer curl python3-jsonschema lua-ldoc"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "neoconn: missing Debian packages:$missing" >&2
  echo "neoconn: install them as root: apt-get install$missing" >&2
  exit 1
fi
echo "neoconn: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
