"""End-to-end tests for the honesty of the console view (README.md, "What is
shown"; filters/console/console.h has the exact lines):

- at -v the request line and head are on stdout while the upstream still holds
  the response, and the response part repeats the flow's prefix;
- a client that leaves before its response is shown "aborted by client after
  ...", never as an answered flow; one that half-closes and still reads is not;
- a failed flow is one line, and -f hides the failures of other hosts;
- sizes say what they are ("266 B (235 B gzip)"), durations keep a decimal
  when small.

Real clients (curl, Python sockets) talk through a real tlspeek in explicit
mode to real local origins on 127.0.0.1. Where ordering matters the origin
waits on an event that the test sets only after it has seen tlspeek's line.

Run from tests/e2e:
  TLSPEEK_BIN=/path/to/tlspeek /usr/bin/python3 -m pytest -q test_console_view.py
"""
import gzip
import re
import socket
import struct
import threading
import time

import pytest

from conftest import TcpServer, curl, free_port
from upstream_server import TEXT

ARROW = " \u2192 "
DURATION = r"(\d+(?:\.\d+)?) (ms|s)"


class GatedOrigin(TcpServer):
    """A plain HTTP origin that reads one request head, says so (`got`), and
    answers only once the test sets `release` (or closes when `drop` is set)."""

    def __init__(self, body=b"slow answer\n"):
        self.body = body
        self.got = threading.Event()
        self.release = threading.Event()
        self.done = threading.Event()
        super().__init__()

    def handle(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.got.set()
            if not self.release.wait(30):
                return
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(self.body) + self.body)
            except OSError:
                pass
            self.done.set()


