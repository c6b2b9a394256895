"""End-to-end tests for tlspeek's other ways of getting traffic: transparent
mode (iptables REDIRECT, in network namespaces this file creates), SOCKS5,
upstream-proxy chaining, --ignore-hosts, and the
examples/transparent/run.sh demo.

Real clients (curl, Python sockets/ssl, openssl) against the real origin
servers of upstream_server.py. Traffic stays on 127.0.0.1/::1, either on the
host or inside a namespace made here (named tpk-<pid>-N and deleted in
teardown, together with its iptables rules and processes). Every CA is named
explicitly.

Run from tests/e2e:
  TLSPEEK_BIN=/path/to/tlspeek /usr/bin/python3 -m pytest -q test_modes.py
"""
import hashlib
import itertools
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import pytest

from conftest import BIN, HERE, ROOT, TcpServer, Upstream, clean_env, curl
from upstream_server import TEXT, payload

ASAN = os.environ.get("TLSPEEK_ASAN") == "1"
BIG = 200_000  # bytes of /bin/N fetched through each mode


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"tlspeek binary not found at {BIN} (build it or set TLSPEEK_BIN)")


# ---- helpers -----------------------------------------------------------------

def xxd_lines(data, start=0, indent="    "):
    """The hexdump of `data` as tlspeek prints it (xxd layout), offsets from `start`."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        hx = chunk.hex()
        groups = " ".join(hx[i:i + 4] for i in range(0, len(hx), 4))
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append("%s%08x: %s  %s" % (indent, start + off, groups.ljust(39), text))
    return lines


def flow_lines(out):
    """The flow lines (not indented) of tlspeek's traffic view."""
    return [l for l in out.splitlines() if l and not l.startswith(" ")]


def one_flow(proxy, pattern, timeout=10.0):
    """Waits until a flow line of `proxy`'s output (anything with stdout())
    matches regex `pattern`, and returns it; exactly one must match."""
    def found():
        return [l for l in flow_lines(proxy.stdout()) if re.search(pattern, l)]
    try:
        wait_for(found, repr(pattern), timeout)
    except AssertionError:
        raise AssertionError("no flow line matching %r in:\n%s" % (pattern, proxy.stdout()[-4000:]))
    lines = found()
    assert len(lines) == 1, "expected one flow line matching %r, got %r" % (pattern, lines)
    return lines[0]


def wait_for(fn, what, timeout=15.0):
    """Waits until fn() is truthy (for output written by another process)."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)


def cert_der(pem_path):
    """The DER of the first certificate in a PEM file."""
    with open(pem_path) as f:
        text = f.read()
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    assert m, "no certificate in %s" % pem_path
    return ssl.PEM_cert_to_DER_cert(m.group(0))


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def openssl_verify(der, cafile):
    """`openssl verify` of a DER certificate against exactly `cafile`."""
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(ssl.DER_cert_to_PEM_cert(der))
        path = f.name
    try:
        r = subprocess.run(["openssl", "verify", "-no-CApath", "-no-CAstore", "-CAfile", cafile,
                            path], capture_output=True, timeout=30)
        return r.returncode == 0, (r.stdout + r.stderr).decode()
    finally:
        os.unlink(path)


def issuer_of(der):
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-issuer", "-nameopt",
                        "RFC2253"], input=der, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def recv_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(4096)
        if not piece:
            break
        data += piece
    return data


def tls_through_connect(proxy_port, target, server_hostname, cafile, path="/text"):
    """CONNECT `target` through the explicit proxy on `proxy_port`, then TLS
    (SNI = server_hostname unless it is an IP literal; verified against
    exactly `cafile`, hostname checked) and GET `path`.
    Returns (DER of the certificate the client saw, response body)."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=30) as raw:
        raw.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        head = recv_head(raw)
        assert head.startswith(b"HTTP/1.1 200"), head
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile)
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            der = tls.getpeercert(binary_form=True)
            tls.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                         % (path, target)).encode())
            data = b""
            while True:
                try:
                    piece = tls.recv(65536)
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    break
                if not piece:
                    break
                data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return der, body


