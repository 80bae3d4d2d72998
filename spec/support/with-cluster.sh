#!/usr/bin/env bash
# Runs a command next to a throwaway PostgreSQL (Debian's 15, or the server
# whose bin directory NEOCONN_PGBIN names): a cluster in a temporary
# directory on private ports and a private socket, SCRAM passwords, TLS with
# a generated certificate, client certificates from a CA of its own; a hot
# standby of it; a second copy without TLS; a listener that never answers
# and one that closes at once; Debian's pgbouncer in front of the primary,
# TLS only, one database per pool mode. Everything is stopped and removed when the command ends, however it ends. As root, the
# server runs as the postgres user (it refuses root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
debian_bin=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v initdb)")
# NEOCONN_PGBIN: another server's bin directory (make test's version matrix).
pgbin=${NEOCONN_PGBIN:-$debian_bin}
pgbin=$(cd "$pgbin" && pwd)
server_major=$("$pgbin/postgres" --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')
# TMPDIR: where the clusters live (their sockets too: keep it short, a
# socket path has at most 107 bytes).
tmpdir=${TMPDIR:-/tmp}
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -w "$tmpdir"; then
  echo "neoconn: TMPDIR=$tmpdir: the postgres user must be able to write there (the test servers run as postgres)" >&2
  exit 1
fi
# As root, the servers run as postgres, which may not be able to enter the
# directory holding a server build (a clone in a 0700 home or mktemp -d):
# then they run from a copy postgres can read, made once per build.
# Prints the bin directory to run the build of bin directory $1 from.
readable_bin() {
  local bin=$1 major build stamp cache partial
  if [ "$(id -u)" != 0 ] || runuser -u postgres -- test -x "$bin/postgres"; then
    echo "$bin"; return
  fi
  major=$("$bin/postgres" --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')
  build=$(dirname "$bin")
  stamp=$(stat -c '%d-%i-%Y' "$bin/postgres")
  cache="$tmpdir/neoconn-servers/$major-$stamp"
  if [ ! -x "$cache/bin/postgres" ]; then
    mkdir -p "$tmpdir/neoconn-servers"
    chmod 755 "$tmpdir/neoconn-servers"
    partial=$(mktemp -d "$tmpdir/neoconn-servers/partial.XXXXXX")
    cp -a "$build/." "$partial/"
    chmod -R a+rX "$partial"
    chmod 755 "$partial"
    mv -T "$partial" "$cache" 2>/dev/null || rm -rf "$partial" # another run made it first
  fi
  echo "$cache/bin"
}
pgbin=$(readable_bin "$pgbin")
# The other server: another major version, the far side of the specs' jobs
# (Debian's 15 beside a build of the matrix; 13 beside Debian's 15, when
# the test servers are installed).
other_bin=
if [ "$server_major" != 15 ]; then
  other_bin=$debian_bin
elif [ -x "$top/node_modules/pg13/native/bin/postgres" ]; then
  other_bin=$(readable_bin "$top/node_modules/pg13/native/bin")
fi
tmp=$(cd "$(mktemp -d "$tmpdir/neoconn-test.XXXXXX")" && pwd)
chmod 755 "$tmp"
pids=()

# From /: the server tools read their working directory, and complain on
# the terminal when postgres may not enter it (a clone in mktemp -d).
as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

command_pid=
cleanup() {
  set +e
  [ -n "$command_pid" ] && kill "$command_pid" 2>/dev/null && wait "$command_pid" 2>/dev/null
  command_pid=
  [ -f "$tmp/nginx/nginx.pid" ] && kill "$(cat "$tmp/nginx/nginx.pid")" 2>/dev/null
  [ -f "$tmp/pgbouncer/pgbouncer.pid" ] && kill "$(cat "$tmp/pgbouncer/pgbouncer.pid")" 2>/dev/null
  for d in standby data plain; do
    [ -f "$tmp/$d/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$tmp/$d" -m immediate -w stop >/dev/null 2>&1
  done
  [ -f "$tmp/other/postmaster.pid" ] && as_pg "$other_bin/pg_ctl" -D "$tmp/other" -m immediate -w stop >/dev/null 2>&1
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Ports below 32768: the kernel hands out 32768-60999 to clients' own
# sockets, and a server there can collide with one.
# NEOCONN_TEST_PORT_BASE: the first port to try (1024-32700); the ports
# after it that are free are taken in order.
if [ -n "${NEOCONN_TEST_PORT_BASE:-}" ]; then
  case $NEOCONN_TEST_PORT_BASE in
    *[!0-9]*) echo "neoconn: NEOCONN_TEST_PORT_BASE must be a port number" >&2; exit 1 ;;
  esac
  if [ "$NEOCONN_TEST_PORT_BASE" -lt 1024 ] || [ "$NEOCONN_TEST_PORT_BASE" -gt 32700 ]; then
    echo "neoconn: NEOCONN_TEST_PORT_BASE must be 1024-32700 (below the kernel's ephemeral ports)" >&2
    exit 1
  fi
  next_port=$NEOCONN_TEST_PORT_BASE
else
  next_port=$((20000 + ($$ * 7) % 12000))
fi
# Sets the named variable to a port nothing listens on (no subshell, so
# successive calls hand out different ports).
take_port() {
  while ! port_free "$next_port"; do
    next_port=$((next_port + 1))
    [ "$next_port" -ge 32768 ] && next_port=20000
  done
  printf -v "$1" '%s' "$next_port"; next_port=$((next_port + 1))
}

admin=neoconn_admin
admin_pw="admin-$RANDOM$RANDOM"
take_port port; take_port plain_port; take_port silent_port; take_port refused_port
take_port standby_port; take_port closing_port; take_port pooler_port; take_port proxy_port
take_port tls_closing_port; take_port http_port; take_port ssh_port; take_port tls_only_port
take_port other_port

mkdir -p "$tmp/sock"
echo "$admin_pw" >"$tmp/pwfile"
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$tmp/server.key" -out "$tmp/server.crt" >/dev/null 2>&1
chmod 600 "$tmp/server.key"
# A CA for client certificates, which the primary trusts (ssl_ca_file);
# specs issue their client certificates from it.
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=neoconn test client CA" \
  -keyout "$tmp/client-ca.key" -out "$tmp/client-ca.crt" >/dev/null 2>&1
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$tmp"

as_pg "$pgbin/initdb" -D "$tmp/data" -U "$admin" --pwfile="$tmp/pwfile" \
  --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$tmp/initdb.log" 2>&1 \
  || { cat "$tmp/initdb.log"; exit 1; }
cat >"$tmp/data/pg_hba.conf" <<HBA
local all all trust
local replication all trust
host all neoconn_hba_rejected 127.0.0.1/32 reject
hostssl all neoconn_cert_only 127.0.0.1/32 cert
hostssl all neoconn_cert_full 127.0.0.1/32 scram-sha-256 clientcert=verify-full
hostnossl all neoconn_nossl_rejected 127.0.0.1/32 reject
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
HBA
as_pg cp -a "$tmp/data" "$tmp/plain"
common="listen_addresses = 'localhost'
unix_socket_directories = '$tmp/sock'
password_encryption = 'scram-sha-256'
max_connections = 150
max_locks_per_transaction = 1024
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
# autoanalyze writes pg_statistic and so takes a transaction ID: off, so the
# specs proving that a test consumes none see only their own.
autovacuum = off"
as_pg sh -c "cat >>'$tmp/data/postgresql.conf'" <<CONF
$common
port = $port
ssl = on
ssl_cert_file = '$tmp/server.crt'
ssl_key_file = '$tmp/server.key'
ssl_ca_file = '$tmp/client-ca.crt'
wal_level = logical
CONF
as_pg sh -c "cat >>'$tmp/plain/postgresql.conf'" <<CONF
$common
port = $plain_port
ssl = off
CONF
for d in data plain; do
  as_pg "$pgbin/pg_ctl" -D "$tmp/$d" -l "$tmp/$d.log" -w -t 60 start >/dev/null \
    || { cat "$tmp/$d.log"; exit 1; }
done

other_major=
if [ -n "$other_bin" ]; then
  as_pg "$other_bin/initdb" -D "$tmp/other" -U "$admin" --pwfile="$tmp/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$tmp/initdb-other.log" 2>&1 \
    || { cat "$tmp/initdb-other.log"; exit 1; }
  as_pg sh -c "cat >>'$tmp/other/postgresql.conf'" <<CONF
$common
port = $other_port
ssl = off
CONF
  as_pg "$other_bin/pg_ctl" -D "$tmp/other" -l "$tmp/other.log" -w -t 60 start >/dev/null \
    || { cat "$tmp/other.log"; exit 1; }
  other_major=$("$other_bin/postgres" --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')
fi

# The standby: a base backup that follows the primary (-R), on its own port,
# made by Debian's pg_basebackup, which takes servers up to its own 15 (the
# server builds of other versions ship none); for newer ones by hand.
if [ "$server_major" -le 15 ]; then
  as_pg "$debian_bin/pg_basebackup" -D "$tmp/standby" -h "$tmp/sock" -p "$port" -U "$admin" -R \
    -X stream >"$tmp/basebackup.log" 2>&1 || { cat "$tmp/basebackup.log"; exit 1; }
  # The primary_conninfo pg_basebackup 15 writes has options (sslsni) an
  # older server's libpq refuses: a minimal one of its own.
  as_pg sh -c "sed -i '/^primary_conninfo/d' '$tmp/standby/postgresql.auto.conf'
    echo \"primary_conninfo = 'host=$tmp/sock port=$port user=$admin'\" >>'$tmp/standby/postgresql.auto.conf'
    echo 'port = $standby_port' >>'$tmp/standby/postgresql.conf'"
  as_pg "$pgbin/pg_ctl" -D "$tmp/standby" -l "$tmp/standby.log" -w -t 60 start >/dev/null \
    || { cat "$tmp/standby.log"; exit 1; }
else
  # 16 and later: a low-level base backup in one session of Debian's psql:
  # pg_backup_start, a copy of the data directory, pg_backup_stop, whose
  # label goes into the copy; the standby streams the rest from the primary.
  as_pg "$debian_bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$tmp/sock" -p "$port" -U "$admin" \
    -d postgres >"$tmp/backup.log" 2>&1 <<SQL || { cat "$tmp/backup.log"; exit 1; }
SELECT pg_backup_start('neoconn standby', true);
\! cp -a '$tmp/data' '$tmp/standby' && rm -f '$tmp/standby/postmaster.pid' '$tmp/standby/postmaster.opts'
\o '$tmp/standby/backup_label'
SELECT labelfile FROM pg_backup_stop(false);
SQL
  as_pg sh -c "touch '$tmp/standby/standby.signal'
    echo \"primary_conninfo = 'host=$tmp/sock port=$port user=$admin'\" >>'$tmp/standby/postgresql.auto.conf'
    echo 'port = $standby_port' >>'$tmp/standby/postgresql.conf'"
  as_pg "$pgbin/pg_ctl" -D "$tmp/standby" -l "$tmp/standby.log" -w -t 60 start >/dev/null \
    || { cat "$tmp/standby.log"; exit 1; }
fi

# pgbouncer: clients authenticate with SCRAM against the server's own
# verifiers (auth_query as the admin, over the trusted socket) and must use
# TLS. neoconn_gone points at a database the server lacks; neoconn_badlogin
# logs in to the server with a password the server refuses.
pgbouncer=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
mkdir -p "$tmp/pgbouncer"
upstream="host=$tmp/sock port=$port"
cat >"$tmp/pgbouncer/pgbouncer.ini" <<INI
[databases]
neoconn_session = $upstream dbname=neoconn_test pool_mode=session
neoconn_transaction = $upstream dbname=neoconn_test pool_mode=transaction
neoconn_statement = $upstream dbname=neoconn_test pool_mode=statement
neoconn_gone = $upstream dbname=neoconn_no_such_database
neoconn_badlogin = host=127.0.0.1 port=$port dbname=postgres user=neoconn_pooler_login password=wrong
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pooler_port
unix_socket_dir =
auth_type = hba
auth_hba_file = $tmp/pgbouncer/hba.conf
auth_file = $tmp/pgbouncer/userlist.txt
auth_user = $admin
client_tls_sslmode = require
client_tls_cert_file = $tmp/server.crt
client_tls_key_file = $tmp/server.key
query_wait_timeout = 2
max_client_conn = 200
default_pool_size = 20
logfile = $tmp/pgbouncer/pgbouncer.log
pidfile = $tmp/pgbouncer/pgbouncer.pid
INI
printf '"%s" "%s"\n' "$admin" "$admin_pw" >"$tmp/pgbouncer/userlist.txt"
cat >"$tmp/pgbouncer/hba.conf" <<HBA
host all neoconn_pooler_rejected 127.0.0.1/32 reject
host all all 127.0.0.1/32 scram-sha-256
HBA
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$tmp/pgbouncer"
as_pg "$pgbouncer" -d -q "$tmp/pgbouncer/pgbouncer.ini" \
  || { cat "$tmp/pgbouncer/pgbouncer.log"; exit 1; }
for _ in $(seq 100); do port_free "$pooler_port" || break; sleep 0.1; done
port_free "$pooler_port" && { echo "pgbouncer did not start" >&2; cat "$tmp/pgbouncer/pgbouncer.log"; exit 1; }

"$top/build/tools/silent_listener" "$silent_port" 3600 &
pids+=($!)
"$top/build/tools/silent_listener" "$closing_port" 3600 close &
pids+=($!)
"$top/build/tools/tls_closer" "$tls_closing_port" "$tmp/server.crt" "$tmp/server.key" 3600 &
pids+=($!)
# Other services on a port a target may name by mistake.
"$top/build/tools/silent_listener" "$http_port" 3600 http &
pids+=($!)
"$top/build/tools/silent_listener" "$ssh_port" 3600 ssh &
pids+=($!)
"$top/build/tools/tls_closer" "$tls_only_port" "$tmp/server.crt" "$tmp/server.key" 3600 raw &
pids+=($!)

export NEOCONN_TEST_HOST=127.0.0.1
export NEOCONN_TEST_PORT=$port
export NEOCONN_TEST_PLAIN_PORT=$plain_port
export NEOCONN_TEST_STANDBY_PORT=$standby_port
export NEOCONN_TEST_SILENT_PORT=$silent_port
export NEOCONN_TEST_CLOSING_PORT=$closing_port
export NEOCONN_TEST_POOLER_PORT=$pooler_port
export NEOCONN_TEST_REFUSED_PORT=$refused_port
export NEOCONN_TEST_PROXY_PORT=$proxy_port
export NEOCONN_TEST_TLS_CLOSING_PORT=$tls_closing_port
export NEOCONN_TEST_HTTP_PORT=$http_port
export NEOCONN_TEST_SSH_PORT=$ssh_port
export NEOCONN_TEST_TLS_ONLY_PORT=$tls_only_port
export NEOCONN_TEST_SOCKET=$tmp/sock
# The other server (another major version; unset when none is installed).
export NEOCONN_TEST_OTHER_PORT=${other_major:+$other_port}
export NEOCONN_TEST_OTHER_MAJOR=$other_major
export NEOCONN_TEST_CA=$tmp/server.crt
export NEOCONN_TEST_CLIENT_CA=$tmp/client-ca.crt
export NEOCONN_TEST_CLIENT_CA_KEY=$tmp/client-ca.key
export NEOCONN_TEST_ADMIN=$admin
export NEOCONN_TEST_SERVER_MAJOR=$server_major
export NEOCONN_TEST_ADMIN_PASSWORD=$admin_pw
export NEOCONN_TEST_TMP=$tmp
export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;${LUA_PATH:-;}"
export LUA_CPATH="$top/build/${LUA:-lua5.4}/?.so;${LUA_CPATH:-;}"
cd "$top"
set +e
# The command runs in the background and is waited for: bash runs a trap
# only once the foreground command has ended, so a TERM to this script (a
# CI timeout) would otherwise leave the command and the servers running
# until the command finished by itself. A background command ignores
# SIGINT, so an interrupt reaches it through cleanup's kill; it keeps
# this script's standard input.
"$@" <&0 &
command_pid=$!
wait "$command_pid"
status=$?
command_pid=
exit $status
