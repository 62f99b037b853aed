#!/usr/bin/env bash
# The planted client bugs of the Python shim (fixtures/shims/python/ekgclient/bugs.py) against
# the client suite: the correct shim must pass every case; then one run of
# `ekg conformance client` per bug (EKG_SHIM_BUG=<name>). Prints a Markdown table (bug, caught,
# the cases that fail) and exits 1 if the correct shim fails a case or a bug fails none.
#
#   cargo build --release --locked -p ekg && scripts/shim-bugs.sh [BUG ...]
#
# EKG=path/to/ekg picks another build. About 13 s per bug on 2 cores (docs/conformance.md §3.3).
set -euo pipefail
cd "$(dirname "$0")/.."
EKG=${EKG:-target/release/ekg}
SHIM="python3 fixtures/shims/python/ekg_shim.py"
[ -x "$EKG" ] || { echo "scripts/shim-bugs.sh: $EKG missing: cargo build --release --locked -p ekg" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! "$EKG" conformance client --shim "$SHIM" --no-skips --jsonl "$tmp/baseline.jsonl" >"$tmp/baseline.out" 2>&1; then
  cat "$tmp/baseline.out" >&2
  echo "scripts/shim-bugs.sh: the shim without a planted bug fails the suite" >&2
  exit 1
fi

if [ "$#" -gt 0 ]; then
  printf '%s\n' "$@" >"$tmp/bugs"
else
  python3 fixtures/shims/python/ekg_shim.py --list-bugs | cut -f1 >"$tmp/bugs"
fi
while read -r bug; do
  # Exit 1 is the expected outcome (a case failed); anything else is recorded by the table.
  EKG_SHIM_BUG="$bug" "$EKG" conformance client --shim "$SHIM" --jsonl "$tmp/$bug.jsonl" \
    >"$tmp/$bug.out" 2>&1 || true
done <"$tmp/bugs"

python3 - "$tmp" <<'EOF'
import json, subprocess, sys
tmp = sys.argv[1]
what = dict(line.split("\t", 1) for line in subprocess.run(
    ["python3", "fixtures/shims/python/ekg_shim.py", "--list-bugs"],
    capture_output=True, text=True, check=True).stdout.splitlines())
bugs = [b.strip() for b in open(f"{tmp}/bugs") if b.strip()]
missed = 0
print("| planted client bug | caught | cases that fail |")
print("|---|---|---|")
for bug in bugs:
    try:
        records = [json.loads(l) for l in open(f"{tmp}/{bug}.jsonl") if l.strip()]
    except FileNotFoundError:
        records = []
    failing = [r["id"] for r in records if r["result"] != "pass"]
    if not records:
        missed += 1
        print(f"| `{bug}` | error | the runner wrote no record: {open(f'{tmp}/{bug}.out').read().strip()[:200]} |")
        continue
    missed += not failing
    print(f"| `{bug}`: {what.get(bug, '?').strip()} | {'yes' if failing else '**no**'} | "
          f"{', '.join(f'`{i}`' for i in failing) or '(none)'} |")
print()
print(f"{len(bugs) - missed} of {len(bugs)} planted bugs caught")
sys.exit(1 if missed else 0)
EOF
