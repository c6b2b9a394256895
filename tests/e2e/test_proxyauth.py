"""End-to-end tests for --proxyauth in the HTTP proxy modes (explicit and
upstream) and for the start-up warning about listeners that other machines
can reach.

Real clients (curl, Python sockets) against upstream_server.py, whose
/headers endpoint echoes the request head it received: that is how the
tests see what reached the origin. Everything talks on 127.0.0.1 only; the
non-loopback listener is never opened (see test_warns_about_open_proxy).
"""
import base64
import os
import re
import socket
import subprocess
import time

import pytest

from conftest import BIN, clean_env, curl, free_port
from upstream_server import TEXT

USER, PASS = "alice", "s3cret:with:colons"
CREDS = "%s:%s" % (USER, PASS)


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"tlspeek binary not found at {BIN} (build it or set TLSPEEK_BIN)")


def basic(creds):
    return "Basic " + base64.b64encode(creds.encode()).decode()


def raw_request(port, request, timeout=10):
    """Sends `request` (bytes) to 127.0.0.1:port, returns all it answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                return data
            data += d


def read_response(sock):
    """One response with a Content-Length, read whole."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def head_of(resp):
    return resp.split(b"\r\n\r\n", 1)[0].decode("latin-1")


@pytest.mark.parametrize("creds", [None, "alice:wrong", "bob:" + PASS, USER + ":" + PASS + "x"])
def test_407_without_or_with_wrong_credentials(creds, pki, http_upstream, https_upstream,
                                               proxy_factory):
    p = proxy_factory("--proxyauth", CREDS)
    auth = b"" if creds is None else b"Proxy-Authorization: %s\r\n" % basic(creds).encode()
    for req in (b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n%s\r\n"
                % (https_upstream.port, https_upstream.port, auth),
                b"GET http://127.0.0.1:%d/text HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
                % (http_upstream.port, http_upstream.port, auth)):
        resp = raw_request(p.port, req)
        head = head_of(resp)
        assert head.startswith("HTTP/1.1 407 Proxy Authentication Required\r\n"), head
        assert 'Proxy-Authenticate: Basic realm="tlspeek"' in head.split("\r\n"), head
        assert TEXT not in resp
    # curl, too: it shows the 407 of the CONNECT and gets nothing.
    extra = [] if creds is None else ["--proxy-user", creds]
    r = curl("--cacert", pki.proxy_ca, "-x", p.url, *extra, "-o", "/dev/null",
             "-w", "%{http_connect}", "https://localhost:%d/text" % https_upstream.port)
    assert r.returncode != 0 and r.stdout == b"407", (r.stdout, r.stderr)
    r = curl("-x", p.url, *extra, "-w", "\n%{http_code}", "http://127.0.0.1:%d/text" % http_upstream.port)
    assert r.stdout.endswith(b"\n407"), r.stdout
    assert "proxy authentication" in p.stderr()
    assert "→ GET" not in p.stdout()


def test_right_credentials_are_served_and_not_forwarded(pki, http_upstream, https_upstream,
                                                        proxy_factory, tmp_path):
    files = [str(tmp_path / n) for n in ("t.har", "t.jsonl", "t.pcap")]
    p = proxy_factory("-vvv", "--proxyauth", CREDS, "--har", files[0], "--jsonl", files[1],
                      "--pcap", files[2])
    for url in ("https://localhost:%d/headers" % https_upstream.port,
                "http://127.0.0.1:%d/headers" % http_upstream.port):
        r = curl("--cacert", pki.proxy_ca, "-x", p.url, "--proxy-user", CREDS, "-w", "\n%{http_code}",
                 url)
        assert r.returncode == 0, r.stderr.decode()
        body = r.stdout.decode()
        assert body.endswith("\n200"), body
        assert "proxy-authorization" not in body.lower(), body
    # Two requests on one keep-alive connection: each one is checked.
    req = (b"GET http://127.0.0.1:%d/headers HTTP/1.1\r\nHost: x\r\nProxy-Authorization: %s\r\n\r\n"
           % (http_upstream.port, basic(CREDS).encode()))
    bad = b"GET http://127.0.0.1:%d/text HTTP/1.1\r\nHost: x\r\n\r\n" % http_upstream.port
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(req)
        first = read_response(s)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        assert b"proxy-authorization" not in first.lower()
        s.sendall(bad)
        rest = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            rest += d
    assert rest.startswith(b"HTTP/1.1 407 Proxy Authentication Required"), rest
    # Pipelined behind a request with credentials: its answer comes whole
    # first, then the 407.
    both = raw_request(p.port, req.replace(b"/headers", b"/slow/300") + bad)
    assert both.startswith(b"HTTP/1.1 200"), both
    assert b"\r\n\r\n" + TEXT + b"HTTP/1.1 407 Proxy Authentication Required\r\n" in both, both
    # The views (the wire view too) and the transcripts never show the credentials.
    out = p.wait_stdout("→ GET http://127.0.0.1:%d/headers → 200" % http_upstream.port)
    assert "Proxy-Authorization: <redacted>" in out
    secret = base64.b64encode(CREDS.encode()).decode()
    assert secret not in out and PASS not in out
    assert secret not in p.stderr()
    assert p.stop() == 0
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        assert data and secret.encode() not in data and PASS.encode() not in data, path


