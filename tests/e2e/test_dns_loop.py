"""Name resolution that never holds up other sessions (c-ares on the worker
loop, --dns-server, --dns-timeout), and loop detection after resolution:
every spelling of tlspeek's own address is refused, in every mode."""
import os
import socket
import struct
import threading
import time

import pytest

from conftest import curl
from upstream_server import TEXT


class FakeDns:
    """A tiny DNS server on 127.0.0.1 (UDP). Names starting with "hang"
    never get an answer; `answers` maps a name to its IPv4 address; "nx..."
    names get NXDOMAIN, "refused..." names REFUSED; AAAA questions for the
    known names get an empty answer."""

    def __init__(self, answers):
        self.answers = answers
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.asked = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
            except OSError:
                return
            reply = self._answer(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def _answer(self, q):
        if len(q) < 12:
            return None
        qid, flags = struct.unpack("!HH", q[:4])
        labels, pos = [], 12
        while pos < len(q) and q[pos] != 0:
            n = q[pos]
            labels.append(q[pos + 1:pos + 1 + n].decode("ascii", "replace"))
            pos += 1 + n
        pos += 1
        if pos + 4 > len(q):
            return None
        qtype = struct.unpack("!H", q[pos:pos + 2])[0]
        question = q[12:pos + 4]
        name = ".".join(labels).lower()
        with self.lock:
            self.asked.append((name, qtype))
        if name.startswith("hang"):
            return None
        rcode, answer = 3, b""  # NXDOMAIN
        if name.startswith("refused"):
            rcode = 5
        elif name in self.answers:
            rcode = 0
            if qtype == 1:
                answer = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) +
                          socket.inet_aton(self.answers[name]))
        head = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1,
                           1 if answer else 0, 0, 0)
        return head + question + answer

    def close(self):
        self.sock.close()


@pytest.fixture
def fake_dns():
    d = FakeDns({"ok.test": "127.0.0.1", "self.test": "127.0.0.1"})
    yield d
    d.close()


def http_via(proxy_port, url, timeout=30):
    """One absolute-form GET through the proxy; returns (status, body)."""
    r = curl("-x", "http://127.0.0.1:%d" % proxy_port, "-w", "\n%{http_code}", url,
             timeout=timeout)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or b"0"), body


def open_fds(p):
    return len(os.listdir("/proc/%d/fd" % p.proc.pid))


def test_hanging_dns_lookups_do_not_stall_other_requests(proxy_factory, http_upstream, fake_dns):
    """Eight lookups the DNS server never answers, on a single worker: names
    it does answer, localhost and numeric addresses are served meanwhile;
    the hanging ones end with a 504 that names the DNS timeout."""
    p = proxy_factory("-t", "1", "--dns-server", "127.0.0.1:%d" % fake_dns.port,
                      "--dns-timeout", "4")
    hp = http_upstream.port
    results = {}

    def hang(i):
        results[i] = http_via(p.port, "http://hang%d.test:%d/text" % (i, hp))

    hangers = [threading.Thread(target=hang, args=(i,)) for i in range(8)]
    for t in hangers:
        t.start()
    # Wait until the server saw every hanging question: they are all pending.
    deadline = time.time() + 20
    while time.time() < deadline:
        with fake_dns.lock:
            seen = {n for n, _ in fake_dns.asked if n.startswith("hang")}
        if len(seen) == 8:
            break
        time.sleep(0.02)
    assert len(seen) == 8, seen
    for url in ("http://ok.test:%d/text" % hp, "http://127.0.0.1:%d/text" % hp,
                "http://localhost:%d/text" % hp):
        status, body = http_via(p.port, url)
        assert (status, body) == (200, TEXT), (url, status, body)
    # Served while every hanging lookup was still pending (none answered yet).
    assert results == {}, results
    for t in hangers:
        t.join(timeout=60)
    assert sorted(results) == list(range(8))
    for i, (status, body) in results.items():
        assert status == 504, (i, status, body)
        assert b"DNS lookup of hang%d.test timed out after 4.0 s" % i in body, body
        assert b"127.0.0.1:%d" % fake_dns.port in body, body


