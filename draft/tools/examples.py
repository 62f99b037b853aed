#!/usr/bin/env python3
"""Generates the examples appendix of the protocol draft (draft/examples.md) from the
conformance vectors (fixtures/v1/client_test.json), so that the examples cannot drift from
the vectors.

One issuance (a key request, its grant and ticket, and the HTTP answer carrying them) and one
delivery (a sealed message, the release request and the release) of the vectors, each
object dumped with annotations, each EKG structure in it decoded with the draft's ASN.1
module by both of its compilers (asn1tools, and the DER codec erlc generated, see
asn1check.py) and re-encoded to the same octets, the grant, the release and the message
opened with the test keys of fixtures/v1/pki and the keys checked against the vectors'
expected values.

Usage: examples.py --write ASN1DIR | --check ASN1DIR  (ASN1DIR: asn1check.py's output)
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import asn1check  # noqa: E402
import der  # noqa: E402

ROOT = asn1check.ROOT
VECTORS = os.path.join(ROOT, "fixtures", "v1", "client_test.json")
GATEKEEPER_VECTORS = os.path.join(ROOT, "fixtures", "v1", "gatekeeper_test.json")
PKI = os.path.join(ROOT, "fixtures", "v1", "pki")
OUT = os.path.join(ROOT, "draft", "examples.md")
# The vectors used, found by tcId and checked by comment, so that a renumbering fails here.
ISSUANCE = (1, "the grant and ticket of a real issuance")
DELIVERY = (14, "the release answering our request")
MESSAGE = (7, "a listed recipient opens with the released key")
# The extensions: a labelled key request (gatekeeper vectors) and a message a list expanded.
LABELLED = (186, "labels alice holds (itar, secret)")
EXPANDED = (50, "a member opens a list's expansion with the list's key")


# Fields of ENUMERATED type (asn1tools gives their identifier as a str, as for strings).
ENUMERATED = {"releasePolicy"}


class Failure(Exception):
    pass


def vectors(path=VECTORS, wanted=(ISSUANCE, DELIVERY, MESSAGE, EXPANDED)):
    with open(path) as f:
        data = json.load(f)
    by_id = {int(t["tcId"]): t for g in data["testGroups"] for t in g["tests"]}
    out = []
    for tc, comment in wanted:
        t = by_id.get(tc)
        if t is None or t["comment"] != comment or t["result"] != "valid":
            raise Failure(f"client vector {tc} is no longer '{comment}'")
        out.append(t)
    return out


def econtent(signed_ci):
    """The eContent octets of a ContentInfo { signedData }."""
    sd = signed_ci.children[1].children[0]
    encap = sd.children[2]
    return encap.children[1].children[0].contents


def open_envelope(ci, key_pem):
    """Decrypts an AuthEnvelopedData with one KTRI (RSAES-OAEP-SHA256) and AES-256-GCM."""
    aed = ci.children[1].children[0]
    ktri = aed.children[1].children[0]
    encrypted_key = ktri.children[3].contents
    with open(key_pem, "rb") as f:
        private = serialization.load_pem_private_key(f.read(), password=None)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    cek = private.decrypt(encrypted_key, oaep)
    return gcm_open(aed, cek)


def gcm_open(aed, cek):
    eci = aed.children[2]
    params = eci.children[1].children[1]
    nonce = params.children[0].contents
    ciphertext = eci.children[2].contents
    rest = aed.children[3:]
    auth = [n for n in rest if n.ident == 0xA1]
    mac = [n for n in rest if n.ident == 0x04][0].contents
    aad = b"\x31" + auth[0].der[1:] if auth else b""
    return AESGCM(cek).decrypt(nonce, ciphertext + mac, aad)


def asn1tools_roundtrip(spec, type_name, octets):
    value = spec.decode(type_name, octets, check_constraints=True)
    if spec.encode(type_name, value) != octets:
        raise Failure(f"asn1tools: {type_name} does not re-encode to the same octets")
    return value


def erlang_roundtrip(asn1dir, items):
    """Decodes and re-encodes each (type, octets) with the codec erlc generated."""
    work = os.path.join(asn1dir, "erl")
    with tempfile.TemporaryDirectory() as tmp:
        calls = []
        for i, (type_name, octets) in enumerate(items):
            path = os.path.join(tmp, f"{i}.der")
            with open(path, "wb") as f:
                f.write(octets)
            calls.append(f"{{'{type_name}', \"{path}\"}}")
        script = (
            "Check = fun({T, P}) -> {ok, B} = file:read_file(P), "
            "{ok, V} = 'EKG-2026-2009':decode(T, B), {ok, E} = 'EKG-2026-2009':encode(T, V), "
            "case iolist_to_binary(E) of B -> ok; _ -> erlang:error({reencode, T}) end end, "
            f"lists:foreach(Check, [{', '.join(calls)}]), io:format(\"ok~n\"), halt(0)."
        )
        env = dict(os.environ, ERL_CRASH_DUMP="/dev/null")
        run = subprocess.run(["erl", "-noshell", "-pa", work, "-eval", script], capture_output=True, text=True, env=env)
        if run.returncode != 0 or run.stdout.strip() != "ok":
            raise Failure(f"erlc's codec: {run.stdout}{run.stderr}")


def value_text(name, value, width=69):
    """ASN.1 value notation of a decoded SEQUENCE (asn1tools' Python form)."""

    def one(v):
        if isinstance(v, bytes):
            return f"'{v.hex().upper()}'H"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, int):
            return str(v)
        if hasattr(v, "strftime"):
            return f'"{v.strftime("%Y%m%d%H%M%SZ")}"'
        if isinstance(v, list):
            flat = "{ " + ", ".join(one(x) for x in v) + " }"
            return flat if len(flat) <= width - 20 else "{\n  " + ",\n  ".join(one(x) for x in v) + " }"
        if isinstance(v, dict) and "contentType" in v:
            ct = der.OIDS.get(v["contentType"], v["contentType"])
            digest = hashlib.sha256(contentinfo_der(v)).hexdigest().upper()
            return f"-- ContentInfo {ct}, SHA-256 {digest[:16]}...\n{{ ... }}"
        if isinstance(v, dict):
            return "{ " + ",\n    ".join(f"{k} {one(x)}" for k, x in v.items()) + " }"
        raise Failure(f"no notation for {v!r}")

    lines = [f"{name} ::= {{"]
    items = list(value.items())
    for i, (k, v) in enumerate(items):
        text = f"  {k} {v if k in ENUMERATED else one(v)}" + ("," if i + 1 < len(items) else " }")
        for j, part in enumerate(text.split("\n")):
            part = part if j == 0 else "    " + part
            while len(part) > width:
                lines.append(part[:width])
                part = "      " + part[width:]
            lines.append(part)
    return lines


