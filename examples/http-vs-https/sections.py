#!/usr/bin/env python3
"""Splits tlspeek's --wire/--handshake output into the demo's four
sections, and recovers the bytes a section shows (text lines and xxd-style
hexdumps back to bytes), so that the plaintext tlspeek decrypted can be
compared byte for byte with what plain HTTP put on the wire.

  sections.py OUTPUT HTTP_PORT HTTPS_PORT   prints the four sections and the
                                            verdict; exit 1 if the bodies differ
Also imported by tests/e2e/test_tlsview.py.
"""
import hashlib
import re
import sys

HEX_LINE = re.compile(r"^    [0-9a-f]{8}: ((?:[0-9a-f]{2,4} ?)+)  ")


def blocks(text):
    """Blocks start at a line that does not begin with a space."""
    out = []
    for line in text.splitlines():
        if line and not line.startswith(" "):
            out.append([line])
        elif out:
            out[-1].append(line)
    return out


def split(text, http_port, https_port):
    """-> dict: http_wire, https_wire, handshake, decrypted (lists of blocks).
    A connection is known by its client address (the first word of a
    block); its first block (the CONNECT or request that names the
    upstream) may come before the upstream is known, so the port of each
    client is learnt from all its blocks first."""
    bl = blocks(text)
    port_of = {}
    for b in bl:
        m = re.match(r"^(\S+) \u21c4 \S+:(\d+) ", b[0])
        if m:
            port_of[m.group(1)] = int(m.group(2))
    s = {"http_wire": [], "https_wire": [], "handshake": [], "decrypted": []}
    for b in bl:
        head = b[0]
        port = port_of.get(head.split(" ")[0])
        if "TLS handshake" in head:
            s["handshake"].append(b)
        elif "decrypted by tlspeek" in head:
            s["decrypted"].append(b)
        elif "on the wire" in head and port == https_port:
            s["https_wire"].append(b)
        elif "on the wire" in head and port == http_port:
            s["http_wire"].append(b)
    return s


def block_bytes(block):
    """The bytes one plaintext block shows: text lines (4-space indent) as
    lines ending in \\n, hexdump lines as their bytes; the head's CRLFs come
    back as \\n (the comparison below is of bodies)."""
    out = bytearray()
    for line in block[1:]:
        m = HEX_LINE.match(line)
        if m:
            out += bytes.fromhex(m.group(1).replace(" ", ""))
        elif line.startswith("    ") and not line.startswith("    \u2026"):
            out += line[4:].encode() + b"\n"
    return bytes(out)


def responses(blocks_, direction):
    """Concatenated bytes of the blocks of one direction (header text such
    as "upstream → tlspeek")."""
    return b"".join(block_bytes(b) for b in blocks_ if direction in b[0])


def bodies(stream):
    """HTTP bodies in a recovered stream: after each head's blank line, up
    to the next status line."""
    parts = re.split(rb"(?m)^HTTP/1\.[01] \d{3}[^\n]*\n", stream)
    out = []
    for p in parts[1:]:
        head_end = p.find(b"\n\n")
        out.append(p[head_end + 2:] if head_end >= 0 else b"")
    return out


def main():
    text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    http_port, https_port = int(sys.argv[2]), int(sys.argv[3])
    s = split(text, http_port, https_port)
    titles = [
        ("http_wire", "1. Plain HTTP, as a sniffer on the wire sees it (readable)"),
        ("https_wire", "2. HTTPS, as a sniffer on the wire sees it (handshake, then opaque records)"),
        ("handshake", "3. The TLS handshake, dissected by tlspeek (both legs)"),
        ("decrypted", "4. What tlspeek decrypted from those records"),
    ]
    for key, title in titles:
        print("\n" + "=" * 78 + "\n=== " + title + "\n" + "=" * 78)
        for b in s[key]:
            print("\n".join(b))
    plain = bodies(responses(s["http_wire"], "upstream \u2192 tlspeek"))
    dec = bodies(responses(s["decrypted"], "upstream \u2192 tlspeek"))
    print("\n" + "=" * 78)
    ok = bool(plain) and plain == dec
    for i, (a, b) in enumerate(zip(plain, dec)):
        print("=== body %d: plain HTTP %d bytes sha256 %s | decrypted %d bytes sha256 %s" %
              (i + 1, len(a), hashlib.sha256(a).hexdigest()[:16], len(b),
               hashlib.sha256(b).hexdigest()[:16]))
    print("=== RESULT: the plaintext tlspeek recovered %s the plain-HTTP bodies" %
          ("is IDENTICAL to" if ok else "DIFFERS from"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
