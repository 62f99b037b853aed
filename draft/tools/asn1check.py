#!/usr/bin/env python3
"""The draft's ASN.1 module (draft/asn1/EKG-2026-2009.asn1, RFC 5911 style), checked offline:

1. compiled by Erlang's asn1 compiler (erlc, which checks X.681 information objects and
   X.683 parameterisation) together with the excerpts of the modules it imports
   (draft/asn1/imports/), warnings as errors, DER codecs generated;
2. compiled by asn1tools (an independent parser and DER codec);
3. every content type OID of the module is tied to a type by one CONTENT-TYPE object of
   EkgContentTypes, and every attribute OID by one ATTRIBUTE object;
4. the module agrees with the 1988-syntax module docs/ekg.asn1 that the code's tests check
   (core/tests/docs.rs): the same OID values and the same type definitions;
5. the IANA Considerations' table (draft/protocol/considerations.md) lists every leaf OID and
   the module identifier with the module's values.

Usage: asn1check.py compile OUTDIR. Exit status 1 on any failure, with the reason.
"""
import os
import re
import shutil
import subprocess
import sys

import asn1tools

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODULE = os.path.join(ROOT, "draft", "asn1", "EKG-2026-2009.asn1")
IMPORTS = os.path.join(ROOT, "draft", "asn1", "imports")
CMS = os.path.join(IMPORTS, "CryptographicMessageSyntax-2009.asn1")
PKIX = os.path.join(IMPORTS, "PKIX-CommonTypes-2009.asn1")
LEGACY = os.path.join(ROOT, "docs", "ekg.asn1")
IANA = os.path.join(ROOT, "draft", "protocol", "considerations.md")
NAME = "EKG-2026-2009"
LEGACY_NAME = "EKG-2026"


class Failure(Exception):
    """A check failed; the message says which and why."""


def erlang(outdir):
    """Compiles the imports, then the module, with erlc (X.681-aware), warnings as errors."""
    work = os.path.join(outdir, "erl")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    for src in (CMS, PKIX, MODULE):
        shutil.copy(src, work)
    for src in (CMS, PKIX, MODULE):
        name = os.path.basename(src)
        run = subprocess.run(
            ["erlc", "-Werror", "+der", "-I", ".", name], cwd=work, capture_output=True, text=True
        )
        # erlc notes it cannot consistency-check an .asn1db against a source it was not given;
        # that is not a finding about the module.
        noise = re.compile(r'could not do a consistency check of the "[^"]+\.asn1db" file')
        lines = [l for l in (run.stdout + run.stderr).splitlines() if l.strip() and not noise.search(l)]
        if run.returncode != 0 or lines:
            raise Failure(f"erlc {name}:\n" + "\n".join(lines))
    if not os.path.exists(os.path.join(work, f"{NAME}.beam")):
        raise Failure(f"erlc wrote no codec for {NAME}")
    return work


def cms_1988(text):
    """The CMS excerpt with RFC 5652's 1988 ContentInfo in place of RFC 5911's open type, as
    asn1tools' DER codec has no X.681 open types; its content is ANY rather than RFC 5652's
    ANY DEFINED BY contentType, which asn1tools cannot decode under an EXPLICIT tag."""
    new, n = re.subn(
        r"ContentInfo ::= SEQUENCE \{.*?\}\)\}",
        "ContentInfo ::= SEQUENCE {\n    contentType OBJECT IDENTIFIER,\n"
        "    content [0] EXPLICIT ANY }",
        text,
        flags=re.S,
    )
    if n != 1:
        raise Failure("the CMS excerpt's ContentInfo was not found")
    return new


def asn1tools_compile():
    """Compiles the module with asn1tools, DER; returns the compiled specification."""
    sources = [open(MODULE).read(), cms_1988(open(CMS).read()), open(PKIX).read()]
    try:
        return asn1tools.compile_string("\n".join(sources), "der")
    except Exception as e:  # asn1tools raises several types; all are findings here
        raise Failure(f"asn1tools: {e}") from e


def oid(values, name, seen=()):
    """The dotted value of an OBJECT IDENTIFIER assignment of a parsed module."""
    if name in seen:
        raise Failure(f"OID {name} refers to itself")
    out = []
    for i, arc in enumerate(values[name]["value"]):
        if isinstance(arc, int):
            out.append(arc)
        elif isinstance(arc, tuple):
            out.append(int(arc[1]))
        elif i == 0 and arc in values:
            out.extend(int(x) for x in oid(values, arc, seen + (name,)).split("."))
        else:
            raise Failure(f"OID {name}: cannot resolve arc {arc!r}")
    return ".".join(str(x) for x in out)


