#!/usr/bin/env bash
# The figures of docs/performance.md, "Keys in SoftHSM2 against keys in files": the demo's
# configuration twice, once with the signing key and the storage-epoch keys in files (as
# `ekg serve --demo` writes it) and once with both in a SoftHSM2 token (the same signing key
# imported; `[gatekeeper.pkcs11]`), then ROUNDS alternating runs of `ekg load --in-process`
# on each (release build, a fresh database per run, no HTTP: the custody is the only
# difference), and the medians and ratios, every figure from this one run. STORE `tmpfs`
# (default) puts each run's database in /dev/shm, so that the disk's fsync (which dominates
# on this host, docs/performance.md "The gatekeeper over HTTP") does not hide the custody's
# cost; `disk` uses a fresh temporary database as `ekg load --in-process` does by default.
#
#   scripts/hsm-load-report.sh [ROUNDS] [REQUESTS] [CLIENTS] [STORE]   (3, 2000, 2, tmpfs)
#
# Needs softhsm2 (Debian's package); the token lives in a temporary directory of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
REQUESTS=${2:-2000}
CLIENTS=${3:-2}
STORE=${4:-tmpfs}
MODULE=/usr/lib/softhsm/libsofthsm2.so
[ -e "$MODULE" ] || { echo "hsm-load-report: $MODULE missing (apt-get install softhsm2)" >&2; exit 1; }
[ -n "${EKG_NO_BUILD:-}" ] || cargo build --release --locked -p ekg >/dev/null 2>&1
EKG=$PWD/target/release/ekg
DIR=$(mktemp -d)
SERVER=
SHM=/dev/shm/ekg-hsm-load-$$
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$DIR" "$SHM"' EXIT
# The demo's files: `ekg serve --demo` writes them, then is stopped.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$EKG serve --demo --dir "$DIR/demo" --listen "127.0.0.1:$PORT" >"$DIR/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
kill $SERVER; wait $SERVER 2>/dev/null || true; SERVER=
# A token of its own.
mkdir -p "$DIR/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$DIR" >"$DIR/softhsm2.conf"
export SOFTHSM2_CONF="$DIR/softhsm2.conf"
softhsm2-util --init-token --free --label ekg-load --pin fedcba123456 --so-pin abcdef654321 >/dev/null
softhsm2-util --import "$DIR/demo/pki/example.com/gatekeeper.key" --token ekg-load --label ekg-signing \
  --id 01 --pin fedcba123456 >/dev/null
printf 'fedcba123456\n' >"$DIR/demo/token.pin"
chmod 600 "$DIR/demo/token.pin"
python3 - "$DIR/demo/ekg.toml" "$DIR/demo/hsm.toml" "$MODULE" <<'PY'
import sys
text = open(sys.argv[1]).read()
text = text.replace('key = "pki/example.com/gatekeeper.key"\n', '').replace('storage_keys = "storage-keys"\n', '')
section = ('\n[gatekeeper.pkcs11]\nmodule = "%s"\ntoken = "ekg-load"\npin_file = "token.pin"\n'
           'signing_key = "ekg-signing"\nstorage_key_prefix = "ekg-load-epoch-"\n\n[[sender]]' % sys.argv[3])
text = text.replace('\n[[sender]]', section, 1)
open(sys.argv[2], 'w').write(text)
PY
OUT="$DIR/runs.txt"
: >"$OUT"
for r in $(seq "$ROUNDS"); do
  for mode in files hsm; do
    if [ $mode = files ]; then cfg=ekg.toml; else cfg=hsm.toml; fi
    db=()
    if [ "$STORE" = tmpfs ]; then rm -rf "$SHM"; mkdir -p "$SHM"; db=(--database "$SHM/ekg.db"); fi
    $EKG load --in-process "$DIR/demo/$cfg" "${db[@]}" --pki "$DIR/demo/pki" --requests "$REQUESTS" --duration 60 \
      --concurrency "$CLIENTS" |
      awk -v m="$mode" '$1 == "rsa-sign" { print m, "rsa", $2 } $1 == "issuance" || $1 == "release" { print m, $1, $4 }' >>"$OUT"
    echo "hsm-load-report: round $r $mode done" >&2
  done
done
python3 - "$OUT" "$ROUNDS" "$REQUESTS" "$CLIENTS" "$STORE" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    mode, op, v = line.split()
    runs.setdefault((mode, op), []).append(float(v))
med = {k: statistics.median(v) for k, v in runs.items()}
print(f"ekg load --in-process, {sys.argv[2]} alternating rounds of {sys.argv[3]} requests per operation, "
      f"{sys.argv[4]} clients, database on {sys.argv[5]}; medians (req/s)")
print(f"{'operation':<10} {'files':>8} {'SoftHSM2':>9} {'ratio':>6}   all file runs / all SoftHSM2 runs")
for op in ("issuance", "release"):
    f, h = med[("files", op)], med[("hsm", op)]
    print(f"{op:<10} {f:>8.0f} {h:>9.0f} {h / f:>6.2f}   {runs[('files', op)]} / {runs[('hsm', op)]}")
print(f"raw RSA-2048 signing in the same runs (ops/s, median): {statistics.median(runs[('files', 'rsa')] + runs[('hsm', 'rsa')]):.0f}")
PY
