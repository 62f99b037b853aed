"""A small DER reader and an annotated dumper for the examples appendix (draft/examples.md).

Only what the examples need: a tree of TLVs (definite lengths; the vectors are DER, which
tools/examples.py checks by decoding each structure with the module), and a dump in the
manner of dumpasn1, with elisions, at most 69 characters a line.
"""

OIDS = {
    "1.2.840.113549.1.7.1": "data",
    "1.2.840.113549.1.7.2": "signedData",
    "1.2.840.113549.1.9.16.1.23": "authEnvelopedData",
    "1.2.840.113549.1.9.3": "contentType",
    "1.2.840.113549.1.9.4": "messageDigest",
    "1.2.840.113549.1.9.5": "signingTime",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "1.2.840.113549.1.1.1": "rsaEncryption",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.7": "rsaesOaep",
    "1.2.840.113549.1.1.8": "mgf1",
    "2.16.840.1.101.3.4.1.46": "aes256-GCM",
    "2.16.840.1.101.3.4.1.45": "aes256-wrap",
    "2.5.4.3": "commonName",
    "2.5.4.10": "organizationName",
    "1.3.6.1.4.1.99999.1.1.1": "id-ekg-ct-keyRequest",
    "1.3.6.1.4.1.99999.1.1.2": "id-ekg-ct-ticket",
    "1.3.6.1.4.1.99999.1.1.3": "id-ekg-ct-releaseRequest",
    "1.3.6.1.4.1.99999.1.1.4": "id-ekg-ct-keyDelivery",
    "1.3.6.1.4.1.99999.1.1.5": "id-ekg-ct-issuance",
    "1.3.6.1.4.1.99999.1.1.6": "id-ekg-ct-treeHead",
    "1.3.6.1.4.1.99999.1.2.1": "id-ekg-aa-ticketDigest",
    "1.3.6.1.4.1.99999.1.2.2": "id-ekg-ua-ticket",
    "1.3.6.1.4.1.99999.1.2.3": "id-ekg-ua-expandedTickets",
}

UNIVERSAL = {
    1: "BOOLEAN", 2: "INTEGER", 3: "BIT STRING", 4: "OCTET STRING", 5: "NULL",
    6: "OBJECT IDENTIFIER", 10: "ENUMERATED", 12: "UTF8String", 16: "SEQUENCE", 17: "SET",
    19: "PrintableString", 22: "IA5String", 23: "UTCTime", 24: "GeneralizedTime",
}


class Node:
    """One TLV: its identifier octet, offset, header length, contents and children."""

    def __init__(self, data, offset):
        self.offset = offset
        ident = data[offset]
        if ident & 0x1F == 0x1F:
            raise ValueError(f"high tag form at {offset}: not used by the profile's examples")
        self.ident = ident
        first = data[offset + 1]
        if first < 0x80:
            length, header = first, 2
        else:
            n = first & 0x7F
            if n == 0 or n > 4:
                raise ValueError(f"length form at {offset + 1} is not DER")
            length = int.from_bytes(data[offset + 2: offset + 2 + n], "big")
            header = 2 + n
        self.header = header
        self.length = length
        self.start = offset + header
        self.end = self.start + length
        if self.end > len(data):
            raise ValueError(f"element at {offset} runs past the end")
        self.data = data
        self.children = []
        if self.constructed:
            pos = self.start
            while pos < self.end:
                child = Node(data, pos)
                self.children.append(child)
                pos = child.end
            if pos != self.end:
                raise ValueError(f"children of {offset} overrun it")

    @property
    def constructed(self):
        return bool(self.ident & 0x20)

    @property
    def contents(self):
        return self.data[self.start:self.end]

    @property
    def der(self):
        return self.data[self.offset:self.end]

    def name(self):
        cls = self.ident >> 6
        number = self.ident & 0x1F
        if cls == 0:
            return UNIVERSAL.get(number, f"UNIVERSAL {number}")
        if cls == 2:
            return f"[{number}]"
        return f"[{['UNIVERSAL', 'APPLICATION', 'CONTEXT', 'PRIVATE'][cls]} {number}]"


def parse(data):
    node = Node(data, 0)
    if node.end != len(data):
        raise ValueError("bytes after the value")
    return node


def oid_text(contents):
    arcs, value = [], 0
    for b in contents:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(x) for x in [first, arcs[0] - 40 * first] + arcs[1:])


def hexpart(b, limit=16):
    text = b[:limit].hex(" ").upper()
    return text + (f" ... ({len(b)} octets)" if len(b) > limit else "")


def dump(node, notes=None, width=69):
    """Lines `offset length: value`, nested by indentation. `notes(node)` may return
    (comment, expand): a comment after the line, and whether to show the children (False:
    the element is elided, its length stays)."""
    lines = []

    def emit(text, comment=""):
        line = text if not comment else f"{text}  -- {comment}"
        while len(line) > width:
            cut = line.rfind(" ", 0, width)
            cut = width if cut <= 0 else cut
            lines.append(line[:cut])
            line = " " * 14 + line[cut:].lstrip()
        lines.append(line)

    def walk(n, depth):
        comment, expand = notes(n) if notes else ("", True)
        prefix = f"{n.offset:5} {n.length:4}: " + "  " * depth
        label = n.name()
        if n.constructed:
            if expand and n.children:
                emit(prefix + label + " {", comment)
                for c in n.children:
                    walk(c, depth + 1)
                lines.append(" " * 12 + "  " * depth + "}")
            else:
                emit(prefix + label + (" { ... }" if n.children else " {}"), comment or "elided")
            return
        c = n.contents
        if n.ident == 0x06:
            text = oid_text(c)
            emit(prefix + f"{label} {OIDS.get(text, text)}", comment)
        elif n.ident in (0x02, 0x0A) and len(c) <= 8:
            emit(prefix + f"{label} {int.from_bytes(c, 'big', signed=True)}", comment)
        elif n.ident in (0x0C, 0x13, 0x16, 0x17, 0x18):
            emit(prefix + f"{label} '{c.decode('ascii')}'", comment)
        elif n.ident == 0x05:
            emit(prefix + label, comment)
        else:
            emit(prefix + f"{label} {hexpart(c)}", comment)

    walk(node, 0)
    return lines