def objects_tie_every_oid(parsed):
    """Every id-ekg-ct-* OID has one CONTENT-TYPE object in EkgContentTypes, every
    id-ekg-aa-*/id-ekg-ua-* one ATTRIBUTE object in the attribute sets."""
    values = parsed["values"]
    sets = parsed["object-sets"]
    text = open(MODULE).read()

    def members(set_name):
        if set_name not in sets:
            raise Failure(f"object set {set_name} is missing")
        body = re.search(re.escape(set_name) + r"\s+\S+\s*::=\s*\{(.*?)\}", text, flags=re.S)
        return [m.strip() for m in re.split(r"[|,]", body.group(1)) if m.strip() and m.strip() != "..."]

    def ids_of(objects):
        out = {}
        for obj in objects:
            m = re.search(re.escape(obj) + r"\s+(CONTENT-TYPE|ATTRIBUTE)\s*::=\s*\{(.*?)\}", text, flags=re.S)
            if not m:
                raise Failure(f"object {obj} is not defined in the module")
            ident = re.search(r"IDENTIFIED BY\s+([\w-]+)", m.group(2))
            if not ident:
                raise Failure(f"object {obj} has no IDENTIFIED BY")
            out.setdefault(ident.group(1), []).append(obj)
        return out

    cts = ids_of(members("EkgContentTypes"))
    attrs = ids_of(members("EkgAuthAttributes") + members("EkgUnauthAttributes"))
    for name in values:
        if values[name].get("type") != "OBJECT IDENTIFIER":
            continue
        parent = {"id-ekg-ct-": cts, "id-ekg-aa-": attrs, "id-ekg-ua-": attrs}
        for prefix, table in parent.items():
            if name.startswith(prefix) and len(table.get(name, [])) != 1:
                raise Failure(f"{name} is tied to {len(table.get(name, []))} objects, not 1")


def agrees_with_legacy(parsed):
    """Same OID values and type definitions as docs/ekg.asn1 (for every name either defines,
    the module identifier apart)."""
    legacy = asn1tools.parse_string(open(LEGACY).read())[LEGACY_NAME]
    ours_oids = {n: oid(parsed["values"], n) for n, v in parsed["values"].items() if v.get("type") == "OBJECT IDENTIFIER"}
    theirs_oids = {n: oid(legacy["values"], n) for n, v in legacy["values"].items() if v.get("type") == "OBJECT IDENTIFIER"}
    for name, value in theirs_oids.items():
        if ours_oids.get(name) != value:
            raise Failure(f"OID {name}: docs/ekg.asn1 has {value}, the draft's module {ours_oids.get(name)}")
    for name, value in ours_oids.items():
        if name != "id-ekg-mod" and name not in theirs_oids:
            raise Failure(f"OID {name} ({value}) is in the draft's module, not in docs/ekg.asn1")
    if set(parsed["types"]) != set(legacy["types"]):
        raise Failure(
            f"types differ: only in the draft's module {sorted(set(parsed['types']) - set(legacy['types']))}, "
            f"only in docs/ekg.asn1 {sorted(set(legacy['types']) - set(parsed['types']))}"
        )
    for name in parsed["types"]:
        if parsed["types"][name] != legacy["types"][name]:
            raise Failure(f"type {name} differs between the draft's module and docs/ekg.asn1")


def iana_table_agrees(parsed):
    """The IANA Considerations' OID table lists every leaf OID of the module (content types,
    attributes, the EKU) with the module's value, and the module identifier."""
    rows = {}
    for line in open(IANA).read().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"[0-9.]+", cells[1]):
            rows[cells[0]] = cells[1]
    values = parsed["values"]
    leaves = [n for n, v in values.items() if v.get("type") == "OBJECT IDENTIFIER" and n.count("-") >= 3]
    for name in leaves:
        if rows.get(name) != oid(values, name):
            raise Failure(f"IANA table: {name} is {rows.get(name)}, the module says {oid(values, name)}")
    module_oid = ".".join(str(a[1] if isinstance(a, tuple) else a) for a in module_oid_arcs())
    if module_oid not in rows.values():
        raise Failure(f"IANA table: the module identifier {module_oid} is missing")
    extra = set(rows) - set(leaves) - {k for k, v in rows.items() if v == module_oid}
    if extra:
        raise Failure(f"IANA table: {sorted(extra)} are not OIDs of the module")


def module_oid_arcs():
    """The arcs of the module identifier, read from the module's header."""
    head = re.search(r"EKG-2026-2009\s*\{(.*?)\}", open(MODULE).read(), flags=re.S).group(1)
    return [int(m.group(2) or m.group(3)) for m in re.finditer(r"([\w-]+)\((\d+)\)|\b(\d+)\b", head)]


def compile_all(outdir):
    work = erlang(outdir)
    spec = asn1tools_compile()
    parsed = asn1tools.parse_files([MODULE])[NAME]
    objects_tie_every_oid(parsed)
    agrees_with_legacy(parsed)
    iana_table_agrees(parsed)
    print(
        f"asn1check: {NAME} compiled by erlc (X.681 objects, DER codec in {os.path.relpath(work, ROOT)}) "
        f"and by asn1tools ({len(spec.modules[NAME])} types); "
        f"{sum(1 for v in parsed['values'].values() if v.get('type') == 'OBJECT IDENTIFIER')} OIDs and every type agree with docs/ekg.asn1 and the IANA table"
    )


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "compile":
        print(__doc__, file=sys.stderr)
        return 2
    try:
        compile_all(os.path.abspath(sys.argv[2]))
    except Failure as e:
        print(f"asn1check: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
