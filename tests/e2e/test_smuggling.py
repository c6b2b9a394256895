"""HTTP/1 request smuggling through tlspeek: requests framed so that a
lenient proxy and the server behind it would disagree on where a request
ends. For each variant, a hidden request for /secret must be either parsed
by tlspeek (and so answered by --block '~u /secret' with 403) or the whole
message rejected with 400: the upstream must never receive "/secret", and
the transcript (--jsonl) must hold exactly the requests the upstream got.

Also: hop-by-hop fields and Host on the way upstream, token methods,
CONNECT's authority-form, and the 502 when the upstream's response breaks.
Every variant runs over plain http:// (absolute-form, explicit proxy), as
plain HTTP inside a CONNECT tunnel, and inside an intercepted TLS CONNECT
tunnel."""
import json
from collections import Counter
import os
import re
import socket
import ssl
import time

import pytest

from conftest import TcpServer

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawUpstream(TcpServer):
    """A plain or TLS server on 127.0.0.1 that logs every byte it receives
    and every request line it frames (Content-Length or chunked bodies),
    answering each request with OK (or with `reply(head)` when given)."""

    def __init__(self, tls_pem=None, reply=None, close_after=False):
        self.close_after = close_after
        self.received = bytearray()
        self.requests = []
        self.reply = reply
        self.ctx = None
        if tls_pem:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(tls_pem)
        super().__init__()

    def handle(self, c):
        try:
            if self.ctx:
                c = self.ctx.wrap_socket(c, server_side=True)
            c.settimeout(20)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    piece = c.recv(65536)
                    if not piece:
                        return
                    self._log(piece)
                    buf += piece
                head, _, buf = buf.partition(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0]
                with self.lock:
                    self.requests.append(line.decode("latin-1"))
                buf = self._skip_body(c, head, buf)
                if buf is None:
                    return
                c.sendall(self.reply(head) if self.reply else OK)
                if self.close_after:
                    return
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def _log(self, piece):
        with self.lock:
            self.received += piece

    def _more(self, c, buf, n):
        while len(buf) < n:
            piece = c.recv(65536)
            if not piece:
                return None
            self._log(piece)
            buf += piece
        return buf

    def _skip_body(self, c, head, buf):
        m = re.search(rb"\r\ncontent-length:[ \t]*(\d+)", head, re.I)
        if re.search(rb"\r\ntransfer-encoding:[ \t]*chunked", head, re.I):
            while True:
                while b"\r\n" not in buf:
                    buf = self._more(c, buf, len(buf) + 1)
                    if buf is None:
                        return None
                size_line, _, buf = buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    buf = self._more(c, buf, 2)
                    return None if buf is None else buf[2:]
                buf = self._more(c, buf, size + 2)
                if buf is None:
                    return None
                buf = buf[size + 2:]
        if m:
            n = int(m.group(1))
            buf = self._more(c, buf, n)
            return None if buf is None else buf[n:]
        return buf

    def stop(self):
        self.sock.close()


@pytest.fixture
def upstreams():
    made = []

    def make(*args, **kw):
        u = RawUpstream(*args, **kw)
        made.append(u)
        return u
    yield make
    for u in made:
        u.stop()


def read_all(s, timeout=15):
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            piece = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not piece:
            break
        data += piece
    return data


def open_client(mode, proxy, up, pki):
    """A connection to `up` through tlspeek: "http" (explicit proxy, the
    request carries absolute-form), "tunnel" (plain HTTP inside CONNECT) or
    "tls" (TLS inside CONNECT, intercepted)."""
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=15)
    if mode == "http":
        return s
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (up.port, up.port))
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    if mode == "tunnel":
        return s
    ctx = ssl.create_default_context(cafile=pki.proxy_ca)
    return ctx.wrap_socket(s, server_hostname="127.0.0.1")


def target(mode, up, path):
    return (b"http://127.0.0.1:%d%s" % (up.port, path)) if mode == "http" else path


def host(up):
    return b"127.0.0.1:%d" % up.port


