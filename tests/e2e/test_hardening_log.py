"""Names from the network cannot inject into tlspeek's log: control bytes in
an SNI or a SOCKS5 domain name show as escapes on stderr, never raw."""
import os
import socket
import struct

EVIL = b"evil\n\x1b[31mX"
EVIL_ESCAPED = "evil\\n\\x1b[31mX"
EVIL_RAW_FF = b"evil\xff\x1b]0;pwned\x07X"
EVIL_RAW_FF_ESCAPED = "evil\\xff\\x1b]0;pwned\\x07X"


def client_hello(sni):
    """A TLS 1.2 ClientHello whose server_name is `sni`, byte for byte (the
    ssl module refuses such names, so it is built here)."""
    def ext(kind, body):
        return struct.pack("!HH", kind, len(body)) + body

    name = struct.pack("!BH", 0, len(sni)) + sni
    exts = (ext(0x0000, struct.pack("!H", len(name)) + name)
            + ext(0x000a, struct.pack("!HHH", 4, 0x001d, 0x0017))   # x25519, P-256
            + ext(0x000b, b"\x01\x00")                              # uncompressed points
            + ext(0x000d, struct.pack("!HHHHH", 8, 0x0403, 0x0804, 0x0401, 0x0805)))
    suites = [0xc02f, 0xc02b, 0xc030, 0xc02c, 0x009e]
    body = (b"\x03\x03" + os.urandom(32) + b"\x00"
            + struct.pack("!H", 2 * len(suites)) + b"".join(struct.pack("!H", s) for s in suites)
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def recv_some(s, n=4096):
    try:
        return s.recv(n)
    except OSError:
        return b""


def assert_no_injection(err, escaped):
    assert "\x1b" not in err, repr(err[-3000:])
    assert escaped in err, err[-3000:]
    for line in err.splitlines():
        assert not line.startswith("[31m"), repr(line)  # no line split by the name
        assert line.startswith("tlspeek: "), repr(line)


def test_sni_cannot_inject_into_log(proxy_factory, https_upstream):
    p = proxy_factory("--log-level", "debug")
    for sni in (EVIL, EVIL_RAW_FF):
        with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
            target = "127.0.0.1:%d" % https_upstream.port
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
            assert b" 200" in recv_some(s).split(b"\r\n")[0]
            s.sendall(client_hello(sni))
            while recv_some(s):
                pass
    p.stop()
    raw = open(p.err_path, "rb").read()
    assert b"\x1b" not in raw and b"\xff" not in raw, raw[-3000:]
    err = raw.decode("utf-8")
    assert_no_injection(err, EVIL_ESCAPED)
    assert_no_injection(err, EVIL_RAW_FF_ESCAPED)


def socks5_connect(port, name):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", 443))
        # Closed before any data: tlspeek never looks the name up.
        return recv_some(s)


def test_socks5_domain_cannot_inject_into_log(proxy_factory):
    p = proxy_factory("--mode", "socks5", "--log-level", "debug")
    for name in (EVIL, EVIL_RAW_FF):
        reply = socks5_connect(p.port, name)
        assert reply[:2] == b"\x05\x00", reply
    p.stop()
    raw = open(p.err_path, "rb").read()
    assert b"\x1b" not in raw and b"\xff" not in raw, raw[-3000:]
    err = raw.decode("utf-8")
    assert_no_injection(err, EVIL_ESCAPED)
    assert_no_injection(err, EVIL_RAW_FF_ESCAPED)