def cert_seen_through_connect(proxy_port, target, server_hostname):
    """The DER certificate a client sees through CONNECT, without verifying it."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=30) as raw:
        raw.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        head = recv_head(raw)
        assert head.startswith(b"HTTP/1.1 200"), head
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            return tls.getpeercert(binary_form=True)


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")


# ---- network namespaces --------------------------------------------------------

_ns_counter = itertools.count(1)


class Netns:
    """A network namespace named tpk-<pid>-N with its loopback up. Processes
    started with popen() are ended in close(), then anything else left in the
    namespace (all of it started by this test), then the namespace is
    deleted: its iptables rules go with it."""

    def __init__(self):
        self.name = "tpk-%d-%d" % (os.getpid(), next(_ns_counter))
        self.procs = []
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        try:
            self.check("ip", "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def cmd(self, *args):
        return ["ip", "netns", "exec", self.name] + [str(a) for a in args]

    def run(self, *args, timeout=60, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("env", clean_env())
        return subprocess.run(self.cmd(*args), timeout=timeout, **kw)

    def check(self, *args):
        r = self.run(*args)
        assert r.returncode == 0, "%s: %s" % (" ".join(map(str, args)), r.stderr.decode())
        return r

    def popen(self, *args, **kw):
        kw.setdefault("env", clean_env())
        # `ip netns exec` execs the command: the Popen is the process itself.
        p = subprocess.Popen(self.cmd(*args), **kw)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def start_ready_line(ns, args):
    """Starts a server in `ns` that prints 'READY <port>' once it listens."""
    p = ns.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline().decode()
    assert line.startswith("READY"), "server did not start in %s: %r" % (ns.name, line)
    return p


ECHO_SERVER = r"""
import socket, sys, threading
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
print("READY", s.getsockname()[1], flush=True)
def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# Sends each argv hex string as one message, waits for its echo, half-closes,
# and prints the hex of everything received.
ECHO_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
got = b""
for hx in sys.argv[3:]:
    msg = bytes.fromhex(hx)
    s.sendall(msg)
    want = len(got) + len(msg)
    while len(got) < want:
        d = s.recv(65536)
        if not d:
            break
        got += d
s.shutdown(socket.SHUT_WR)
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
print(got.hex())
"""

# Connects, sends a line, reads until the peer closes or resets; prints
# "got=<hex>" and how it ended.
CLOSED_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
got, how = b"", "closed"
try:
    s.sendall(b"hello\r\n")
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
except (ConnectionResetError, BrokenPipeError, OSError) as e:
    how = type(e).__name__
print("got=" + got.hex(), how)
"""


class NsTlspeek:
    """tlspeek started inside a namespace; the same reading helpers as
    conftest.Proxy. stop() sends SIGTERM and returns the exit code."""

    def __init__(self, ns, args, listeners):
        self.dir = tempfile.mkdtemp(prefix="tlspeek-modes-")
        self.out_path = os.path.join(self.dir, "stdout")
        self.err_path = os.path.join(self.dir, "stderr")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.proc = ns.popen(BIN, *args, stdout=self._out, stderr=self._err)
        wait_for(lambda: self.stderr().count("listening on") >= listeners or self.proc.poll() is not None,
                 "tlspeek to listen")
        if self.proc.poll() is not None:
            raise RuntimeError("tlspeek exited early: %s" % self.stderr())

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_stdout(self, needle, timeout=10.0):
        try:
            wait_for(lambda: needle in self.stdout(), repr(needle), timeout)
        except AssertionError:
            raise AssertionError("%r not in tlspeek's output:\n%s" % (needle, self.stdout()[-4000:]))
        return self.stdout()

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        self._err.close()
        return self.proc.returncode


# ---- transparent mode ------------------------------------------------------------

MARK = 1
TP4, TP6 = 9000, 9001          # tlspeek's transparent listeners in the namespace
HTTPS_PORT, HTTP_PORT, ECHO_PORT = 8443, 8080, 7777   # the origin servers


class TransparentSetup:
    pass


