"""End-to-end tests for the client deadlines: a ClientHello or a request
head dribbled byte by byte (slowloris) is cut off at --client-hello-timeout
/ --request-timeout (408 for an HTTP request head), an idle keep-alive
connection is closed at --keepalive-timeout, a normal client on the same
proxy is served meanwhile, and a client that has not finished its
ClientHello holds no upstream connection.

Short option values (1-2 s) keep the tests quick; nothing asserts how fast
anything happened, only what happened and in which order.
"""
import os
import socket
import ssl
import threading
import time

import pytest

from conftest import BIN, TcpServer, curl, free_port
from upstream_server import TEXT


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"tlspeek binary not found at {BIN} (build it or set TLSPEEK_BIN)")


class CountingServer(TcpServer):
    """Accepts TCP connections on 127.0.0.1, counts them, holds them open."""

    def __init__(self):
        self.conns = []
        super().__init__()

    def handle(self, conn):
        self.conns.append(conn)

    def close(self):
        super().close()
        for c in self.conns:
            c.close()


def client_hello(server_name="localhost"):
    """The bytes of a real ClientHello (Python's ssl, through memory BIOs)."""
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


class Dribbler(threading.Thread):
    """Sends `data` one byte every `pause` seconds until tlspeek closes the
    connection; records how many bytes went out and what came back."""

    def __init__(self, port, data, pause=0.5):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.data, self.pause = data, pause
        self.sent, self.answer, self.closed = 0, b"", False

    def run(self):
        try:
            for i in range(len(self.data)):
                self.sock.sendall(self.data[i:i + 1])
                self.sent += 1
                time.sleep(self.pause)
                self.sock.setblocking(False)
                try:
                    d = self.sock.recv(65536)
                    if not d:
                        self.closed = True
                        return
                    self.answer += d
                except BlockingIOError:
                    pass
                finally:
                    self.sock.setblocking(True)
        except OSError:
            self.closed = True
        finally:
            self.sock.close()