def test_upstream_mode_checks_and_strips_credentials(pki, http_upstream, https_upstream,
                                                     proxy_factory, tmp_path):
    # The next proxy: a tlspeek without --proxyauth, which would pass a
    # Proxy-Authorization on to the origin, where /headers would show it.
    nxt = proxy_factory("-v")
    both = tmp_path / "both-cas.pem"
    with open(pki.proxy_ca) as a, open(pki.upstream_ca) as b:
        both.write_text(a.read() + b.read())
    p = proxy_factory("--mode", "upstream:http://127.0.0.1:%d" % nxt.port, "--proxyauth", CREDS,
                      "--upstream-ca", str(both))
    url = "http://127.0.0.1:%d/headers" % http_upstream.port
    r = curl("-x", p.url, "-w", "\n%{http_code}", url)
    assert r.stdout.endswith(b"\n407"), r.stdout
    r = curl("-x", p.url, "--proxy-user", "alice:nope", "-w", "\n%{http_code}", url)
    assert r.stdout.endswith(b"\n407"), r.stdout
    r = curl("-x", p.url, "--proxy-user", CREDS, "-w", "\n%{http_code}", url)
    assert r.returncode == 0 and r.stdout.endswith(b"\n200"), r.stdout
    assert b"proxy-authorization" not in r.stdout.lower(), r.stdout
    r = curl("--cacert", pki.proxy_ca, "-x", p.url, "--proxy-user", CREDS,
             "https://localhost:%d/text" % https_upstream.port)
    assert r.returncode == 0 and r.stdout == TEXT, r.stderr.decode()
    nxt.wait_stdout("→ GET http://127.0.0.1:%d/headers → 200" % http_upstream.port)
    assert "proxy-authorization" not in nxt.stdout().lower()


# ---- start-up warnings ---------------------------------------------------------------

def start_and_fail_to_listen(pki, listen, *args):
    """Runs tlspeek on `listen`, a port this test already holds on 127.0.0.1:
    tlspeek says what it says at start-up, then cannot listen and exits 1.
    Nothing is ever opened on a non-loopback address."""
    port = int(listen.rsplit(":", 1)[1])
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen(1)
    try:
        r = subprocess.run([BIN, "--ca-dir", pki.proxy_ca_dir, "-m", "explicit@" + listen] + list(args),
                           capture_output=True, timeout=30, env=clean_env())
    finally:
        holder.close()
    err = r.stderr.decode()
    assert r.returncode == 1 and "info: listening on" not in err, err
    return err


def test_warns_about_open_proxy(pki):
    port = free_port()
    err = start_and_fail_to_listen(pki, "0.0.0.0:%d" % port)
    assert "has no --proxyauth" in err and "open proxy" in err, err
    assert "read the traffic it decrypts" in err, err
    err = start_and_fail_to_listen(pki, "0.0.0.0:%d" % port, "--proxyauth", CREDS)
    assert "open proxy" not in err, err
    err = start_and_fail_to_listen(pki, "127.0.0.1:%d" % port)
    assert "open proxy" not in err, err


def test_proxyauth_says_it_does_not_apply_to_reverse(pki, http_upstream, proxy_factory):
    p = proxy_factory("--proxyauth", CREDS, "-m",
                      "reverse:http://127.0.0.1:%d@127.0.0.1:%d" % (http_upstream.port, free_port()))
    assert "--proxyauth does not apply to the reverse listener" in p.stderr()


def test_wire_view_masks_credentials_cut_across_reads(pki, http_upstream, proxy_factory):
    """The client's head arrives in two reads, cut inside the field name and
    then inside the value: the wire view (-vvv) masks the value anyway."""
    p = proxy_factory("-vvv", "--proxyauth", CREDS)
    b64 = base64.b64encode(CREDS.encode())
    req = (b"GET http://127.0.0.1:%d/headers HTTP/1.1\r\nHost: x\r\n"
           b"Proxy-Authorization: Basic %s\r\n\r\n" % (http_upstream.port, b64))
    for cut in (req.index(b"Authorization") + 3, req.index(b64) + 4):
        with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(req[:cut])
            time.sleep(0.3)
            s.sendall(req[cut:])
            r = read_response(s)
            assert r.startswith(b"HTTP/1.1 200"), r[:200]
    out = p.wait_stdout("→ GET http://127.0.0.1:%d/headers → 200" % http_upstream.port)
    time.sleep(0.5)
    out = p.stdout()
    assert "Proxy-Authorization:" in out
    for piece in (b64[:8], b64[8:16], b64[-8:]):
        assert piece.decode() not in out, out[-3000:]