# (name, request bytes from t(path) and host, expected answer to the client:
#  "block" = tlspeek parsed the hidden request and --block'ed it (403),
#  "reject" = the framing is ambiguous: 400, nothing of it goes upstream)
def variants():
    def v(t, h):
        hidden = b"GET " + t(b"/secret") + b" HTTP/1.1\r\nHost: " + h + b"\r\n\r\n"
        first = b"POST " + t(b"/first") + b" HTTP/1.1\r\nHost: " + h + b"\r\n"
        get = b"GET " + t(b"/first") + b" HTTP/1.1\r\nHost: " + h + b"\r\n"
        chunked_hidden = b"0\r\n\r\n" + hidden
        cl_hidden = b"%d" % len(chunked_hidden)
        return [
            ("leading-crlf", b"\r\n" + hidden, "block"),
            ("leading-lf", b"\n\n" + hidden, "block"),
            ("pipelined-after-crlf", get + b"\r\n\r\n" + hidden, "block"),
            ("upgrade-h2c-refused", get + b"Connection: Upgrade, HTTP2-Settings\r\n"
             b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n" + hidden, "block"),
            ("upgrade-websocket-refused", get + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
             + hidden, "block"),
            ("cl-te", first + b"Content-Length: " + cl_hidden +
             b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_hidden, "reject"),
            ("te-cl", first + b"Transfer-Encoding: chunked\r\nContent-Length: " + cl_hidden +
             b"\r\n\r\n" + chunked_hidden, "reject"),
            ("te-chunked-identity", first + b"Content-Length: " + cl_hidden +
             b"\r\nTransfer-Encoding: chunked, identity\r\n\r\n" + chunked_hidden, "reject"),
            ("te-space-before-colon", first + b"Transfer-Encoding : chunked\r\n\r\n"
             + chunked_hidden, "reject"),
            ("te-xchunked", first + b"Transfer-Encoding: xchunked\r\n\r\n" + chunked_hidden,
             "reject"),
            ("te-tab", first + b"Transfer-Encoding:\tchunked\r\n\r\n" + chunked_hidden, "block"),
            ("te-upper", first + b"Transfer-Encoding: CHUNKED \r\n\r\n" + chunked_hidden,
             "block"),
            ("te-obs-fold", first + b"Transfer-Encoding:\r\n chunked\r\n\r\n" + chunked_hidden,
             "reject"),
            ("te-folded-into-other", first + b"X-A: b\r\n Transfer-Encoding: chunked\r\n\r\n"
             + chunked_hidden, "reject"),
            ("te-twice", first + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
             + chunked_hidden, "reject"),
            ("cl-duplicate", first + b"Content-Length: 0\r\nContent-Length: " + cl_hidden +
             b"\r\n\r\n" + chunked_hidden, "reject"),
            ("cl-plus", first + b"Content-Length: +0\r\n\r\n" + hidden, "reject"),
            ("cl-hex", first + b"Content-Length: 0x0\r\n\r\n" + hidden, "reject"),
            ("cl-inner-space", first + b"Content-Length: 0 5\r\n\r\n" + hidden, "reject"),
            ("chunk-size-overflow", first + b"Transfer-Encoding: chunked\r\n\r\n"
             b"10000000000000005\r\nhello\r\n0\r\n\r\n" + hidden, "reject"),
            ("chunk-size-ffff", first + b"Transfer-Encoding: chunked\r\n\r\n"
             b"ffffffffffffffff\r\n" + hidden, "reject"),
            ("chunk-no-crlf", first + b"Transfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhelloXX" + chunked_hidden, "reject"),
            ("chunk-ext-quoted-crlf", first + b"Transfer-Encoding: chunked\r\n\r\n"
             b"5;a=\"x\r\n0\r\n\r\n" + hidden + b"\"\r\nhello\r\n0\r\n\r\n", "reject"),
            ("bare-lf", b"POST " + t(b"/first") + b" HTTP/1.1\nHost: " + h +
             b"\nContent-Length: 0\n\n" + hidden, "reject"),
            ("request-line-spaces", b"GET  " + t(b"/first") + b" HTTP/1.1\r\nHost: " + h +
             b"\r\n\r\n" + hidden, "reject"),
            ("lowercase-method", b"get " + t(b"/secret") + b" HTTP/1.1\r\nHost: " + h +
             b"\r\n\r\n", "block"),
            ("two-hosts", get + b"Host: other.example\r\n\r\n" + hidden, "reject"),
        ]
    return v


VARIANT_NAMES = [n for n, _, _ in variants()(lambda p: p, b"h")]


@pytest.mark.parametrize("mode", ["http", "tunnel", "tls"])
def test_smuggled_requests_never_reach_upstream(mode, proxy_factory, pki, upstreams, tmp_path):
    up = upstreams(pki.leaf if mode == "tls" else None)
    jsonl = str(tmp_path / "flows.jsonl")
    p = proxy_factory("--block", "~u /secret", "--jsonl", jsonl)
    outcomes = {}
    for name, data, expect in variants()(lambda path: target(mode, up, path), host(up)):
        before = len(up.requests)
        s = open_client(mode, p, up, pki)
        s.sendall(data)
        reply = read_all(s)
        s.close()
        status = re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)
        want = b"403" if expect == "block" else b"400"
        outcomes[name] = (status, up.requests[before:])
        assert status and status[-1] == want, "%s: %r" % (name, reply[:600])
        if expect == "reject":
            assert b"malformed HTTP request" in reply, "%s: %r" % (name, reply)
    time.sleep(0.3)
    with up.lock:
        received = bytes(up.received)
        requests = list(up.requests)
    assert b"secret" not in received, received
    # The transcript has every request the upstream saw, and the blocked ones.
    flows = []
    deadline = time.time() + 10
    while time.time() < deadline:
        with open(jsonl, "rb") as f:
            flows = [json.loads(line) for line in f.read().splitlines()]
        if len(flows) >= len(requests):
            break
        time.sleep(0.1)
    # Every request the upstream got is in the transcript; every flow it did
    # not get ended in an error there (or is a --block'ed /secret).
    def key(method, url):
        return method + " " + re.sub(r"^https?://[^/]+", "", url)
    got = Counter(" ".join(r.split(" ")[:2]) for r in requests)
    recorded = Counter(key(f["method"], f["url"]) for f in flows)
    assert not got - recorded, (got, flows)
    for f in flows:
        if f["status"] == 403:
            assert f["url"].endswith("/secret"), f
        elif f["status"] != 200:
            assert f["error"], f
    blocked = [f for f in flows if f["status"] == 403]
    n_block = sum(1 for _, _, e in variants()(lambda x: x, b"h") if e == "block")
    assert len(blocked) == n_block, (blocked, outcomes)
    err = p.stderr()
    assert err.count("malformed HTTP request") == len(VARIANT_NAMES) - n_block, err