@pytest.fixture(scope="module")
def tns(pki):
    """A namespace with origin servers (https, http on 127.0.0.1 and ::1, a TCP
    echo server on 127.0.0.1), REDIRECT rules for their ports that exempt
    tlspeek's marked upstream traffic, and tlspeek in transparent mode on
    127.0.0.1:TP4 and [::1]:TP6 (-vv: headers, bodies, raw hexdumps)."""
    need_root()
    ns = Netns()
    t = TransparentSetup()
    t.ns = ns
    t.tlspeek = None
    try:
        py = sys.executable
        server = os.path.join(HERE, "upstream_server.py")
        for host in ("127.0.0.1", "::1"):
            start_ready_line(ns, [py, server, "--host", host, "--port", HTTPS_PORT, "--tls", pki.leaf])
            start_ready_line(ns, [py, server, "--host", host, "--port", HTTP_PORT])
        start_ready_line(ns, [py, "-c", ECHO_SERVER, "127.0.0.1", ECHO_PORT])
        for tool, addr, to in (("iptables", "127.0.0.1", TP4), ("ip6tables", "::1", TP6)):
            ns.check(tool, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", addr, "-m", "multiport",
                     "--dports", "%d,%d,%d" % (HTTPS_PORT, HTTP_PORT, ECHO_PORT),
                     "-m", "mark", "!", "--mark", MARK, "-j", "REDIRECT", "--to-ports", to)
        t.tlspeek = NsTlspeek(ns, ["--ca-dir", pki.proxy_ca_dir, "--upstream-ca", pki.upstream_ca,
                                   "--mode", "transparent@127.0.0.1:%d" % TP4,
                                   "--mode", "transparent@[::1]:%d" % TP6,
                                   "--mark", MARK, "-vv"], listeners=2)
        yield t
    finally:
        rc = t.tlspeek.stop() if t.tlspeek else 0
        ns.close()
        gone = subprocess.run(["ip", "netns", "list"], capture_output=True).stdout.decode()
        assert ns.name not in gone, "namespace %s was not deleted" % ns.name
    assert rc == 0, "tlspeek exit %s\nstderr:\n%s" % (rc, t.tlspeek.stderr()[-4000:])
    assert "SO_MARK" not in t.tlspeek.stderr(), t.tlspeek.stderr()


def ns_curl(t, *args, timeout=60):
    """curl inside the namespace, with no proxy setting (clean_env drops the
    proxy variables; --noproxy '*' ignores any other configuration)."""
    return t.ns.run("curl", "-sS", "--noproxy", "*", "--max-time", timeout, *args, timeout=timeout + 10)


def redirected_count(t, tool="iptables"):
    """How many connections the namespace's REDIRECT rule has redirected
    (NAT rules see the first packet of each connection only)."""
    r = t.ns.check(tool, "-t", "nat", "-L", "OUTPUT", "-n", "-v", "-x")
    for line in r.stdout.decode().splitlines():
        if "REDIRECT" in line:
            return int(line.split()[0])
    raise AssertionError("no REDIRECT rule:\n%s" % r.stdout.decode())


def test_transparent_ipv4_https_and_http(tns, pki, tmp_path):
    before = redirected_count(tns)
    out = tmp_path / "big"
    # https by IP (the leaf has IP SAN 127.0.0.1) and by name, and plain http.
    r = ns_curl(tns, "--cacert", pki.proxy_ca, "-o", out, "https://127.0.0.1:%d/bin/%d" % (HTTPS_PORT, BIG))
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_bytes() == payload(BIG)
    r = ns_curl(tns, "--cacert", pki.proxy_ca, "--resolve", "localhost:%d:127.0.0.1" % HTTPS_PORT,
                "https://localhost:%d/text" % HTTPS_PORT)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == TEXT
    r = ns_curl(tns, "-o", out, "http://127.0.0.1:%d/bin/%d" % (HTTP_PORT, BIG))
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_bytes() == payload(BIG)

    # The client trusted only tlspeek's CA, so these were intercepted; the
    # console shows the decrypted requests with their original destination.
    tp = tns.tlspeek
    line = one_flow(tp, r"→ GET https://127\.0\.0\.1:%d/bin/%d → 200" % (HTTPS_PORT, BIG))
    assert line.startswith("127.0.0.1:")
    assert "application/octet-stream" in line
    one_flow(tp, r"→ GET https://localhost:%d/text → 200 text/plain" % HTTPS_PORT)
    one_flow(tp, r"→ GET http://127\.0\.0\.1:%d/bin/%d → 200" % (HTTP_PORT, BIG))
    o = tp.stdout()
    assert "  > Host: 127.0.0.1:%d" % HTTPS_PORT in o
    assert "  > Host: localhost:%d" % HTTPS_PORT in o
    assert "  > Host: 127.0.0.1:%d" % HTTP_PORT in o
    # Three client connections were redirected; tlspeek's own three upstream
    # connections (marked) were not, or they would have looped back to it.
    assert redirected_count(tns) - before == 3


