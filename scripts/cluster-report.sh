#!/usr/bin/env bash
# The figures of docs/performance.md, "Several instances on PostgreSQL": issuance and release
# throughput of `ekg serve` (release build, loopback, plain HTTP) on SQLite, on PostgreSQL
# with one instance, and on PostgreSQL with three instances (all on this machine's cores, so
# the third figure shows the cost of coordination, not scaling), with the database's round
# trips per operation read from each instance's /metrics. ROUNDS alternating rounds each;
# medians. PostgreSQL is a throwaway cluster (scripts/pg-cluster.sh).
#
#   scripts/cluster-report.sh [ROUNDS] [REQUESTS] [CLIENTS]   (defaults: 3 rounds, 2000, 4)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
REQUESTS=${2:-2000}
CLIENTS=${3:-4}
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_install() { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"; }
. scripts/pg-cluster.sh
cargo build --release --locked -p ekg >/dev/null 2>&1
EKG=$PWD/target/release/ekg
DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pg_stop
  rm -rf "$DIR"
}
trap cleanup EXIT
pg_start >&2
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT0=$(free_port)
# The demo's files (PKI, storage key, configuration) once: every instance uses them.
$EKG serve --demo --dir "$DIR" --listen "127.0.0.1:$PORT0" >"$DIR/demo.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT0/healthz" >/dev/null && break; sleep 0.1; done
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true; PIDS=()
URI=$(awk -F'"' '/^uri = / { print $2; exit }' "$DIR/ekg.toml")
OUT="$DIR/runs.txt"
: >"$OUT"

# setup NAME INSTANCES DATABASE: starts the instances on a fresh database; URLS lists them.
setup() {
  local name=$1 n=$2 db=$3 urls=() i port
  sed "s|^database = .*|database = \"$db\"|" "$DIR/ekg.toml" >"$DIR/$name.toml"
  chmod 600 "$DIR/$name.toml"
  for i in $(seq "$n"); do
    port=$(free_port)
    $EKG serve --config "$DIR/$name.toml" --listen "127.0.0.1:$port" >"$DIR/$name-$i.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    urls+=("http://127.0.0.1:$port/")
  done
  URLS=$(IFS=,; echo "${urls[*]}")
}
trips() { # the sum of ekg_store_round_trips_total over the URLs
  local total=0 u v
  for u in ${1//,/ }; do
    v=$(curl -sf "${u}metrics" | awk '$1 == "ekg_store_round_trips_total" { print $2 }')
    total=$((total + ${v:-0}))
  done
  echo $total
}
races() {
  local total=0 u v
  for u in ${1//,/ }; do
    v=$(curl -sf "${u}metrics" | awk '$1 == "ekg_store_races_lost_total" { print $2 }')
    total=$((total + ${v:-0}))
  done
  echo $total
}

for r in $(seq "$ROUNDS"); do
  for setup_name in sqlite pg1 pg3; do
    name="$setup_name-$r"
    case $setup_name in
      sqlite) setup "$name" 1 "sqlite:$DIR/$name.db" ;;
      pg1|pg3)
        "$PGBIN/createdb" -h 127.0.0.1 -p "$(echo "$PG_URL" | sed -E 's|.*:([0-9]+)/.*|\1|')" -U ekg "${name//-/_}"
        db="${PG_URL%/*}/${name//-/_}"
        setup "$name" "${setup_name#pg}" "$db" ;;
    esac
    urls=$URLS
    before=$(trips "$urls"); races_before=$(races "$urls")
    $EKG load --target "$urls" --uri "$URI" --pki "$DIR/pki" --requests "$REQUESTS" --duration 60 \
      --concurrency "$CLIENTS" >"$DIR/$name.load"
    after=$(trips "$urls"); races_after=$(races "$urls")
    awk -v s="$setup_name" '$1 == "issuance" || $1 == "release" { print s, $1, $4, $3 } $1 == "rsa-sign" { print s, "rsa", $2, 0 }' \
      "$DIR/$name.load" >>"$OUT"
    echo "$setup_name trips $((after - before)) $((races_after - races_before))" >>"$OUT"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
    echo "cluster-report: round $r $setup_name done" >&2
  done
done

python3 - "$OUT" "$ROUNDS" "$REQUESTS" "$CLIENTS" <<'PY'
import statistics, sys
runs, trips, races, ops = {}, {}, {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[1] == "trips":
        trips.setdefault(f[0], []).append(int(f[2]))
        races.setdefault(f[0], []).append(int(f[3]))
    else:
        runs.setdefault((f[0], f[1]), []).append(float(f[2]))
        ops.setdefault(f[0], []).append(int(f[3]))
names = {"sqlite": "SQLite, 1 instance", "pg1": "PostgreSQL, 1 instance", "pg3": "PostgreSQL, 3 instances"}
print(f"ekg load, {sys.argv[2]} rounds of {sys.argv[3]} requests per operation, {sys.argv[4]} clients; medians (req/s)")
print(f"{'setup':<26} {'issuance':>9} {'release':>9} {'RSA sign':>9} {'round trips/op':>15} {'races lost':>11}")
for s in ("sqlite", "pg1", "pg3"):
    i, r, k = (statistics.median(runs[(s, op)]) for op in ("issuance", "release", "rsa"))
    done = sum(ops[s]) / len(trips[s])  # successful operations (issuances + releases) per round
    per = statistics.median(trips[s]) / done if done else 0
    print(f"{names[s]:<26} {i:>9.1f} {r:>9.1f} {k:>9.1f} {per:>15.2f} {statistics.median(races[s]):>11}")
PY