def _echo_head(head):
    body = head + b"\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@pytest.mark.parametrize("mode", ["http", "tls"])
def test_hop_by_hop_fields_stay_with_tlspeek(mode, proxy_factory, pki, upstreams):
    up = upstreams(pki.leaf if mode == "tls" else None, reply=_echo_head)
    p = proxy_factory()
    s = open_client(mode, p, up, pki)
    s.sendall(b"GET " + target(mode, up, b"/h") + b" HTTP/1.1\r\nHost: wrong.example\r\n"
              b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\nProxy-Connection: keep-alive\r\n"
              b"Connection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 300\r\nTE: gzip\r\n"
              b"X-End: 1\r\n\r\n")
    reply = read_all(s)
    s.close()
    head, _, got = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply
    names = [line.split(b":")[0].lower() for line in got.split(b"\r\n")[1:] if line]
    for hop in (b"proxy-authorization", b"proxy-connection", b"x-hop", b"keep-alive", b"te"):
        assert hop not in names, got
    assert b"\r\nConnection: close\r\n" in got, got
    assert b"\r\nX-End: 1\r\n" in got, got
    if mode == "http":  # absolute-form: Host is the target's authority
        assert got.startswith(b"GET /h HTTP/1.1\r\n"), got
        assert b"\r\nHost: 127.0.0.1:%d\r\n" % up.port in got, got
        assert b"wrong.example" not in got, got


@pytest.mark.parametrize("mode", ["http", "tls"])
def test_token_method_forwarded_unchanged(mode, proxy_factory, pki, upstreams, tmp_path):
    up = upstreams(pki.leaf if mode == "tls" else None)
    jsonl = str(tmp_path / "flows.jsonl")
    p = proxy_factory("--jsonl", jsonl)
    s = open_client(mode, p, up, pki)
    s.sendall(b"FOO " + target(mode, up, b"/m") + b" HTTP/1.1\r\nHost: " + host(up) +
              b"\r\nContent-Length: 3\r\n\r\nabc"
              b"GET " + target(mode, up, b"/after") + b" HTTP/1.1\r\nHost: " + host(up) +
              b"\r\nConnection: close\r\n\r\n")
    reply = read_all(s)
    s.close()
    assert reply.count(b"HTTP/1.1 200 OK") == 2, reply
    assert up.requests == ["FOO /m HTTP/1.1", "GET /after HTTP/1.1"]
    assert b"abcGET /after" in bytes(up.received)
    deadline = time.time() + 10
    while time.time() < deadline and (not os.path.exists(jsonl) or
                                      open(jsonl, "rb").read().count(b"\n") < 2):
        time.sleep(0.1)
    flows = [json.loads(line) for line in open(jsonl, "rb").read().splitlines()]
    assert [f["method"] for f in flows] == ["FOO", "GET"]


