#!/usr/bin/env python3
"""Every measured figure of the informative companion (draft/draft-ekg-implementation.md) is
one the project's documents record: each number with a thousands separator or a decimal
point in it must appear in docs/model.md, docs/simulator.md, docs/conformance.md, docs/protocol.md (its
Security Considerations) or fixtures/README.md, where the commands that measured it are. A figure typed by hand, or
left behind when a document is re-measured, fails.
"""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SOURCES = ["docs/model.md", "docs/simulator.md", "docs/conformance.md", "docs/protocol.md", "fixtures/README.md"]
FIGURE = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.,])\d+\.\d+(?![\w])")


def main():
    companion = open(os.path.join(ROOT, "draft", "draft-ekg-implementation.md")).read()
    body = companion.split("--- middle", 1)[1]
    text = "\n".join(open(os.path.join(ROOT, p)).read() for p in SOURCES)
    missing = sorted({f for f in FIGURE.findall(body) if f not in text})
    if missing:
        print(f"figures: not in {', '.join(SOURCES)}: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"figures: the companion's {len(set(FIGURE.findall(body)))} measured figures are the documents'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