def test_dns_failures_are_named(proxy_factory, http_upstream, fake_dns):
    p = proxy_factory("--dns-server", "127.0.0.1:%d" % fake_dns.port)
    status, body = http_via(p.port, "http://nx.test:%d/" % http_upstream.port)
    assert status == 502, body
    assert b"cannot resolve nx.test: no such host (NXDOMAIN" in body, body
    status, body = http_via(p.port, "http://refused.test:%d/" % http_upstream.port)
    assert status == 502, body
    assert b"cannot resolve refused.test: no DNS server gave a usable answer" in body, body


def test_bad_dns_options_are_refused(proxy_factory):
    from conftest import run
    for args, text in ((["--dns-server", "not-an-ip"], b"bad --dns-server 'not-an-ip'"),
                       (["--dns-timeout", "0"], b"bad --dns-timeout '0'")):
        r = run(args)
        assert r.returncode != 0
        assert text in r.stderr, r.stderr


SPELLINGS = ("0.0.0.0", "LOCALHOST", "localhost.", "2130706433", "0x7f000001",
             "[::ffff:127.0.0.1]", "127.1", "127.0.0.1")


def raw_exchange(port, data, timeout=10):
    """Sends `data` in one write and reads until the proxy closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


def socks5_connect(port, host, dport):
    """A SOCKS5 CONNECT by name (ATYP 3); returns the reply code."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    name = host.strip("[]").encode()
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", dport))
    reply = s.recv(10)
    s.close()
    return reply[1]


@pytest.fixture
def looped_proxy(proxy_factory, fake_dns):
    """Explicit on 127.0.0.1:P (the fixture's), SOCKS5 on 127.0.0.1, and
    explicit on the wildcard 0.0.0.0."""
    socks, wild = free_ports(2)
    p = proxy_factory("--dns-server", "127.0.0.1:%d" % fake_dns.port, "-m", "explicit",
                      "-m", "socks5@127.0.0.1:%d" % socks, "-m", "explicit@0.0.0.0:%d" % wild)
    p.socks, p.wild = socks, wild
    return p


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_every_spelling_of_our_own_address_is_refused(looped_proxy, http_upstream):
    p = looped_proxy
    for port in (p.port, p.wild, p.socks):
        for host in SPELLINGS:
            out = raw_exchange(p.port, b"CONNECT %s:%d HTTP/1.1\r\nHost: x\r\n\r\n"
                               % (host.encode(), port))
            assert out.startswith(b"HTTP/1.1 508 Loop Detected"), (host, port, out)
            assert b"own listener" in out, out
            out = raw_exchange(p.port, b"GET http://%s:%d/ HTTP/1.1\r\nHost: x\r\n\r\n"
                               % (host.encode(), port))
            assert out.startswith(b"HTTP/1.1 508 Loop Detected"), (host, port, out)
            assert socks5_connect(p.socks, host, port) == 2, (host, port)
    # A name that DNS resolves to us: caught after resolution.
    status, body = http_via(p.port, "http://self.test:%d/" % p.wild)
    assert status == 508 and b"self.test:%d (127.0.0.1) is tlspeek's own listener" % p.wild \
        in body, body
    # Inside a CONNECT tunnel the refusal is the tunnel's first answer.
    out = raw_exchange(p.port, b"CONNECT self.test:%d HTTP/1.1\r\n\r\n"
                       b"GET / HTTP/1.1\r\nHost: self.test\r\n\r\n" % p.port)
    assert b"HTTP/1.1 508 Loop Detected" in out, out
    # The listeners still serve everyone else.
    for port in (p.port, p.wild):
        status, body = http_via(port, "http://127.0.0.1:%d/text" % http_upstream.port)
        assert (status, body) == (200, TEXT)
    assert open_fds(p) < 40, [os.readlink("/proc/%d/fd/%s" % (p.proc.pid, f)) for f in os.listdir("/proc/%d/fd" % p.proc.pid)]