def test_connect_with_userinfo_is_refused(proxy_factory, upstreams):
    up = upstreams()
    p = proxy_factory()
    for t in (b"user@127.0.0.1:%d" % up.port, b"user:pw@127.0.0.1:%d" % up.port,
              b"127.0.0.1:%d/path" % up.port):
        s = socket.create_connection(("127.0.0.1", p.port), timeout=15)
        s.sendall(b"CONNECT " + t + b" HTTP/1.1\r\nHost: " + t + b"\r\n\r\n")
        reply = read_all(s)
        s.close()
        assert reply.startswith(b"HTTP/1.1 400 "), reply
        assert b"HOST:PORT" in reply, reply
        if b"@" in t:
            assert b"user information (user@) is not allowed" in reply, reply
    assert up.requests == [] and bytes(up.received) == b""


@pytest.mark.parametrize("mode", ["http", "tls"])
@pytest.mark.parametrize("case", ["mid-head-close", "chunk-size-overflow"])
def test_broken_upstream_response_gives_502(mode, case, proxy_factory, pki, upstreams):
    if case == "mid-head-close":
        answer, cause = b"HTTP/1.1 200 OK\r\nContent-Le", b"in the middle of the response head"
    else:
        answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"
        cause = b"malformed HTTP response"
    up = upstreams(pki.leaf if mode == "tls" else None, reply=lambda head: answer,
                   close_after=True)
    p = proxy_factory()
    s = open_client(mode, p, up, pki)
    s.sendall(b"GET " + target(mode, up, b"/x") + b" HTTP/1.1\r\nHost: " + host(up) + b"\r\n\r\n")
    reply = read_all(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), reply
    assert cause in reply, reply
    lines = [line for line in p.stderr().splitlines() if "upstream 127.0.0.1:%d" % up.port in line]
    assert len(lines) == 1, p.stderr()


@pytest.mark.parametrize("mode", ["http", "tls"])
def test_101_to_a_request_without_upgrade_is_refused(mode, proxy_factory, pki, upstreams):
    """A server that answers 101 to a request that asked for no Upgrade must
    not turn the client's connection into a raw stream: the client's next
    request would reach that server unparsed, past --block."""
    sw = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n"
    up = upstreams(pki.leaf if mode == "tls" else None, reply=lambda head: sw)
    p = proxy_factory("--block", "~u /secret")
    s = open_client(mode, p, up, pki)
    s.sendall(b"GET " + target(mode, up, b"/first") + b" HTTP/1.1\r\nHost: " + host(up) +
              b"\r\n\r\n")
    s.settimeout(15)
    reply = b""
    while b"\r\n\r\n" not in reply:
        piece = s.recv(65536)
        if not piece:
            break
        reply += piece
    try:
        s.sendall(b"GET " + target(mode, up, b"/secret") + b" HTTP/1.1\r\nHost: " + host(up) +
                  b"\r\n\r\n")
    except OSError:
        pass
    reply += read_all(s, timeout=3)
    s.close()
    time.sleep(0.3)
    assert reply.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), reply
    assert b"101 Switching Protocols to a request that asked for no Upgrade" in reply, reply
    with up.lock:
        assert b"secret" not in bytes(up.received), bytes(up.received)


@pytest.mark.parametrize("mode", ["http", "tls"])
def test_response_without_a_request_is_not_passed_on(mode, proxy_factory, pki, upstreams):
    """A server that sends a second response after the one asked for must not
    reach the client: the client would read it as the answer to its next
    request, which in explicit mode may be for another host. The client
    gets the real answer, then the connection closes."""
    evil = OK + b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nEVIL!!"
    a = upstreams(pki.leaf if mode == "tls" else None, reply=lambda head: evil)
    b = upstreams()
    p = proxy_factory()
    s = open_client(mode, p, a, pki)
    s.sendall(b"GET " + target(mode, a, b"/a") + b" HTTP/1.1\r\nHost: " + host(a) + b"\r\n\r\n")
    time.sleep(0.5)
    try:
        s.sendall(b"GET " + target(mode, b, b"/b") + b" HTTP/1.1\r\nHost: " + host(b) +
                  b"\r\nConnection: close\r\n\r\n")
    except OSError:
        pass
    reply = read_all(s, timeout=5)
    s.close()
    assert reply.startswith(OK), reply
    assert b"EVIL" not in reply, reply
    assert "when no request was waiting for one" in p.stderr(), p.stderr()
