#!/usr/bin/env python3
"""Splits tlspeek's --wire/--handshake output into the demo's four
sections, and recovers the bytes a section shows (text lines and xxd-style
hexdumps back to bytes), so that the plaintext tlspeek decrypted can be
compared byte for byte with what plain HTTP put on the wire.

  sections.py OUTPUT HTTP_PORT HTTPS_PORT [OUTPUT12]
      prints the four sections and the verdict (exit 1 if the bodies differ);
      with OUTPUT12 (a tlspeek run with --client-tls-max 1.2 that fetched from
      the same HTTPS_PORT) a fifth: the nine TLS 1.2 steps next to TLS 1.3's
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


MESSAGE = re.compile(r"^  (\d) (\S+) \xb7 (.+?) \xb7 (\d+) bytes")
CLIENT_LEG = ("client \u2192 tlspeek", "tlspeek \u2192 client")


def client_leg(handshake_blocks):
    """The lines of leg 1 (client <-> tlspeek) of the first handshake block."""
    for b in handshake_blocks:
        text = "\n".join(b)
        if "\u25b6 leg 1" in text and "\u25b6 leg 2" in text:
            return text[text.index("\u25b6 leg 1"):text.index("\u25b6 leg 2")].splitlines()
    return []


def steps(leg_lines):
    """-> [(step, message, direction, bytes, clear)] from a leg's handshake
    lines: `clear` is False when the view marks the message as encrypted on
    the wire."""
    out = []
    for line in leg_lines:
        m = MESSAGE.match(line)
        if m:
            out.append([int(m.group(1)), m.group(2), m.group(3), int(m.group(4)), True])
        elif out and "[encrypted on the wire" in line:
            out[-1][4] = False
    return [tuple(x) for x in out]


def negotiated(leg_lines):
    for line in leg_lines:
        if line.startswith("  negotiated: "):
            return line[len("  negotiated: "):]
    return "?"


def app_records(wire_blocks):
    """application_data records seen on the client leg."""
    return sum(1 for b in wire_blocks if any(d in b[0] for d in CLIENT_LEG)
               for line in b if "application_data (23)" in line and "record" in line)


def step_cells(st, records):
    """One cell per step 1-9: the messages of that step and how they travel."""
    cells = {i: [] for i in range(1, 10)}
    for step, name, _, _, clear in st:
        cell = "%s (%s)" % (name, "clear" if clear else "encrypted")
        if cell not in cells[step]:
            cells[step].append(cell)
    cells[9].append("%d application_data records (encrypted)" % records)
    return {i: ", ".join(c) if c else "-" for i, c in cells.items()}


def print_comparison(s13, s12):
    """Section 5: the steps of both client legs side by side, then the TLS
    1.2 leg's records and handshake."""
    leg13, leg12 = client_leg(s13["handshake"]), client_leg(s12["handshake"])
    c13 = step_cells(steps(leg13), app_records(s13["https_wire"]))
    c12 = step_cells(steps(leg12), app_records(s12["https_wire"]))
    print("client leg, TLS 1.2: %s" % negotiated(leg12))
    print("client leg, TLS 1.3: %s" % negotiated(leg13))
    print("%-5s %-48s %s" % ("step", "TLS 1.2 (--client-tls-max 1.2)", "TLS 1.3 (default)"))
    for i in range(1, 10):
        print("%-5d %-48s %s" % (i, c12[i], c13[i]))
    print("(step 9: TLS 1.3 fetched both files, and its first application_data records carry "
          "the encrypted handshake)")
    clear12 = sum(1 for x in steps(leg12) if x[4])
    clear13 = sum(1 for x in steps(leg13) if x[4])
    print("=== handshake messages in clear text on the client leg: TLS 1.2 %d, TLS 1.3 %d" %
          (clear12, clear13))
    print("\n--- the TLS 1.2 client leg on the wire ---")
    for b in s12["https_wire"]:
        if any(d in b[0] for d in CLIENT_LEG):
            print("\n".join(b))
    print("\n--- the TLS 1.2 client leg's handshake, dissected ---")
    print("\n".join(leg12))


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
    if len(sys.argv) > 4:
        text12 = open(sys.argv[4], encoding="utf-8", errors="replace").read()
        print("\n" + "=" * 78 + "\n=== 5. The client leg at TLS 1.2 next to TLS 1.3: steps 1-9 "
              "on the wire\n" + "=" * 78)
        print_comparison(s, split(text12, http_port, https_port))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
