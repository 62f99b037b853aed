#!/usr/bin/env python3
"""Plant one bug or alternative reading at a time in a copy of the workspace; see what catches it.

Each mutant of scripts/mutants.toml replaces one exact piece of code (it must occur exactly
once) and names the commands that must fail with it planted. The runner brings a scratch
copy of the workspace's files (tracked and untracked, not ignored) up to date, builds what the
selected commands need with one target directory of its own (kept between runs, so that only
the planted crate and its dependents rebuild), checks that every command passes on the
unmutated copy, then for each mutant: plants it, rebuilds, runs the commands (each bounded in
time), restores the file. It prints a Markdown table (mutant, the rule it breaks, and for each
command: the vector ids that failed, or MISSED) and exits 1 if a command that must fail
passed, 2 if a mutant does not apply or does not build.

    scripts/mutants.py                       # every mutant
    scripts/mutants.py --only reading-v14    # mutants whose id starts with this (repeatable)
    scripts/mutants.py --list
    scripts/mutants.py --check               # every mutant applies to today's code (no build)
    scripts/mutants.py --hold-lock           # take the machine's cargo lock once, not per build

Commands (the names used in mutants.toml):
    vectors      the conformance vectors against the reference, as `ekg fixtures check` runs
                 them, through `ekg-fixtures`' example `check_vectors` (dev profile: a planted
                 reading rebuilds ekg-core and ekg-fixtures only, a few seconds)
    check        ekg check                      the model's matrix against its expected table
    check-full   ekg check --full --only +v14   the full configuration (ekg-core's issuance)
    simulate     ekg simulate --all             every shipped scenario
(the last three run the release `ekg` binary, which a planted bug rebuilds almost whole).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = Path(os.environ.get("EKG_MUTANTS_DIR", "/tmp/ekg-mutants"))
TARGET = SCRATCH / "target"
TIMEOUT_SECS = 1200
VECTORS_TIMEOUT_SECS = 300

EKG = TARGET / "release" / "ekg"
CHECK_VECTORS = TARGET / "debug" / "examples" / "check_vectors"

# command -> (what to build, argv)
COMMANDS = {
    "vectors": ("vectors", [str(CHECK_VECTORS), "fixtures/v1"]),
    "check": ("ekg", [str(EKG), "check"]),
    "check-full": ("ekg", [str(EKG), "check", "--full", "--only", "+v14"]),
    "simulate": ("ekg", [str(EKG), "simulate", "--all", "--out", str(SCRATCH / "sim")]),
}

BUILDS = {
    "vectors": ["cargo", "build", "--locked", "-q", "-p", "ekg-fixtures", "--example", "check_vectors"],
    "ekg": ["cargo", "build", "--release", "--locked", "-q", "-p", "ekg"],
}


def copy_workspace() -> Path:
    """Brings the scratch copy in line with the workspace. Only files whose bytes differ are
    written (with a new mtime): a file copied with its old mtime over one a mutant changed
    would leave cargo's last (mutated) build looking fresh."""
    ws = SCRATCH / "ws"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    wanted = set()
    for name in files.decode().split("\0"):
        src, dst = ROOT / name, ws / name
        if not name or not src.is_file():
            continue
        wanted.add(dst)
        data = src.read_bytes()
        if not dst.is_file() or dst.read_bytes() != data:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
            shutil.copymode(src, dst)
    for path in [p for p in ws.rglob("*") if p.is_file() and p not in wanted]:
        path.unlink()
    return ws


CARGO_LOCK = Path("/tmp/ekg-cargo.lock")
LOCK_HELD = False


