#!/usr/bin/env bash
# The figures of docs/performance.md, "Memory against the keys held" (issue 24, item 1): the
# same `ekg serve` (release build, loopback) on an empty SQLite store and on one holding N
# pending keys (written beforehand by `ekg load --in-process --prefill`, through the core's
# issuance round), each answering REQUESTS key requests and as many releases from `ekg load`
# over HTTP. Prints, per store, the server's resident memory after start and at its peak
# (VmRSS, VmHWM of the server process alone) and the throughput beside raw RSA signing of the
# same run. Everything on 127.0.0.1; every server is stopped at the end.
#
#   scripts/memory-report.sh [N] [REQUESTS]      (defaults: 1000000 keys, 5000 requests)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
REQUESTS=${2:-5000}
cargo build --release --locked -p ekg >/dev/null 2>&1
EKG=$PWD/target/release/ekg
DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
wait_up() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.1; done; echo "memory-report: the server did not start" >&2; exit 1; }
kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# The demo's files (its gatekeeper URI names PORT), then the server stopped.
$EKG serve --demo --dir "$DIR/demo" --listen "127.0.0.1:$PORT" >"$DIR/demo.log" 2>&1 &
SERVER=$!
wait_up
kill $SERVER; wait $SERVER 2>/dev/null || true; SERVER=

printf '%-10s %9s %9s %9s %10s %10s %10s %8s\n' keys held "rss(MiB)" "peak(MiB)" "iss/s" "rel/s" "rsa/s" "iss/rsa"
for n in 0 "$N"; do
  db="$DIR/store-$n.sqlite"
  if [ "$n" -gt 0 ]; then
    $EKG load --in-process "$DIR/demo/ekg.toml" --pki "$DIR/demo/pki" --database "$db" --prefill "$n" --requests 1 \
      >"$DIR/prefill-$n.log" 2>&1 || { cat "$DIR/prefill-$n.log" >&2; exit 1; }
    grep prefilled "$DIR/prefill-$n.log" >&2
  fi
  sed "s|^database = .*|database = \"sqlite:$db\"|" "$DIR/demo/ekg.toml" >"$DIR/demo/ekg-$n.toml"
  $EKG serve --config "$DIR/demo/ekg-$n.toml" --listen "127.0.0.1:$PORT" >"$DIR/serve-$n.log" 2>&1 &
  SERVER=$!
  wait_up
  rss=$(kib $SERVER VmRSS)
  $EKG load --target "http://127.0.0.1:$PORT/" --pki "$DIR/demo/pki" --requests "$REQUESTS" --duration 60 >"$DIR/load-$n.txt"
  peak=$(kib $SERVER VmHWM)
  held=$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '$1 == "ekg_keys_held" { print $2 }')
  kill $SERVER; wait $SERVER 2>/dev/null || true; SERVER=
  awk -v n="$n" -v held="$held" -v rss="$rss" -v peak="$peak" '
    $1 == "rsa-sign" { rsa = $2 } $1 == "issuance" { iss = $4 } $1 == "release" { rel = $4 }
    END { printf "%-10s %9s %9.1f %9.1f %10.1f %10.1f %10.1f %8.3f\n", n, held, rss / 1024, peak / 1024, iss, rel, rsa, iss / rsa }' \
    "$DIR/load-$n.txt"
done