def wait_until(what, pred, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def lines_of(p):
    return [l for l in p.stdout().splitlines() if l]


def flow_lines(p, needle):
    """The unindented lines of tlspeek's output that contain `needle`."""
    return [l for l in lines_of(p) if not l.startswith(" ") and needle in l]


def send_request(port, path_url, shutdown_write=False):
    """A raw client through the explicit proxy: returns the connected socket
    after sending `GET path_url` in absolute-form."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path_url.encode())
    if shutdown_write:
        s.shutdown(socket.SHUT_WR)
    return s


def read_all(s, timeout=20):
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def parse_duration(line):
    m = re.search(DURATION + r"$", line)
    assert m, line
    return m.group(1), m.group(2)


# ---- 1. the request part comes when the request goes upstream ------------------


def test_request_line_is_shown_before_the_slow_response(proxy_factory):
    origin = GatedOrigin()
    p = proxy_factory("-v")
    url = "http://127.0.0.1:%d/slow" % origin.port
    s = send_request(p.port, url)
    try:
        assert origin.got.wait(10), "the origin never got the request"
        # The origin holds the response until the request line is on stdout.
        req_line = wait_until("the request line", lambda: [
            l for l in lines_of(p) if l.endswith(ARROW + "GET " + url)])
        assert len(req_line) == 1, req_line
        client = req_line[0].split(ARROW)[0]
        out = p.stdout()
        assert "  > GET %s HTTP/1.1" % url in out, out
        assert ("GET %s" % url + ARROW) not in out, "response part before the response:\n" + out
        origin.release.set()
        body = read_all(s)
        assert body.endswith(b"slow answer\n"), body
    finally:
        origin.release.set()
        s.close()
    resp = wait_until("the response line",
                      lambda: flow_lines(p, "GET %s%s200" % (url, ARROW)))
    assert len(resp) == 1, resp
    # Tied to its request: the same client and the same method and URL.
    assert resp[0].startswith(client + ARROW + "GET " + url + ARROW + "200 text/plain 12 B "), resp
    lines = lines_of(p)
    i_req = lines.index(req_line[0])
    i_resp = lines.index(resp[0])
    assert i_req < i_resp
    assert lines[i_req + 1] == "  > GET %s HTTP/1.1" % url, lines
    assert lines[i_resp + 1] == "  < HTTP/1.1 200 OK", lines


def test_with_a_filter_the_flow_is_one_block_at_its_end(proxy_factory, http_upstream):
    """-f decides at the flow's end: the request part waits and comes with it."""
    p = proxy_factory("-v", "-f", "~d 127.0.0.1")
    base = "http://127.0.0.1:%d" % http_upstream.port
    r = curl("-x", p.url, base + "/text")
    assert r.returncode == 0, r.stderr
    line = wait_until("the flow line", lambda: flow_lines(p, "GET %s/text%s200" % (base, ARROW)))
    lines = lines_of(p)
    i = lines.index(line[0])
    assert lines[i + 1] == "  > GET %s/text HTTP/1.1" % base, lines
    assert not [l for l in lines if l.endswith(ARROW + "GET %s/text" % base)], lines


# ---- 2./3. clients that leave ---------------------------------------------------


def test_client_that_closes_before_the_response_is_shown_aborted(proxy_factory):
    origin = GatedOrigin()
    p = proxy_factory()
    url = "http://127.0.0.1:%d/gone" % origin.port
    s = send_request(p.port, url)
    assert origin.got.wait(10)
    s.close()  # FIN: gone before the answer
    origin.release.set()
    assert origin.done.wait(10)
    line = wait_until("the aborted line", lambda: flow_lines(p, "GET " + url))
    p.stop()
    lines = flow_lines(p, "GET " + url)
    assert len(lines) == 1, lines
    m = re.search(re.escape(ARROW + "GET " + url + ARROW) + "aborted by client after " + DURATION + "$",
                  lines[0])
    assert m, lines
    assert "200" not in lines[0].split(url)[1], lines


def test_client_that_resets_is_shown_aborted_when_its_connection_ends(proxy_factory):
    """The origin never answers while the test looks: the flow is printed when
    the connection ends (the reset), not lost, and not answered."""
    origin = GatedOrigin()
    p = proxy_factory()
    url = "http://127.0.0.1:%d/reset" % origin.port
    s = send_request(p.port, url)
    try:
        assert origin.got.wait(10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST
        line = wait_until("the aborted line", lambda: flow_lines(p, "GET " + url))
        assert len(line) == 1 and (ARROW + "aborted by client after ") in line[0], line
    finally:
        origin.release.set()


def test_curl_that_gives_up_is_shown_aborted(proxy_factory, http_upstream, https_upstream, pki):
    p = proxy_factory()
    plain = "http://127.0.0.1:%d/slow/2000" % http_upstream.port
    tls = "https://localhost:%d/slow/2000" % https_upstream.port
    for url in (plain, tls):
        r = curl("--cacert", pki.proxy_ca, "-x", p.url, "--max-time", "1", url, timeout=1)
        assert r.returncode == 28, (url, r.returncode, r.stderr)  # timed out
    for url in (plain, tls):
        line = wait_until("the aborted line of " + url, lambda: flow_lines(p, "GET " + url),
                          timeout=20)
        assert len(line) == 1, line
        assert (ARROW + "GET " + url + ARROW + "aborted by client after ") in line[0], line
        value, unit = parse_duration(line[0])
        assert float(value) > 0, line


def test_half_closed_client_that_reads_is_not_aborted(proxy_factory):
    """HTTP/1 allows a client to half-close after its request: it still reads."""
    origin = GatedOrigin()
    p = proxy_factory()
    url = "http://127.0.0.1:%d/half" % origin.port
    s = send_request(p.port, url, shutdown_write=True)
    try:
        assert origin.got.wait(10)
        origin.release.set()
        body = read_all(s)
        assert body.endswith(b"slow answer\n"), body
    finally:
        s.close()
    line = wait_until("the flow line", lambda: flow_lines(p, "GET " + url))
    assert len(line) == 1, line
    assert re.search(re.escape(ARROW + "GET " + url + ARROW) + "200 text/plain 12 B " + DURATION + "$",
                     line[0]), line


# ---- 4. failures ------------------------------------------------------------------


def test_failures_are_one_line_each(proxy_factory, pki):
    dead = free_port()  # nothing listens there
    p = proxy_factory()
    plain = "http://127.0.0.1:%d/nothing" % dead
    tls = "https://127.0.0.1:%d/nothing" % dead
    for url in (plain, tls):
        r = curl("--cacert", pki.proxy_ca, "-x", p.url, "-o", "/dev/null", "-w", "%{http_code}", url)
        assert r.stdout == b"502", (url, r.stdout, r.stderr)
    for url in (plain, tls):
        wait_until("the failure of " + url, lambda: flow_lines(p, "GET " + url))
    p.stop()  # everything is written
    out = [l for l in lines_of(p) if not l.startswith(" ")]
    for url in (plain, tls):
        mine = [l for l in out if "GET " + url in l]
        assert len(mine) == 1, out
        assert (ARROW + "GET " + url + ARROW + "ERROR ") in mine[0] and "refused" in mine[0], mine
    # No line of its own for the connection error the flow line already says.
    assert len(out) == 2, out


def test_filter_hides_the_failures_of_other_hosts(proxy_factory, pki):
    dead = free_port()
    p = proxy_factory("-f", "~d localhost")
    for url in ("http://127.0.0.1:%d/a" % dead, "https://127.0.0.1:%d/b" % dead,
                "http://localhost:%d/c" % dead):
        r = curl("--cacert", pki.proxy_ca, "-x", p.url, "-o", "/dev/null", "-w", "%{http_code}", url)
        assert r.stdout == b"502", (url, r.stdout, r.stderr)
    wait_until("the failure of localhost", lambda: flow_lines(p, "GET http://localhost:%d/c" % dead))
    p.stop()
    out = [l for l in lines_of(p) if not l.startswith(" ")]
    assert len(out) == 1 and ("GET http://localhost:%d/c%sERROR " % (dead, ARROW)) in out[0], out


def test_connection_error_without_a_flow_is_one_line(proxy_factory):
    p = proxy_factory()
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(b"GET /relative HTTP/1.1\r\nHost: x\r\n\r\n")  # not absolute-form
    answer = read_all(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 400"), answer
    wait_until("the error line", lambda: [l for l in lines_of(p) if "\u2717" in l])
    p.stop()
    out = lines_of(p)
    assert len(out) == 1 and re.match(r"^127\.0\.0\.1:\d+ \u2717 tlspeek: malformed HTTP request: ",
                                      out[0]), out


# ---- 5. sizes and durations ---------------------------------------------------------


def test_gzip_response_shows_decoded_and_wire_sizes(proxy_factory, http_upstream):
    p = proxy_factory()
    base = "http://127.0.0.1:%d" % http_upstream.port
    r = curl("-x", p.url, base + "/gzip")  # no --compressed: the bytes as sent
    assert r.returncode == 0, r.stderr
    assert gzip.decompress(r.stdout) == TEXT
    line = wait_until("the gzip line", lambda: flow_lines(p, "GET %s/gzip%s" % (base, ARROW)))
    want = "200 text/plain %d B (%d B gzip) " % (len(TEXT), len(r.stdout))
    assert (ARROW + want) in line[0], (want, line)
    r = curl("-x", p.url, base + "/text")
    line = wait_until("the text line", lambda: flow_lines(p, "GET %s/text%s" % (base, ARROW)))
    assert re.search(re.escape(ARROW + "200 text/plain %d B " % len(TEXT)) + DURATION + "$",
                     line[0]), line


def test_small_flow_duration_keeps_its_decimals(proxy_factory, http_upstream):
    p = proxy_factory()
    base = "http://127.0.0.1:%d" % http_upstream.port
    r = curl("-x", p.url, base + "/empty")
    assert r.returncode == 0, r.stderr
    line = wait_until("the flow line", lambda: flow_lines(p, "GET %s/empty%s" % (base, ARROW)))
    value, unit = parse_duration(line[0])
    assert float(value) > 0, line
    # The rule of console.h: two decimals below 1 ms, one below 10 ms.
    if unit == "ms" and float(value) < 1:
        assert re.fullmatch(r"0\.\d\d", value), line
    elif unit == "ms" and float(value) < 10:
        assert re.fullmatch(r"\d\.\d", value), line
    elif unit == "ms":
        assert re.fullmatch(r"\d+", value), line