def wait_closed(sock, timeout=30):
    """Reads until EOF (or reset); returns what came."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                return data
            data += d
    except ConnectionResetError:
        return data


def test_slow_client_hello_is_cut_off_without_upstream(pki, https_upstream, proxy_factory):
    counter = CountingServer()
    try:
        rport = free_port()
        p = proxy_factory("--client-hello-timeout", "2",
                          "-m", "explicit",
                          "-m", "reverse:https://127.0.0.1:%d@127.0.0.1:%d" % (counter.port, rport))
        hello = client_hello()
        idle = socket.create_connection(("127.0.0.1", rport))  # sends nothing at all
        slow = Dribbler(rport, hello)
        # Through a CONNECT tunnel too: the deadline starts with the tunnel.
        tunnel = socket.create_connection(("127.0.0.1", p.port), timeout=30)
        tunnel.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % counter.port)
        assert tunnel.recv(1000).startswith(b"HTTP/1.1 200")
        slow_tunnel = threading.Thread(target=lambda: [tunnel.sendall(hello[i:i + 1]) or
                                                       time.sleep(0.5) for i in range(3)],
                                       daemon=True)
        slow.start()
        slow_tunnel.start()
        # A normal client is served meanwhile, on both listeners' proxy.
        r = curl("--cacert", pki.proxy_ca, "-x", p.url, "https://localhost:%d/text" % https_upstream.port)
        assert r.returncode == 0 and r.stdout == TEXT, r.stderr.decode()
        assert wait_closed(idle) == b""
        assert wait_closed(tunnel) == b""
        slow.join(60)
        assert slow.closed and slow.sent < len(hello), (slow.sent, len(hello))
        assert slow.answer == b""
        # None of them ever got an upstream connection.
        assert counter.accepted == 0
        err = p.stderr()
        assert "ClientHello not complete after 2.0 s (--client-hello-timeout)" in err, err
        assert "nothing received after 2.0 s" in err, err
        idle.close()
    finally:
        counter.close()


def test_slow_request_head_gets_408(pki, http_upstream, https_upstream, proxy_factory):
    p = proxy_factory("--request-timeout", "2", "--client-hello-timeout", "2")
    head = b"GET http://127.0.0.1:%d/text HTTP/1.1\r\nHost: x\r\nX-Slow: %s\r\n\r\n" % (
        http_upstream.port, b"y" * 200)
    slow = Dribbler(p.port, head, pause=0.3)
    slow.start()
    r = curl("-x", p.url, "http://127.0.0.1:%d/text" % http_upstream.port)
    assert r.returncode == 0 and r.stdout == TEXT, r.stderr.decode()
    slow.join(60)
    assert slow.closed and slow.sent < len(head)
    assert slow.answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), slow.answer
    assert b"Connection: close" in slow.answer
    assert "request head not complete after 2.0 s (--request-timeout); answered 408" in p.stderr()

    # The second request of a keep-alive connection, inside TLS, is timed
    # from its own first byte.
    ctx = ssl.create_default_context(cafile=pki.proxy_ca)
    raw = socket.create_connection(("127.0.0.1", p.port), timeout=30)
    raw.sendall(b"CONNECT localhost:%d HTTP/1.1\r\nHost: x\r\n\r\n" % https_upstream.port)
    assert raw.recv(1000).startswith(b"HTTP/1.1 200")
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    tls.sendall(b"GET /text HTTP/1.1\r\nHost: localhost\r\n\r\n")
    first = b""
    while not first.endswith(TEXT):
        first += tls.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    for b in b"GET /text HTTP/1.1\r\n":
        try:
            tls.sendall(bytes([b]))
        except OSError:
            break
        time.sleep(0.3)
    answer = wait_closed(tls)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer


def test_idle_keepalive_connection_is_closed(http_upstream, proxy_factory):
    p = proxy_factory("--keepalive-timeout", "1", "--log-level", "debug")
    s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
    s.sendall(b"GET http://127.0.0.1:%d/text HTTP/1.1\r\nHost: x\r\n\r\n" % http_upstream.port)
    data = wait_closed(s)
    # The answer, then a plain close: no 408 for a request never begun.
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(TEXT), data
    assert b"408" not in data
    assert "no new request for 1.0 s on a keep-alive connection" in p.stderr()


def test_slow_http_head_holds_no_upstream(proxy_factory):
    counter = CountingServer()
    try:
        rport = free_port()
        p = proxy_factory("--request-timeout", "2",
                          "-m", "reverse:http://127.0.0.1:%d@127.0.0.1:%d" % (counter.port, rport))
        head = b"GET /text HTTP/1.1\r\nHost: x\r\nX-Slow: %s\r\n\r\n" % (b"y" * 200)
        slow = Dribbler(rport, head, pause=0.3)
        slow.start()
        slow.join(60)
        assert slow.closed and slow.sent < len(head)
        assert slow.answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), slow.answer
        assert counter.accepted == 0
        # A complete head does reach the upstream.
        s = socket.create_connection(("127.0.0.1", rport), timeout=30)
        s.sendall(b"GET /text HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.time() + 20
        while counter.accepted == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert counter.accepted == 1
        s.close()
        assert p.proc.poll() is None
    finally:
        counter.close()


def test_timeout_lines_are_rate_limited(proxy_factory):
    p = proxy_factory("-t", "1", "--client-hello-timeout", "1")
    socks = [socket.create_connection(("127.0.0.1", p.port)) for _ in range(8)]
    for s in socks:
        assert wait_closed(s) == b""
        s.close()
    deadline = time.time() + 10
    while p.stderr().count("nothing received after 1.0 s") < 5 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    # Five lines at info level; the other three only at debug level.
    assert p.stderr().count("nothing received after 1.0 s") == 5, p.stderr()


class UpgradeEchoServer(TcpServer):
    """Answers one request per connection with 101, then echoes bytes."""

    def handle(self, c):
        with c:
            data = b""
            while b"\r\n\r\n" not in data:
                d = c.recv(65536)
                if not d:
                    return
                data += d
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n")
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)


def test_upgraded_connection_outlives_the_http_deadlines(proxy_factory):
    srv = UpgradeEchoServer()
    try:
        p = proxy_factory("--keepalive-timeout", "1", "--request-timeout", "1",
                          "--client-hello-timeout", "1")
        s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
        s.sendall(b"GET http://127.0.0.1:%d/ws HTTP/1.1\r\nHost: x\r\nUpgrade: raw\r\n"
                  b"Connection: Upgrade\r\n\r\n" % srv.port)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        assert head.startswith(b"HTTP/1.1 101"), head
        # Longer than every client deadline: a relay is timed by --idle-timeout only.
        time.sleep(2.5)
        s.sendall(b"still here")
        got = b""
        while len(got) < 10:
            d = s.recv(65536)
            assert d, "tlspeek closed the upgraded connection"
            got += d
        assert got == b"still here"
        s.close()
    finally:
        srv.close()