def test_reverse_and_upstream_modes_refuse_to_target_themselves(proxy_factory, http_upstream):
    """A reverse target or a next proxy that is tlspeek itself: 508 at once."""
    wild, rev, up = free_ports(3)
    p = proxy_factory("-m", "explicit", "-m", "explicit@0.0.0.0:%d" % wild,
                      "-m", "reverse:http://LOCALHOST:%d@127.0.0.1:%d" % (wild, rev),
                      "-m", "upstream:http://2130706433:%d@127.0.0.1:%d" % (wild, up))
    out = raw_exchange(rev, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 508 Loop Detected"), out
    assert b"own listener 0.0.0.0:%d" % wild in out, out
    status, body = http_via(up, "http://127.0.0.1:%d/text" % http_upstream.port)
    assert status == 508 and b"2130706433:%d (127.0.0.1) is tlspeek's own listener" % wild \
        in body, body
    status, body = http_via(p.port, "http://127.0.0.1:%d/text" % http_upstream.port)
    assert (status, body) == (200, TEXT)
    assert open_fds(p) < 40


def test_one_write_of_pipelined_connects_creates_no_nested_sessions(looped_proxy):
    """12 KB of CONNECTs to ourselves in one write: one 508, no recursion."""
    p = looped_proxy
    before = open_fds(p)
    one = b"CONNECT 127.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % p.wild
    out = raw_exchange(p.port, one * (12 * 1024 // len(one)))
    assert out.count(b"HTTP/1.1 508 Loop Detected") == 1, out[:400]
    one = b"CONNECT self.test:%d HTTP/1.1\r\n\r\n" % p.port
    out = raw_exchange(p.port, one * (12 * 1024 // len(one)))
    assert out.startswith(b"HTTP/1.1 200 Connection established"), out[:200]
    assert out.count(b"508 Loop Detected") == 1, out[:600]
    assert open_fds(p) <= before + 2, (before, os.listdir("/proc/%d/fd" % p.proc.pid))
    assert p.stderr().count("loop back into tlspeek") == 2, p.stderr()[-2000:]


def test_fd_limit_is_named_as_the_cause(proxy_factory, http_upstream, fake_dns):
    """With the open-file limit reached, the DNS socket (and the upstream
    socket) cannot be opened: the answer says so, not a misleading errno."""
    import resource
    p = proxy_factory("-t", "1", "--dns-server", "127.0.0.1:%d" % fake_dns.port)
    hp = http_upstream.port
    limit = open_fds(p) + 6
    resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
    held = []
    try:
        # Idle clients take every descriptor but the last one.
        while open_fds(p) < limit - 1:
            n = open_fds(p)
            held.append(socket.create_connection(("127.0.0.1", p.port)))
            deadline = time.time() + 10
            while open_fds(p) == n and time.time() < deadline:
                time.sleep(0.01)
        assert open_fds(p) == limit - 1
        for url, text in (("http://ok.test:%d/text" % hp,
                           b"cannot resolve ok.test: no file descriptor left for a DNS socket "
                           b"(the open-file limit, ulimit -n, is reached)"),
                          ("http://127.0.0.1:%d/text" % hp,
                           b"cannot connect to 127.0.0.1:%d: no file descriptor left for the "
                           b"upstream socket (the open-file limit, ulimit -n, is reached)" % hp)):
            status, body = http_via(p.port, url)
            assert status == 502 and text in body, (url, status, body)
    finally:
        for s in held:
            s.close()
    deadline = time.time() + 10
    while open_fds(p) >= limit - 3 and time.time() < deadline:
        time.sleep(0.02)
    status, body = http_via(p.port, "http://ok.test:%d/text" % hp)
    assert (status, body) == (200, TEXT)


def test_connection_from_our_own_upstream_socket_is_refused(pki):
    """An iptables REDIRECT (in a namespace of its own) sends tlspeek's
    connection to 127.0.0.1:7070 back into tlspeek's explicit listener:
    the address check cannot see that, the accept-side check must. One
    refusal, no nested session, and the client gets a 502."""
    from test_modes import Netns, NsTlspeek, need_root
    need_root()
    ns = Netns()
    tp = None
    try:
        ns.check("iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.1",
                 "--dport", "7070", "-j", "REDIRECT", "--to-ports", "9000")
        # One worker: the upstream socket is registered before the loop can
        # accept the connection it makes.
        tp = NsTlspeek(ns, ["--ca-dir", pki.proxy_ca_dir, "-t", "1", "-l", "127.0.0.1:9000"],
                       listeners=1)
        r = ns.run("curl", "-sS", "--max-time", "20", "-x",
                   "http://127.0.0.1:9000", "-w", "\n%{http_code}", "http://127.0.0.1:7070/",
                   timeout=30)
        assert r.stdout.endswith(b"\n502"), (r.stdout, r.stderr)
        err = tp.stderr()
        assert err.count("comes from one of tlspeek's own upstream sockets") == 1, err
        assert "session 3" not in err, err
    finally:
        rc = tp.stop() if tp else 0
        ns.close()
    assert rc == 0
