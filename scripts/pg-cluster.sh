# Sourced by scripts/test and scripts/cluster-report.sh (after apt_install is defined):
# PostgreSQL from Debian's packages when it is missing, and a throwaway cluster (initdb in a
# temporary directory, run as an unprivileged user, on a free loopback port).
#   pg_start: starts it and sets PG_URL (postgres://ekg@127.0.0.1:PORT/postgres)
#   pg_stop:  stops it and removes its directory
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }

pg_start() {
  if [ -z "$(pg_bin)" ]; then
    echo "pg-cluster: installing PostgreSQL"
    apt_install postgresql
  fi
  PGBIN=$(pg_bin)
  [ -x "$PGBIN/initdb" ] || { echo "pg-cluster: PostgreSQL's initdb not found"; return 1; }
  pgdir=$(mktemp -d)
  if [ "$(id -u)" = 0 ]; then
    pguser=postgres
    id "$pguser" >/dev/null 2>&1 || pguser=nobody
    chown "$pguser" "$pgdir"
    as_pg() { runuser -u "$pguser" -- "$@"; }
  else
    as_pg() { "$@"; }
  fi
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    2>/dev/null || echo $((20000 + RANDOM % 20000)))
  as_pg "$PGBIN/initdb" -D "$pgdir/data" -U ekg --auth=trust --no-sync -E UTF8 >"$pgdir/initdb.log" 2>&1 \
    || { cat "$pgdir/initdb.log"; return 1; }
  as_pg "$PGBIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $pgdir -c max_connections=200" start >/dev/null \
    || { cat "$pgdir/server.log"; return 1; }
  PG_URL="postgres://ekg@127.0.0.1:$port/postgres"
  echo "pg-cluster: $("$PGBIN/postgres" --version) on 127.0.0.1:$port (throwaway cluster in $pgdir)"
}

pg_stop() {
  if [ -n "${pgdir:-}" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pgdir"
  fi
}
