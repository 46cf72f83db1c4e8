#!/usr/bin/env bash
# A PostgreSQL server for the farm tests (issue 15): Debian's postgresql package, a cluster of its own
# (initdb in MLCI_PG_DIR, run as the `postgres` user) on port MLCI_PG_PORT, listening on loopback and on
# the test hosts' addresses (MLCI_PG_LISTEN). Role and database `mlci`; its password is generated once
# and kept in $MLCI_PG_DIR/password (0600): tests hand it to libpq as PGPASSWORD, never in a URL.
# Reuses a running cluster. With CI=true any failure fails; elsewhere a one-line notice, and the
# tests marked `postgres` skip with the reason.
#
# Usage: scripts/postgres-ready.sh          (as root: installs the package with apt-get when missing)
set -uo pipefail
dir=${MLCI_PG_DIR:-/tmp/mlci-postgres}
port=${MLCI_PG_PORT:-54329}
listen=${MLCI_PG_LISTEN:-127.0.0.1,10.231.0.1}
ci=false
case "${CI:-}" in 1|true|TRUE|True) ci=true ;; esac

give_up() {
  if $ci; then
    echo "postgres-ready: $1 (CI=true: failing the build)" >&2
    exit 1
  fi
  echo "postgres-ready: $1; the PostgreSQL tests will be skipped (run 'sudo scripts/postgres-ready.sh' to enable them)" >&2
  exit 0
}

[ "$(id -u)" = 0 ] || give_up "needs root to install and start PostgreSQL"
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bindir" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1; } \
    || give_up "apt-get could not install postgresql"
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
fi
[ -n "$bindir" ] || give_up "no PostgreSQL binaries under /usr/lib/postgresql"
as_pg() { runuser -u postgres -- "$@"; }

# The test hosts (network namespaces) reach the server through the bridge mlci-farm0 (10.231.0.1/24).
if command -v ip >/dev/null && ! ip link show mlci-farm0 >/dev/null 2>&1; then
  ip link add mlci-farm0 type bridge 2>/dev/null && ip addr add 10.231.0.1/24 dev mlci-farm0 \
    && ip link set mlci-farm0 up || echo "postgres-ready: no bridge mlci-farm0; the network-namespace tests will skip" >&2
fi

if [ ! -s "$dir/data/PG_VERSION" ]; then
  rm -rf "$dir" && mkdir -p "$dir" && chown postgres: "$dir" && chmod 700 "$dir"
  as_pg sh -c "umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > '$dir/password'"
  as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A peer --auth-host=scram-sha-256 -E UTF8 >/dev/null \
    || give_up "initdb failed"
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '$listen'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
fsync = off
synchronous_commit = off
CONF
  echo "host all mlci 10.231.0.0/24 scram-sha-256" >>"$dir/data/pg_hba.conf"
fi
if ! as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || give_up "the server did not start (see $dir/server.log)"
fi
psql_pg() { as_pg psql -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = 'mlci'")" != 1 ]; then
  password=$(cat "$dir/password")
  psql_pg -c "CREATE ROLE mlci LOGIN CREATEDB PASSWORD '$password'" >/dev/null || give_up "could not create role mlci"
  psql_pg -c "CREATE DATABASE mlci OWNER mlci" >/dev/null || give_up "could not create database mlci"
fi

echo "postgres-ready: postgresql://mlci@127.0.0.1:$port/mlci (password in $dir/password) ready" >&2
