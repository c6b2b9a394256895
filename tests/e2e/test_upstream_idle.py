"""--upstream-idle: between HTTP requests an idle upstream connection is
closed while the client's stays open; the next request reconnects.

The upstream's /peer endpoint answers with the address of the connection it
arrived on, so two requests show whether they shared an upstream connection.
"""
import http.client
import json
import socket
import ssl
import time

from conftest import Upstream



def recv_response(sock):
    """One Content-Length response from a raw socket: (status, body text)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response: %r" % buf
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        rest += chunk
    return int(head.split(b" ")[1]), rest[:length].decode()


def tls_client(proxy, pki):
    ctx = ssl.create_default_context(cafile=pki.proxy_ca)
    return http.client.HTTPSConnection("localhost", proxy.port, context=ctx, timeout=20)


def get_peer(conn, headers=None):
    conn.request("GET", "/peer", headers=headers or {})
    r = conn.getresponse()
    body = r.read().decode()
    assert r.status == 200, body
    return body


def reverse_proxy(proxy_factory, https_upstream, *args):
    return proxy_factory("-m", "reverse:https://localhost:%d" % https_upstream.port, "-q",
                         "--log-level", "debug", *args)


def test_idle_upstream_is_closed_and_the_next_request_reconnects(proxy_factory, pki,
                                                                  https_upstream):
    p = reverse_proxy(proxy_factory, https_upstream, "--upstream-idle", "0.3")
    c = tls_client(p, pki)
    first = get_peer(c)
    sock = c.sock
    assert get_peer(c) == first          # back to back: the same upstream connection
    time.sleep(1.0)
    assert "closed until the next request" in p.stderr()
    again = get_peer(c)
    assert c.sock is sock                 # the client's connection was kept
    assert again != first                 # a new upstream connection
    assert get_peer(c) == again
    assert "reconnecting upstream" in p.stderr()
    c.close()


def test_upstream_idle_0_keeps_the_upstream(proxy_factory, pki, https_upstream):
    p = reverse_proxy(proxy_factory, https_upstream, "--upstream-idle", "0")
    c = tls_client(p, pki)
    first = get_peer(c)
    time.sleep(1.0)
    assert get_peer(c) == first
    assert "closed until the next request" not in p.stderr()
    c.close()


def test_connection_bound_auth_keeps_the_upstream(proxy_factory, pki, https_upstream):
    p = reverse_proxy(proxy_factory, https_upstream, "--upstream-idle", "0.3")
    c = tls_client(p, pki)
    first = get_peer(c, {"Authorization": "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAF1YAAAADw=="})
    time.sleep(1.0)
    assert get_peer(c) == first
    assert "closed until the next request" not in p.stderr()
    c.close()


def test_explicit_plain_http_reconnects(proxy_factory, http_upstream):
    p = proxy_factory("-q", "--log-level", "debug", "--upstream-idle", "0.3")
    s = socket.create_connection(("127.0.0.1", p.port), timeout=20)
    req = ("GET http://127.0.0.1:%d/peer HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
           % (http_upstream.port, http_upstream.port)).encode()
    peers = []
    for pause in (0, 1.0):
        time.sleep(pause)
        s.sendall(req)
        status, body = recv_response(s)
        assert status == 200
        peers.append(body)
    assert peers[0] != peers[1]
    assert "closed until the next request" in p.stderr()
    s.close()


def test_many_idle_clients_release_beyond_the_worker_limit(proxy_factory, pki, https_upstream):
    # One worker; the idle time is long, but past 64 idle upstreams the newly
    # idle ones are closed at once (100 ms), so memory does not grow with them.
    p = reverse_proxy(proxy_factory, https_upstream, "-t", "1", "--upstream-idle", "60")
    conns, first = [], []
    for _ in range(70):
        c = tls_client(p, pki)
        first.append(get_peer(c))
        conns.append(c)
    time.sleep(1.0)
    assert get_peer(conns[0]) == first[0]      # within the limit: kept for 60 s
    assert get_peer(conns[-1]) != first[-1]    # beyond it: closed, then reopened
    assert p.stderr().count("closed until the next request") >= 5
    for c in conns:
        c.close()


def test_heap_trim_once_a_burst_is_over_not_per_release(proxy_factory, pki, https_upstream):
    # 60 clients, one request each, all released 0.3 s later: the heap is
    # trimmed when the burst is over, once or twice, not once per release (a
    # trim walks every arena).
    p = reverse_proxy(proxy_factory, https_upstream, "-t", "2", "--upstream-idle", "0.3")
    conns = []
    for _ in range(60):
        c = tls_client(p, pki)
        get_peer(c)
        conns.append(c)
    deadline = time.time() + 10
    while p.stderr().count("closed until the next request") < 60 and time.time() < deadline:
        time.sleep(0.1)
    assert p.stderr().count("closed until the next request") == 60, p.stderr()[-2000:]
    trims = p.stderr().count("(malloc_trim)")
    assert 1 <= trims <= 2, p.stderr()[-2000:]
    for c in conns:
        c.close()


def test_released_upstream_then_another_origin(proxy_factory, http_upstream):
    other = Upstream()
    try:
        p = proxy_factory("-q", "--log-level", "debug", "--upstream-idle", "0.3")
        s = socket.create_connection(("127.0.0.1", p.port), timeout=20)
        s.sendall(("GET http://127.0.0.1:%d/text HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                   % (http_upstream.port, http_upstream.port)).encode())
        assert recv_response(s)[0] == 200
        time.sleep(1.0)
        assert "closed until the next request" in p.stderr()
        direct = socket.create_connection(("127.0.0.1", other.port), timeout=20)
        direct.sendall(b"GET /count HTTP/1.1\r\nHost: x\r\n\r\n")
        seen = int(recv_response(direct)[1])
        direct.close()
        s.sendall(("GET http://127.0.0.1:%d/count HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                   % (other.port, other.port)).encode())
        status, body = recv_response(s)
        assert status == 200 and int(body) == seen + 1   # answered by the other origin
        s.close()
    finally:
        other.stop()


def test_har_timings_show_the_reconnection(proxy_factory, pki, https_upstream, tmp_path):
    har = str(tmp_path / "flows.har")
    p = reverse_proxy(proxy_factory, https_upstream, "--upstream-idle", "0.3", "--har", har)
    c = tls_client(p, pki)
    get_peer(c)
    get_peer(c)
    time.sleep(1.0)
    get_peer(c)
    c.close()
    assert p.stop() == 0
    with open(har) as f:
        entries = json.load(f)["log"]["entries"]
    connect = [e["timings"]["connect"] for e in entries]
    assert len(connect) == 3
    assert connect[0] >= 0       # the connection's first flow paid for the set-up
    assert connect[1] == -1      # the second reused it
    assert connect[2] >= 0       # the third paid for the reconnection
    assert entries[2]["timings"]["ssl"] >= 0


def test_requests_racing_the_release(proxy_factory, pki, https_upstream):
    # Pauses around the (tiny) idle time make requests arrive just before,
    # during and after upstream closes: every one must still be answered.
    import random
    import threading
    p = reverse_proxy(proxy_factory, https_upstream, "--upstream-idle", "0.02")
    errors, answered = [], []

    def client(seed):
        rnd = random.Random(seed)
        try:
            c = tls_client(p, pki)
            for _ in range(25):
                time.sleep(rnd.choice((0, 0.005, 0.015, 0.02, 0.025, 0.04)))
                c.request("GET", "/bin/%d" % rnd.choice((10, 3000, 70000)))
                r = c.getresponse()
                body = r.read()
                if r.status != 200 or len(body) != int(r.getheader("Content-Length")):
                    errors.append("status %d, %d bytes" % (r.status, len(body)))
                answered.append(1)
            c.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    assert len(answered) == 16 * 25
    assert "closed until the next request" in p.stderr()
    assert "reconnecting upstream" in p.stderr()