def test_transparent_ipv6_https_and_http(tns, pki, tmp_path):
    before = redirected_count(tns, "ip6tables")
    out = tmp_path / "big6"
    r = ns_curl(tns, "--cacert", pki.proxy_ca, "-o", out, "https://[::1]:%d/bin/%d" % (HTTPS_PORT, BIG))
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_bytes() == payload(BIG)
    r = ns_curl(tns, "http://[::1]:%d/json" % HTTP_PORT)
    assert r.returncode == 0, r.stderr.decode()
    assert b'"name": "tlspeek"' in r.stdout

    tp = tns.tlspeek
    line = one_flow(tp, r"→ GET https://\[::1\]:%d/bin/%d → 200" % (HTTPS_PORT, BIG))
    assert line.startswith("[::1]:")
    line = one_flow(tp, r"→ GET http://\[::1\]:%d/json → 200 application/json" % HTTP_PORT)
    assert line.startswith("[::1]:")
    assert "  > Host: [::1]:%d" % HTTPS_PORT in tp.stdout()
    assert redirected_count(tns, "ip6tables") - before == 2


def test_transparent_raw_tcp_is_relayed_and_shown(tns):
    first = b"\x00\x01\x02raw hello \xff\xfe"
    second = bytes(range(0x20, 0x50))
    r = tns.ns.run(sys.executable, "-c", ECHO_CLIENT, "127.0.0.1", ECHO_PORT, first.hex(), second.hex())
    assert r.returncode == 0, r.stderr.decode()
    assert bytes.fromhex(r.stdout.decode().strip()) == first + second

    n = len(first) + len(second)
    summary = r"⇄ raw 127\.0\.0\.1:%d %d B in, %d B out$" % (ECHO_PORT, n, n)
    line = one_flow(tns.tlspeek, summary)
    o = tns.tlspeek.stdout()
    client = line.split(" ")[0]
    # -vv: each chunk is shown both ways as a hexdump, offsets running on.
    lines = o.splitlines()
    for start, chunk in ((0, first), (len(first), second)):
        for arrow in (">", "<"):
            head = "%s ⇄ raw 127.0.0.1:%d %s %d B" % (client, ECHO_PORT, arrow, len(chunk))
            assert head in lines, "no %r in:\n%s" % (head, o[-3000:])
            i = lines.index(head)
            dump = xxd_lines(chunk, start)
            assert lines[i + 1:i + 1 + len(dump)] == dump, lines[i:i + 1 + len(dump)]


def test_transparent_refuses_a_connection_to_its_own_listener(tns, pki):
    tp = tns.tlspeek
    for url, shown in (("https://127.0.0.1:%d/text" % TP4, "127.0.0.1:%d" % TP4),
                       ("https://[::1]:%d/text" % TP6, "[::1]:%d" % TP6)):
        r = ns_curl(tns, "--cacert", pki.proxy_ca, url)
        assert r.returncode != 0, r.stdout
        assert r.stdout == b""
        msg = "the original destination %s is tlspeek's own listener — a redirect loop" % shown
        wait_for(lambda: msg in tp.stderr(), "%r on stderr" % msg)
        tp.wait_stdout(msg)
    # Plain bytes straight to the listener: closed (or reset), nothing relayed.
    r = tns.ns.run(sys.executable, "-c", CLOSED_CLIENT, "127.0.0.1", TP4)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().split()[0] == "got=", r.stdout
    assert "raw 127.0.0.1:%d" % TP4 not in tp.stdout()
    # ... and redirected traffic still works.
    r = ns_curl(tns, "--cacert", pki.proxy_ca, "https://127.0.0.1:%d/json" % HTTPS_PORT)
    assert r.returncode == 0, r.stderr.decode()
    tp.wait_stdout("→ GET https://127.0.0.1:%d/json → 200" % HTTPS_PORT)


# ---- SOCKS5 ---------------------------------------------------------------------

def socks_fetch(pki, how, proxy, url, *extra, out=None):
    args = ["--cacert", pki.proxy_ca, how, proxy] + list(extra)
    if out:
        args += ["-o", str(out)]
    return curl(*(args + [url]))


