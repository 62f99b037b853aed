#!/usr/bin/env python3
"""Reads idnits' JSON report (stdin) of one draft and fails on any error idnits can decide
offline.

POSSIBLE_DOWNREF needs the RFC index from the network (idnits --offline still tries, and
reports every normative RFC as a possible downref when it cannot fetch it): those are
counted and left to the manual online run (draft/README.md). Every other error fails.
"""
import json
import sys

NEEDS_NETWORK = {"POSSIBLE_DOWNREF"}


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "draft"
    report = json.load(sys.stdin)
    nits = report.get("nits", [])
    errors = [n for n in nits if n.get("severity") == "ValidationError"]
    offline = [n for n in errors if n.get("code") not in NEEDS_NETWORK]
    warnings = [n for n in nits if n.get("severity") == "ValidationWarning"]
    for n in offline:
        print(f"idnits: {name}: error {n.get('code')}: {n.get('desc')}", file=sys.stderr)
    print(
        f"idnits: {name}: {len(offline)} errors, {len(errors) - len(offline)} left to the online run "
        f"({', '.join(sorted(NEEDS_NETWORK))}), {len(warnings)} warnings"
    )
    return 1 if offline else 0


if __name__ == "__main__":
    sys.exit(main())
