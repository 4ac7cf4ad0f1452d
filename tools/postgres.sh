#!/usr/bin/env bash
# A throwaway local PostgreSQL cluster for lstmctl's tests (and for trying `lstmctl tune --storage`).
#
#   tools/postgres.sh          start it (or find it running) and print its URL, e.g.
#                              postgresql+psycopg://lstmctl:lstmctl@127.0.0.1:54321/lstmctl
#   tools/postgres.sh url      print the URL if it is running (exit 1 if not)
#   tools/postgres.sh stop     stop it and delete its files
#
# Needs Debian's `postgresql` package (apt-get install postgresql): initdb into a temporary folder,
# start on a free localhost port, create the role and database `lstmctl`. Idempotent: a second call
# prints the URL of the running cluster. Only for tests: trust authentication on 127.0.0.1, fsync off.
# Run as root (CI containers), the server runs as the `postgres` user, which initdb requires.
# LSTMCTL_PG_DIR chooses the folder (default /tmp/lstmctl-pg-<uid>).
set -euo pipefail

dir="${LSTMCTL_PG_DIR:-${TMPDIR:-/tmp}/lstmctl-pg-$(id -u)}"
action="${1:-start}"

bindir=""
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
  bindir="$(pg_config --bindir)"
elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
  bindir="$(dirname "$(command -v initdb)")"
else
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi

as_server() {  # initdb and postgres refuse to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() {
  [ -f "$dir/url" ] && [ -n "$bindir" ] && as_server "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

case "$action" in
  url)
    running && cat "$dir/url" && exit 0
    exit 1
    ;;
  stop)
    if running; then as_server "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; fi
    rm -rf "$dir"
    exit 0
    ;;
  start) ;;
  *)
    echo "usage: $0 [start|url|stop]" >&2
    exit 2
    ;;
esac

if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "PostgreSQL is not installed (no initdb found); install it with: apt-get install postgresql" >&2
  exit 3
fi

mkdir -p "$dir"
exec 9>"$dir.lock"  # two callers at once: the second waits and then finds the cluster running
flock 9

if running; then
  cat "$dir/url"
  exit 0
fi

rm -rf "$dir/data" "$dir/url"
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
as_server "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_server "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null 9>&- || { cat "$dir/server.log" >&2; exit 1; }  # 9>&-: the server must not hold the lock
as_server "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
  -c "CREATE ROLE lstmctl LOGIN PASSWORD 'lstmctl'" -c "CREATE DATABASE lstmctl OWNER lstmctl" >/dev/null
url="postgresql+psycopg://lstmctl:lstmctl@127.0.0.1:$port/lstmctl"
echo "$url" >"$dir/url"
echo "$url"
