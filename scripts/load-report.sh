#!/usr/bin/env bash
# The figures of docs/performance.md, "The gatekeeper over HTTP": starts `ekg serve --demo`
# (release build, loopback), then for 1 and 2 clients alternates ROUNDS runs of `ekg load`
# over HTTP with as many in process (no HTTP, fresh database), and prints the medians, the
# HTTP / in-process ratios and the 2-client scaling beside raw RSA signing's, every figure
# from this one run.
#
#   scripts/load-report.sh [ROUNDS] [REQUESTS]      (defaults: 5 rounds, 5000 requests)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
REQUESTS=${2:-5000}
cargo build --release --locked -p ekg >/dev/null 2>&1
EKG=target/release/ekg
DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$EKG serve --demo --dir "$DIR" --listen "127.0.0.1:$PORT" >"$DIR/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
OUT="$DIR/runs.txt"
: >"$OUT"
for c in 1 2; do
  for r in $(seq "$ROUNDS"); do
    for mode in http inproc; do
      if [ $mode = http ]; then args=(--target "http://127.0.0.1:$PORT/"); else args=(--in-process "$DIR/ekg.toml"); fi
      $EKG load "${args[@]}" --pki "$DIR/pki" --requests "$REQUESTS" --duration 60 --concurrency "$c" |
        awk -v c="$c" -v m="$mode" '$1 == "rsa-sign" { print c, m, "rsa", $2 } $1 == "issuance" || $1 == "release" { print c, m, $1, $4 }' >>"$OUT"
      echo "load-report: clients $c round $r $mode done" >&2
    done
  done
done
python3 - "$OUT" "$ROUNDS" "$REQUESTS" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    c, mode, op, v = line.split()
    runs.setdefault((int(c), mode, op), []).append(float(v))
med = {k: statistics.median(v) for k, v in runs.items()}
print(f"ekg load, {sys.argv[2]} alternating rounds of {sys.argv[3]} requests per operation; medians (req/s)")
print(f"{'clients':>7} {'operation':<10} {'HTTP':>8} {'in-proc':>8} {'ratio':>6}   all HTTP runs / all in-process runs")
for c in (1, 2):
    for op in ("issuance", "release"):
        h, i = med[(c, "http", op)], med[(c, "inproc", op)]
        print(f"{c:>7} {op:<10} {h:>8.1f} {i:>8.1f} {h / i:>6.2f}   {runs[(c, 'http', op)]} / {runs[(c, 'inproc', op)]}")
rsa1 = statistics.median(runs[(1, "http", "rsa")] + runs[(1, "inproc", "rsa")])
rsa2 = statistics.median(runs[(2, "http", "rsa")] + runs[(2, "inproc", "rsa")])
print(f"raw RSA-2048 signatures: {rsa1:.1f}/s on 1 thread, {rsa2:.1f}/s on 2: scaling {rsa2 / rsa1:.2f}x")
for op in ("issuance", "release"):
    for mode in ("http", "inproc"):
        s = med[(2, mode, op)] / med[(1, mode, op)]
        print(f"{op} {mode}: 2 clients / 1 = {s:.2f}x, {s / (rsa2 / rsa1):.2f} of RSA's scaling")
PY