def contentinfo_der(v):
    oid = bytes(encode_oid(v["contentType"]))
    content = v["content"]
    inner = tlv(0xA0, content)
    return tlv(0x30, tlv(0x06, oid) + inner)


def encode_oid(text):
    arcs = [int(x) for x in text.split(".")]
    out = [40 * arcs[0] + arcs[1]]
    body = []
    for a in [out[0]] + arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.insert(0, 0x80 | (a & 0x7F))
            a >>= 7
        body.extend(chunk)
    return body


def tlv(tag, body):
    n = len(body)
    if n < 0x80:
        head = bytes([tag, n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([tag, 0x80 | len(size)]) + size
    return head + body


def notes_for(known):
    """Annotations: certificates elided, nested ContentInfos the appendix shows elsewhere
    named instead of repeated."""

    def notes(n):
        if n.der in known:
            return (f"{known[n.der]}, elided", False)
        if n.ident == 0xA0 and n.children and all(c.ident == 0x30 and len(c.children) == 3 for c in n.children):
            if n.children[0].children[0].ident == 0x30 and len(n.children[0].der) > 400:
                return (f"certificates: {len(n.children)}, elided", False)
        return ("", True)

    return notes


def generate(asn1dir):
    issuance, delivery, message, expanded = vectors()
    (labelled,) = vectors(GATEKEEPER_VECTORS, (LABELLED,))
    spec = asn1check.asn1tools_compile()
    request = bytes.fromhex(issuance["request"])
    grant = bytes.fromhex(issuance["grant"])
    ticket = bytes.fromhex(issuance["ticket"])
    sealed = bytes.fromhex(delivery["sealed"])
    release_request = bytes.fromhex(delivery["releaseRequest"])
    release = bytes.fromhex(delivery["release"])
    if bytes.fromhex(message["sealed"]) != sealed:
        raise Failure("client vectors 7 and 14 no longer share their sealed message")

    # The HTTP answer to the key request: ContentInfo { id-ekg-ct-issuance, IssuanceResponse }.
    issuance_body = tlv(0x30, grant + ticket)
    http_answer = contentinfo_der({"contentType": "1.3.6.1.4.1.99999.1.1.5", "content": issuance_body})

    key_request = econtent(der.parse(request))
    ticket_info = econtent(der.parse(ticket))
    grant_plain = open_envelope(der.parse(grant), os.path.join(PKI, "alice@example.com.key.pem"))
    release_plain = open_envelope(der.parse(release), os.path.join(PKI, "bob@example.org.key.pem"))
    release_info = econtent(der.parse(release_request))
    release_delivery = econtent(der.parse(release_plain))
    labelled_request = econtent(der.parse(bytes.fromhex(labelled["request"])))
    expanded_sealed = bytes.fromhex(expanded["sealed"])
    expanded_aed = der.parse(expanded_sealed).children[1].children[0]
    unauth = [n for n in expanded_aed.children if n.ident == 0xA2][0]
    attrs = {der.OIDS.get(der.oid_text(a.children[0].contents), der.oid_text(a.children[0].contents)): a.children[1].children[0] for a in unauth.children}
    list_ticket = attrs["id-ekg-ua-ticket"].der
    expanded_tickets = attrs["id-ekg-ua-expandedTickets"].der
    list_ticket_info = econtent(der.parse(list_ticket))
    items = [
        ("KeyRequest", key_request),
        ("TicketInfo", ticket_info),
        ("KeyDelivery", grant_plain),
        ("IssuanceResponse", issuance_body),
        ("ReleaseRequest", release_info),
        ("KeyDelivery", release_delivery),
        ("KeyRequest", labelled_request),
        ("TicketInfo", list_ticket_info),
        ("ExpandedTickets", expanded_tickets),
    ]
    decoded = [asn1tools_roundtrip(spec, t, b) for t, b in items]
    erlang_roundtrip(asn1dir, items)
    if contentinfo_der(decoded[1]["request"]) != request:
        raise Failure("the ticket's request is not the key request of the same vector")
    if decoded[2]["key"].hex() != issuance["expected"]["key"] or decoded[2]["keyId"].hex() != issuance["expected"]["keyId"]:
        raise Failure("the grant does not carry the key the vector expects")
    if decoded[5]["key"].hex() != delivery["expected"]["key"]:
        raise Failure("the release does not carry the key the vector expects")
    # Open the sealed message with the released key, as a recipient does.
    aed = der.parse(sealed).children[1].children[0]
    kekri = aed.children[1].children[0]
    cek = aes_key_unwrap(decoded[5]["key"], kekri.children[3].contents)
    plaintext = gcm_open(aed, cek)
    if plaintext.hex() != message["expected"]["plaintext"]:
        raise Failure("the sealed message does not open to the vector's plaintext")
    if not decoded[6].get("labels"):
        raise Failure(f"gatekeeper vector {LABELLED[0]} no longer carries labels")
    agent_request_der = contentinfo_der(decoded[7]["request"])
    agent_request = econtent(der.parse(agent_request_der))
    agent_decoded = asn1tools_roundtrip(spec, "KeyRequest", agent_request)
    erlang_roundtrip(asn1dir, [("KeyRequest", agent_request)])
    history = agent_decoded.get("expansion") or []
    chain = spec.decode("ExpandedTickets", expanded_tickets)
    if not history or history[-1]["expandedTicket"] != hashlib.sha256(contentinfo_der(chain[-1])).digest():
        raise Failure("the list's ticket does not name the ticket it expanded")
    # A member opens the expanded message with the list's key (the vector's).
    kekri = expanded_aed.children[1].children[0]
    if kekri.children[1].children[0].contents.hex() != expanded["expected"]["keyId"]:
        raise Failure("the expanded message's key identifier is not the vector's")
    try:
        expanded_cek = aes_key_unwrap(bytes.fromhex(expanded["key"]), kekri.children[3].contents)
    except InvalidUnwrap as e:
        raise Failure("the expanded message's content key does not unwrap under the vector's key") from e
    expanded_plain = gcm_open(expanded_aed, expanded_cek)
    if expanded_plain.hex() != expanded["expected"]["plaintext"]:
        raise Failure("the expanded message does not open to the vector's plaintext")

    known = {
        request: "the Key Request above",
        ticket: "the Ticket above",
        grant: "the Grant above",
    }
    out = [
        "<!-- generated by draft/tools/examples.py from fixtures/v1/client_test.json"
        f" (tcId {ISSUANCE[0]}, {DELIVERY[0]}, {MESSAGE[0]}, {EXPANDED[0]}) and gatekeeper_test.json"
        f" (tcId {LABELLED[0]}); do not edit -->",
        "",
        "These examples are conformance vectors of the reference implementation,",
        "made with test keys at 2026-06-01T00:00:00Z: alice@example.com sends to",
        "bob@example.org through the gatekeeper https://ekg.example.com/.  The",
        "issuance and the delivery are two runs of the same flow.  Each dump",
        "gives offset, length and value; certificates, and objects shown in an",
        "earlier example, are elided.  Each EKG structure was decoded with the",
        "module of {{module}} and re-encoded to the same octets; the grant, the",
        "release and the message were opened with the test keys.",
        "",
    ]

    def section(title, text, lines):
        anchor = "ex-" + "".join(c if c.isalnum() else "-" for c in title.lower().replace("'s", "")).strip("-")
        out.extend([f"## {title} {{#{anchor}}}", "", text, "", "~~~"] + lines + ["~~~", ""])

    def notes(root):
        return notes_for({k: v for k, v in known.items() if k != root})

    section("Key Request", "The sender's SignedData (" + f"{len(request)} octets):", der.dump(der.parse(request), notes_for({})))
    section("The Key Request's KeyRequest", "The eContent of the key request:", value_text("keyRequest KeyRequest", decoded[0]))
    section("Grant", f"The gatekeeper's AuthEnvelopedData to the sender ({len(grant)} octets):", der.dump(der.parse(grant), notes(grant)))
    section("The Grant's KeyDelivery", "The grant's plaintext, opened with the sender's key:", value_text("grantDelivery KeyDelivery", decoded[2]))
    section("Ticket", f"The gatekeeper's SignedData ({len(ticket)} octets):", der.dump(der.parse(ticket), notes(ticket)))
    section("The Ticket's TicketInfo", "The eContent of the ticket (its request is the key request above):", value_text("ticketInfo TicketInfo", decoded[1]))
    section("HTTP Answer", f"The body of the 200 answer to the key request ({len(http_answer)} octets):", der.dump(der.parse(http_answer), notes(http_answer)))
    delivery_known = {}
    section("Sealed Message", f"The message sealed to the ticket ({len(sealed)} octets; another run):", der.dump(der.parse(sealed), notes_for(delivery_known)))
    sealed_ticket = der.parse(sealed).children[1].children[0].children[-1].children[0].children[1].children[0].der
    delivery_known[sealed_ticket] = "the ticket attached to the Sealed Message above"
    section("Release Request", f"The recipient's SignedData ({len(release_request)} octets):", der.dump(der.parse(release_request), notes_for(delivery_known)))
    section("The Release Request's ReleaseRequest", "The eContent of the release request:", value_text("releaseRequest ReleaseRequest", decoded[4]))
    section("Release", f"The gatekeeper's AuthEnvelopedData to the recipient ({len(release)} octets):", der.dump(der.parse(release), notes_for({})))
    section("The Release's KeyDelivery", "The release's plaintext is a SignedData by the gatekeeper; its eContent:", value_text("releaseDelivery KeyDelivery", decoded[5]))
    section("Opened Message", "The sealed message opened with the released key:", plaintext.decode("ascii").replace("\r\n", "\n").rstrip("\n").split("\n"))
    section(
        "A Labelled KeyRequest",
        f"The eContent of a key request with two labels ({{{{labels}}}}; gatekeeper vector {LABELLED[0]}):",
        value_text("labelledRequest KeyRequest", decoded[6]),
    )
    section(
        "The Labelled KeyRequest's Encoding",
        f"Its DER ({len(labelled_request)} octets): the labels are the field tagged \\[0\\] (implicitly):",
        der.dump(der.parse(labelled_request), notes_for({})),
    )
    section(
        "Expanded Sealed Message",
        f"A message a list expanded ({{{{lists}}}}; {len(expanded_sealed)} octets; client vector {EXPANDED[0]}):"
        " the KEKRecipientInfo names the list's key, `id-ekg-ua-ticket` carries the list's"
        " ticket and `id-ekg-ua-expandedTickets` the sender's; tickets are elided.",
        der.dump(der.parse(expanded_sealed), notes_for({list_ticket: "the list's ticket", expanded_tickets: "ExpandedTickets: the sender's ticket"})),
    )
    section(
        "The List Agent's KeyRequest",
        "The eContent of the key request inside the list's ticket: the members, and the history"
        " naming the list and the sender's ticket:",
        value_text("agentRequest KeyRequest", agent_decoded),
    )
    return "\n".join(out).rstrip("\n") + "\n"


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("--write", "--check"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        text = generate(os.path.abspath(sys.argv[2]))
    except (Failure, asn1check.Failure, ValueError) as e:
        print(f"examples: {e}", file=sys.stderr)
        return 1
    if sys.argv[1] == "--write":
        with open(OUT, "w") as f:
            f.write(text)
        print(f"examples: wrote {os.path.relpath(OUT, ROOT)}")
        return 0
    with open(OUT) as f:
        committed = f.read()
    if committed != text:
        print("examples: draft/examples.md differs from what tools/examples.py generates (run it with --write)", file=sys.stderr)
        return 1
    print("examples: draft/examples.md is what the vectors generate; every structure decoded by both compilers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