def test_socks5_hostname_and_address(pki, https_upstream, http_upstream, proxy_factory, tmp_path):
    p = proxy_factory("--mode", "socks5")
    hp, up = http_upstream.port, https_upstream.port
    addr = "127.0.0.1:%d" % p.port
    out = tmp_path / "big"
    # --socks5-hostname: the proxy gets the name (ATYP domain).
    r = socks_fetch(pki, "--socks5-hostname", addr, "https://localhost:%d/bin/%d" % (up, BIG), out=out)
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_bytes() == payload(BIG)
    r = socks_fetch(pki, "--socks5-hostname", addr, "http://localhost:%d/text" % hp)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == TEXT
    # --socks5: curl resolves and sends an IPv4 address.
    r = socks_fetch(pki, "--socks5", addr, "https://127.0.0.1:%d/text" % up)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == TEXT
    r = socks_fetch(pki, "--socks5", addr, "http://127.0.0.1:%d/bin/%d" % (hp, BIG), out=out)
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_bytes() == payload(BIG)

    one_flow(p, r"→ GET https://localhost:%d/bin/%d → 200" % (up, BIG))
    one_flow(p, r"→ GET http://localhost:%d/text → 200 text/plain" % hp)
    one_flow(p, r"→ GET https://127\.0\.0\.1:%d/text → 200 text/plain" % up)
    one_flow(p, r"→ GET http://127\.0\.0\.1:%d/bin/%d → 200" % (hp, BIG))
    assert "socks" in p.stderr().lower()


def test_socks5_ipv6_address(pki, proxy_factory):
    up6 = Upstream(pki.leaf, host="::1")
    try:
        p = proxy_factory("--mode", "socks5")
        r = socks_fetch(pki, "--socks5", "127.0.0.1:%d" % p.port, "https://[::1]:%d/text" % up6.port)
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout == TEXT
        one_flow(p, r"→ GET https://\[::1\]:%d/text → 200" % up6.port)
    finally:
        up6.stop()


def test_socks5_username_password(pki, https_upstream, http_upstream, proxy_factory):
    p = proxy_factory("--mode", "socks5", "--proxyauth", "alice:s3cret")
    up, hp = https_upstream.port, http_upstream.port
    url = "https://localhost:%d/text" % up
    for proxy, extra in (("alice:wrong@127.0.0.1:%d" % p.port, ()),
                         ("bob:s3cret@127.0.0.1:%d" % p.port, ()),
                         ("127.0.0.1:%d" % p.port, ()),                    # no credentials
                         ("127.0.0.1:%d" % p.port, ("--proxy-user", "alice:s3cretX"))):
        r = socks_fetch(pki, "--socks5-hostname", proxy, url, *extra)
        assert r.returncode != 0, "accepted %s %s" % (proxy, extra)
        assert r.stdout == b""
    assert "wrong username or password" in p.stderr()
    assert "→ GET" not in p.stdout()

    r = socks_fetch(pki, "--socks5-hostname", "alice:s3cret@127.0.0.1:%d" % p.port, url)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == TEXT
    r = socks_fetch(pki, "--socks5", "127.0.0.1:%d" % p.port, "http://127.0.0.1:%d/text" % hp,
                    "--proxy-user", "alice:s3cret")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == TEXT
    one_flow(p, r"→ GET https://localhost:%d/text → 200" % up)
    one_flow(p, r"→ GET http://127\.0\.0\.1:%d/text → 200" % hp)
    assert len([l for l in flow_lines(p.stdout()) if "→ GET" in l]) == 2


# ---- upstream proxy mode -----------------------------------------------------------

