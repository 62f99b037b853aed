#!/usr/bin/env python3
"""Plant one bug at a time in a copy of the workspace and see which checker catches it.

Each mutant of scripts/mutants.toml replaces one exact piece of code (it must occur exactly
once) and names the commands that must fail with it planted. The runner copies the tracked
files of the workspace to a scratch directory, builds `ekg` (release) with a target
directory of its own, checks that every command passes on the unmutated copy, then for each
mutant: plants it, rebuilds, runs the commands (each bounded in time), restores the file.
It prints a Markdown table (mutant x command: caught with its exit code and the first lines
that say why, or MISSED) and exits 1 if any command that must fail passed.

    scripts/mutants.py                       # every mutant (about 3 minutes each on 2 cores)
    scripts/mutants.py --only ledger-        # mutants whose id starts with this
    scripts/mutants.py --list

Commands (the names used in mutants.toml):
    check        ekg check                      the model's matrix against its expected table
    check-full   ekg check --full --only +v14   the full configuration (ekg-core's issuance)
    simulate     ekg simulate --all             every shipped scenario
    vectors      ekg fixtures check             the conformance vectors against the reference
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = Path(os.environ.get("EKG_MUTANTS_DIR", "/tmp/ekg-mutants"))
TIMEOUT_SECS = 1200

COMMANDS = {
    "check": ["check"],
    "check-full": ["check", "--full", "--only", "+v14"],
    "simulate": ["simulate", "--all", "--out", str(SCRATCH / "sim")],
    "vectors": ["fixtures", "check", "--dir", "fixtures/v1"],
}


def copy_workspace() -> Path:
    ws = SCRATCH / "ws"
    if ws.exists():
        shutil.rmtree(ws)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in files.decode().split("\0"):
        if not name:
            continue
        src, dst = ROOT / name, ws / name
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return ws


def build(ws: Path) -> None:
    env = dict(os.environ, CARGO_TARGET_DIR=str(SCRATCH / "target"))
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "ekg"], cwd=ws, env=env, check=True)


def run(ws: Path, command: str) -> tuple[int, str]:
    exe = SCRATCH / "target" / "release" / "ekg"
    try:
        p = subprocess.run(
            [str(exe), *COMMANDS[command]], cwd=ws, capture_output=True, text=True, timeout=TIMEOUT_SECS
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {TIMEOUT_SECS} s"
    return p.returncode, why(command, p.stdout, p.stderr)


def why(command: str, out: str, err: str) -> str:
    """The lines that say what failed, for the table."""
    lines = (err + "\n" + out).splitlines()
    if command.startswith("check"):
        picked = [l.strip() for l in lines if " / " in l and "expected" in l]
    elif command == "simulate":
        picked = [l.strip() for l in lines if l.startswith("verdict:") or "violation" in l.lower() and ":" in l]
    else:
        picked = [l.strip() for l in lines if l.startswith("FAIL") or "passed," in l]
    return "; ".join(picked[:3])[:300]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    mutants = tomllib.loads((ROOT / "scripts" / "mutants.toml").read_text())["mutant"]
    mutants = [m for m in mutants if m["id"].startswith(args.only)]
    if args.list:
        for m in mutants:
            print(f"{m['id']:<40} {m['what']}")
        return 0
    if not mutants:
        print("no mutant matches", file=sys.stderr)
        return 2
    SCRATCH.mkdir(parents=True, exist_ok=True)
    ws = copy_workspace()
    build(ws)
    needed = sorted({c for m in mutants for c in m["must_fail"]})
    for c in needed:
        code, text = run(ws, c)
        if code != 0:
            print(f"baseline: `{c}` fails without any mutant (exit {code}): {text}", file=sys.stderr)
            return 2
    rows, missed = [], 0
    for m in mutants:
        path = ws / m["file"]
        original = path.read_text()
        if original.count(m["find"]) != 1:
            print(f"{m['id']}: the code to replace occurs {original.count(m['find'])} times in {m['file']}",
                  file=sys.stderr)
            return 2
        path.write_text(original.replace(m["find"], m["replace"]))
        started = time.time()
        try:
            build(ws)
            cells = []
            for c in m["must_fail"]:
                code, text = run(ws, c)
                if code == 0:
                    missed += 1
                    cells.append(f"`{c}`: **MISSED**")
                else:
                    cells.append(f"`{c}`: caught (exit {code}) {text}")
        finally:
            path.write_text(original)
        rows.append(f"| {m['id']} | {m['what']} | {'<br>'.join(cells)} |")
        print(f"{m['id']}: {time.time() - started:.0f} s", file=sys.stderr)
    print("| mutant | planted bug | commands that must fail |")
    print("|---|---|---|")
    print("\n".join(rows))
    print(f"\n{len(mutants)} mutants, {missed} missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
