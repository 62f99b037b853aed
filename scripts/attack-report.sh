#!/usr/bin/env bash
# The connection attacks of issue 25 item 1 against `ekg serve --demo` (default [server]
# limits), on loopback, bounded: scripts/attack.py runs each phase for PHASE_SECS seconds
# (default 20) and prints the table of docs/server.md ("Under attack"). Exit 1 if the
# legitimate client's p99 reached 1 s or any of its requests failed.
#   scripts/attack-report.sh            # release build (built if missing)
#   PHASE_SECS=10 PHASES=idle-flood scripts/attack-report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EKG=${EKG:-target/release/ekg}
[ -x "$EKG" ] || cargo build --release --locked -p ekg
# 2,000 attack connections need descriptors on both sides.
ulimit -n 16384
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$EKG" serve --demo --dir "$dir" --listen "127.0.0.1:$port" >"$dir/serve.out" 2>"$dir/serve.log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "attack-report: $("$EKG" --version), $(nproc) cores, server pid $pid on 127.0.0.1:$port, ${PHASE_SECS:-20} s a phase"
python3 scripts/attack.py --target "127.0.0.1:$port" --pid "$pid" --phase-secs "${PHASE_SECS:-20}" \
  --phases "${PHASES:-slow-readers,idle-flood,slowloris-head,slowloris-body}" --ekg "$EKG" --pki "$dir/pki"