def test_upstream_chained_behind_another_tlspeek(pki, https_upstream, http_upstream,
                                                 proxy_factory, tmp_path):
    # The first tlspeek: a plain explicit proxy with its own CA.
    first = proxy_factory(ca_dir=str(tmp_path / "first-ca"))
    first_ca = os.path.join(first.ca_dir, "tlspeek-ca-cert.pem")
    both = tmp_path / "both-cas.pem"
    with open(first_ca) as a, open(pki.upstream_ca) as b:
        both.write_text(a.read() + b.read())
    # The second reaches servers through the first, and trusts its minted certs.
    second = proxy_factory("--mode", "upstream:http://127.0.0.1:%d" % first.port,
                           "--upstream-ca", str(both))
    up, hp = https_upstream.port, http_upstream.port
    out = tmp_path / "big"
    r = curl("--cacert", pki.proxy_ca, "-x", second.url, "-o", str(out),
             "https://localhost:%d/bin/%d" % (up, BIG))
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_bytes() == payload(BIG)
    r = curl("-x", second.url, "-o", str(out), "http://localhost:%d/bin/%d" % (hp, BIG))
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_bytes() == payload(BIG)

    for p in (second, first):
        one_flow(p, r"→ GET https://localhost:%d/bin/%d → 200" % (up, BIG))
        one_flow(p, r"→ GET http://localhost:%d/bin/%d → 200" % (hp, BIG))
    # The client's connections reached the second proxy; the first proxy's
    # client was the second one (both on 127.0.0.1, but on different flows).
    assert "through http://127.0.0.1:%d" % first.port in second.stderr()


class TinyConnectProxy(TcpServer):
    """A minimal HTTP proxy: CONNECT tunnels and absolute-form requests
    (forwarded in origin-form). Records every request line it gets."""

    def __init__(self):
        self.lines = []
        super().__init__()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def handle(self, c):
        with c:
            data = recv_head(c)
            if b"\r\n\r\n" not in data:
                return
            head, rest = data.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            with self.lock:
                self.lines.append(lines[0].decode())
            method, target, version = lines[0].split(b" ")
            if method == b"CONNECT":
                host, port = target.decode().rsplit(":", 1)
                u = socket.create_connection((host.strip("[]"), int(port)))
                c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                first = rest
            else:
                url = urllib.parse.urlsplit(target.decode())
                u = socket.create_connection((url.hostname, url.port or 80))
                path = (url.path or "/") + ("?" + url.query if url.query else "")
                first = b" ".join([method, path.encode(), version]) + b"\r\n" + \
                    b"\r\n".join(lines[1:]) + b"\r\n\r\n" + rest
            with u:
                if first:
                    u.sendall(first)
                t = threading.Thread(target=self._pump, args=(u, c), daemon=True)
                t.start()
                self._pump(c, u)
                t.join(30)

    def close(self):
        self.sock.close()


def test_upstream_through_a_connect_proxy(pki, https_upstream, http_upstream, proxy_factory, tmp_path):
    tiny = TinyConnectProxy()
    try:
        p = proxy_factory("--mode", "upstream:http://127.0.0.1:%d" % tiny.port)
        up, hp = https_upstream.port, http_upstream.port
        out = tmp_path / "big"
        r = curl("--cacert", pki.proxy_ca, "-x", p.url, "-o", str(out),
                 "https://localhost:%d/bin/%d" % (up, BIG))
        assert r.returncode == 0, r.stderr.decode()
        assert out.read_bytes() == payload(BIG)
        r = curl("-x", p.url, "http://localhost:%d/text?x=1" % hp)
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout == TEXT

        one_flow(p, r"→ GET https://localhost:%d/bin/%d → 200" % (up, BIG))
        one_flow(p, r"→ GET http://localhost:%d/text\?x=1 → 200" % hp)
        # tlspeek verified the real server's certificate through the tunnel
        # (the client only trusts tlspeek's CA) and sent http in absolute-form.
        with tiny.lock:
            seen = list(tiny.lines)
        assert seen.count("CONNECT localhost:%d HTTP/1.1" % up) == 1, seen
        assert seen.count("GET http://localhost:%d/text?x=1 HTTP/1.1" % hp) == 1, seen
        assert len(seen) == 2, seen
    finally:
        tiny.close()


# ---- passthrough ---------------------------------------------------------------------

