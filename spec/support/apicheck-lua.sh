#!/bin/sh
# Builds build/apicheck/lua: Debian's Lua 5.4 (its source package, fetched
# with apt-get source through a private list, so the machine's apt setup is
# untouched) compiled with LUA_USE_APICHECK, so that any misuse of the C API
# by neoconn (a push past the stack's end, a bad index) aborts at once.
# `make memcheck` runs the specs on it under valgrind. Prints its path.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out="$top/build/apicheck"
if [ -x "$out/lua" ]; then echo "$out/lua"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial"
echo "deb-src http://deb.debian.org/debian bookworm main" >"$work/sources.list"
apt_opts="-o Dir::Etc::SourceList=$work/sources.list -o Dir::Etc::SourceParts=/dev/null"
apt_opts="$apt_opts -o Dir::State::Lists=$work/lists -o APT::Sandbox::User=root"
# shellcheck disable=SC2086
apt-get $apt_opts update >/dev/null
# shellcheck disable=SC2086
(cd "$work" && apt-get $apt_opts source --download-only lua5.4 >/dev/null 2>&1)
tar -xzf "$work"/lua5.4_*.orig.tar.gz -C "$work"
src=$(ls -d "$work"/lua-5.4*/src)
make -s -C "$src" linux MYCFLAGS="-DLUA_USE_APICHECK -g" >/dev/null
mkdir -p "$out"
cp "$src/lua" "$out/lua"
echo "$out/lua"
