#!/usr/bin/env bash
# Issue 12, item 7: how close issuance and release come to their inherent cost, from one
# criterion run of the gatekeeper group (both providers): (verify + wrap + sign) / issuance
# and (verify + unwrap + wrap + sign) / release, means of the same run.
#
#   scripts/inherent-ratio.sh [CRITERION ARGS...]   (e.g. --measurement-time 8)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked -p ekg-benches --bench gatekeeper -- 'gatekeeper/' "$@" >&2
python3 - <<'PY'
import glob, json, os
for group in sorted(glob.glob("target/criterion/gatekeeper_*")):
    provider = os.path.basename(group).split("_", 1)[1]
    mean = lambda f: json.load(open(f"{group}/{f}/new/estimates.json"))["mean"]["point_estimate"]
    for op in ("issuance", "release"):
        op_ns, inh_ns = mean(op), mean(f"{op}_inherent")
        print(f"{provider:<12} {op:<9} {op_ns / 1000:8.1f} us   inherent {inh_ns / 1000:8.1f} us   ratio {inh_ns / op_ns:.3f}")
PY