def test_ignore_hosts_by_host_port(pki, https_upstream, proxy_factory):
    up = https_upstream.port
    leaf = cert_der(pki.leaf)
    p = proxy_factory("--ignore-hosts", r"^localhost:%d$" % up)
    # Ignored: the client sees the upstream's own certificate and verifies it
    # against the upstream CA alone.
    der, body = tls_through_connect(p.port, "localhost:%d" % up, "localhost", pki.upstream_ca)
    assert sha256_hex(der) == sha256_hex(leaf)
    assert body == TEXT
    one_flow(p, r"⇄ raw localhost:%d .*\(TLS passed through, not intercepted\)$" % up)
    assert "→ GET https://localhost" not in p.stdout()
    # curl, trusting only the upstream CA, works too.
    r = curl("--cacert", pki.upstream_ca, "-x", p.url, "https://localhost:%d/text" % up)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == TEXT

    # Not ignored (another host:port, no SNI): a certificate minted by tlspeek's CA.
    der, body = tls_through_connect(p.port, "127.0.0.1:%d" % up, "127.0.0.1", pki.proxy_ca)
    assert body == TEXT
    assert sha256_hex(der) != sha256_hex(leaf)
    # (The test's upstream CA is made by tlspeek too and has the same name:
    # openssl verify against each CA is what tells them apart.)
    assert "tlspeek CA" in issuer_of(der)
    ok, msg = openssl_verify(der, pki.proxy_ca)
    assert ok, msg
    ok, msg = openssl_verify(der, pki.upstream_ca)
    assert not ok, msg
    p.wait_stdout("→ GET https://127.0.0.1:%d/text → 200" % up)


def test_ignore_hosts_by_sni(pki, https_upstream, proxy_factory):
    up = https_upstream.port
    leaf = cert_der(pki.leaf)
    # Anchored, so only the SNI "localhost" matches (not "127.0.0.1:PORT").
    p = proxy_factory("--ignore-hosts", r"^nothing\.example$", "--ignore-hosts", r"^localhost$")
    der, body = tls_through_connect(p.port, "127.0.0.1:%d" % up, "localhost", pki.upstream_ca)
    assert sha256_hex(der) == sha256_hex(leaf)
    assert body == TEXT
    one_flow(p, r"⇄ raw 127\.0\.0\.1:%d .*\(TLS passed through, not intercepted\)$" % up)
    # The same host:port without that SNI is intercepted.
    der = cert_seen_through_connect(p.port, "127.0.0.1:%d" % up, "127.0.0.1")
    assert sha256_hex(der) != sha256_hex(leaf)
    ok, msg = openssl_verify(der, pki.proxy_ca)
    assert ok, msg


# Automatic passthrough and the untrusted-CA report: test_passthrough.py.


# ---- examples/transparent/run.sh -------------------------------------------------------

EXAMPLE = os.path.join(ROOT, "examples", "transparent", "run.sh")


def test_example_transparent_script():
    need_root()
    env = clean_env(TLSPEEK=BIN, PYTHON=sys.executable)
    r = subprocess.run(["bash", EXAMPLE], capture_output=True, timeout=120, env=env)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out + r.stderr.decode("utf-8", "replace")
    m = re.search(r"== network namespace (tpk-example-\d+)", out)
    assert m, out
    assert "-m mark ! --mark 0x1 -j REDIRECT --to-ports 8081" in out
    # curl's answers and tlspeek's view of them, with the original destination.
    assert '"name": "tlspeek"' in out
    assert TEXT.decode() in out
    shown = out.split("== what tlspeek showed (stdout)", 1)[1]
    assert re.search(r"^127\.0\.0\.1:\d+ → GET https://127\.0\.0\.1(:443)?/json → 200 application/json",
                     shown, re.M), shown
    assert re.search(r"^127\.0\.0\.1:\d+ → GET http://127\.0\.0\.1(:80)?/text → 200 text/plain",
                     shown, re.M), shown
    assert "  > User-Agent: curl/" in shown
    assert "== tlspeek exited with status 0" in out
    assert "cleaned up: namespace %s deleted" % m.group(1) in out
    names = subprocess.run(["ip", "netns", "list"], capture_output=True).stdout.decode()
    assert m.group(1) not in names


def test_example_transparent_script_says_it_needs_root():
    if os.geteuid() != 0:
        r = subprocess.run(["bash", EXAMPLE], capture_output=True, timeout=60)
    else:
        # Run a copy (the checkout may not be readable by others) as "nobody"
        # to see what a non-root user gets.
        d = tempfile.mkdtemp(prefix="tlspeek-example-")
        try:
            os.chmod(d, 0o755)
            copy = os.path.join(d, "run.sh")
            shutil.copy(EXAMPLE, copy)
            os.chmod(copy, 0o755)
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "bash", copy], capture_output=True, timeout=60, cwd=d)
        finally:
            shutil.rmtree(d)
    assert r.returncode != 0
    assert "needs root" in r.stderr.decode(), r.stderr
    assert "tpk-example" not in r.stdout.decode()