def hold_build_lock() -> None:
    """Takes the machine's build lock (the one the `cargo` wrapper takes for each command)
    once for the whole run, so that the builds of one mutant after another do not each wait
    behind other builds; cargo then runs under it without taking it again."""
    global LOCK_HELD
    import fcntl

    fd = os.open(CARGO_LOCK, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("mutants: waiting for the build lock", file=sys.stderr)
        fcntl.flock(fd, fcntl.LOCK_EX)
    Path("/tmp/ekg-cargo.holder").write_text(f"pid {os.getpid()} in {ROOT}: scripts/mutants.py\n")
    LOCK_HELD = True


def build(ws: Path, what: set[str]) -> str | None:
    """Builds what the commands need; the compiler's first error lines if it fails."""
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    if LOCK_HELD:
        env["EKG_CARGO_LOCKED"] = "1"
    for w in sorted(what):
        p = subprocess.run(BUILDS[w], cwd=ws, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            errors = [l for l in p.stderr.splitlines() if l.startswith("error")]
            return "; ".join(errors[:2])[:300] or p.stderr[-300:]
    return None


def run(ws: Path, command: str) -> tuple[int, str, list[str]]:
    """Exit code, the lines that say why, and (for `vectors`) the ids of the failing vectors."""
    _, argv = COMMANDS[command]
    limit = VECTORS_TIMEOUT_SECS if command == "vectors" else TIMEOUT_SECS
    try:
        p = subprocess.run(argv, cwd=ws, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {limit} s", []
    return p.returncode, why(command, p.stdout, p.stderr), failed_ids(p.stdout)


def anchors(path: Path, find: str) -> int:
    """How many times `find` occurs in `path` (0 if there is no such file)."""
    return path.read_text().count(find) if path.is_file() else 0


FAIL_LINE = re.compile(r"^FAIL (\w+)_test\.json tcId (\d+):")


def failed_ids(out: str) -> list[str]:
    """`FAIL gatekeeper_test.json tcId 89: ...` -> `gatekeeper/89`."""
    return [f"{m.group(1)}/{m.group(2)}" for m in map(FAIL_LINE.match, out.splitlines()) if m]


def why(command: str, out: str, err: str) -> str:
    """The lines that say what failed, for the table."""
    lines = (err + "\n" + out).splitlines()
    if command.startswith("check"):
        picked = [l.strip() for l in lines if " / " in l and "expected" in l]
    elif command == "simulate":
        picked = [l.strip() for l in lines if l.startswith("verdict:") or "violation" in l.lower() and ":" in l]
    else:
        picked = [l.strip() for l in lines if "passed," in l or l.startswith("error") or "panicked" in l]
    return "; ".join(picked[:3])[:300]


def cell(command: str, code: int, text: str, ids: list[str]) -> str:
    if code == 0:
        return f"`{command}`: **MISSED**"
    if command == "vectors" and ids:
        return ", ".join(ids[:8]) + (f" (+{len(ids) - 8} more)" if len(ids) > 8 else "")
    return f"`{command}`: caught (exit {code}) {text}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", action="append", default=[], help="id prefix (repeatable)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--check", action="store_true", help="only check that every mutant applies (no build)")
    ap.add_argument("--hold-lock", action="store_true", help="take the machine's build lock once for the whole run")
    args = ap.parse_args()
    mutants = tomllib.loads((ROOT / "scripts" / "mutants.toml").read_text())["mutant"]
    ids = [m["id"] for m in mutants]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        print(f"duplicate mutant ids: {duplicates}", file=sys.stderr)
        return 2
    if args.only:
        mutants = [m for m in mutants if any(m["id"].startswith(o) for o in args.only)]
    if args.list:
        for m in mutants:
            print(f"{m['id']:<48} {m.get('step', ''):<10} {m['what']}")
        return 0
    if args.check:
        stale = [m for m in mutants if anchors(ROOT / m["file"], m["find"]) != 1]
        for m in stale:
            print(f"{m['id']}: the code to replace occurs {anchors(ROOT / m['file'], m['find'])} times in {m['file']}")
        print(f"{len(mutants)} mutants, {len(stale)} that do not apply")
        return 2 if stale else 0
    if not mutants:
        print("no mutant matches", file=sys.stderr)
        return 2
    SCRATCH.mkdir(parents=True, exist_ok=True)
    if args.hold_lock:
        hold_build_lock()
    ws = copy_workspace()
    needed = sorted({c for m in mutants for c in m["must_fail"]})
    builds = {COMMANDS[c][0] for c in needed}
    started = time.time()
    failure = build(ws, builds)
    if failure:
        print(f"baseline: the workspace does not build: {failure}", file=sys.stderr)
        return 2
    for c in needed:
        code, text, _ = run(ws, c)
        if code != 0:
            print(f"baseline: `{c}` fails without any mutant (exit {code}): {text}", file=sys.stderr)
            return 2
    print(f"baseline: {time.time() - started:.0f} s", file=sys.stderr)
    rows, missed, broken = [], 0, 0
    for m in mutants:
        path = ws / m["file"]
        original = path.read_text() if path.is_file() else ""
        if original.count(m["find"]) != 1:
            print(f"{m['id']}: the code to replace occurs {original.count(m['find'])} times in {m['file']}",
                  file=sys.stderr)
            broken += 1
            rows.append(f"| {m['id']} | {m.get('step', '')} | {m['what']} | **does not apply** |")
            continue
        path.write_text(original.replace(m["find"], m["replace"]))
        started = time.time()
        try:
            failure = build(ws, {COMMANDS[c][0] for c in m["must_fail"]})
            if failure:
                broken += 1
                cells = [f"**does not build**: {failure}"]
            else:
                cells = []
                for c in m["must_fail"]:
                    code, text, failed = run(ws, c)
                    missed += code == 0
                    cells.append(cell(c, code, text, failed))
        finally:
            path.write_text(original)
        rows.append(f"| {m['id']} | {m.get('step', '')} | {m['what']} | {'<br>'.join(cells)} |")
        print(f"{m['id']}: {time.time() - started:.0f} s", file=sys.stderr)
    print("| mutant | step | planted reading or bug | caught by (failing vectors; other commands) |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n{len(mutants)} mutants, {missed} missed, {broken} not applicable or not building")
    return 2 if broken else 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
