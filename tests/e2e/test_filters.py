"""End-to-end tests for filter expressions (-f, the per-sink --*-filter
options, --ignore-hosts), actions (--block, --set-header, --remove-header,
--redact-auth) and filter plugins (--load, the ABI check, the two examples).

Real clients (curl, Python sockets/ssl) talk through a real tlspeek to the
local origin servers of upstream_server.py, everything on 127.0.0.1. The
upstream certificate covers "localhost" and "127.0.0.1", so the two names
are the two "hosts" that expressions tell apart. Clients always trust
tlspeek through --cacert pki.proxy_ca.

The console is written by a writer thread: the tests wait for a flow line
before asserting on it, and to assert that something is absent they first
wait for the line of a later flow.

Run from tests/e2e:
  TLSPEEK_BIN=/path/to/tlspeek /usr/bin/python3 -m pytest -q test_filters.py
"""
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess

import pytest

from conftest import BIN, ROOT, TcpServer, clean_env, curl, free_port, require_program, run
from upstream_server import TEXT

EXAMPLES = os.path.join(ROOT, "build", "examples")
COUNT_HOSTS = os.path.join(EXAMPLES, "count_hosts.so")
TAG_MARKER = os.path.join(EXAMPLES, "tag_marker.so")


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"tlspeek binary not found at {BIN} (build it or set TLSPEEK_BIN)")


@pytest.fixture(scope="session")
def examples():
    """The example plugins, built with `make examples` when missing."""
    if not (os.path.exists(COUNT_HOSTS) and os.path.exists(TAG_MARKER)):
        r = subprocess.run(["make", "-C", ROOT, "examples"], capture_output=True, timeout=300)
        assert r.returncode == 0, "make examples failed:\n%s%s" % (
            r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
    for so in (COUNT_HOSTS, TAG_MARKER):
        assert os.path.exists(so), "%s missing after make examples" % so
    return EXAMPLES


# ---- helpers -----------------------------------------------------------------

def flow_lines(out):
    """The flow lines (not indented) of tlspeek's traffic view."""
    return [l for l in out.splitlines() if l and not l.startswith(" ")]


def flow_blocks(out):
    """A flow line and the indented lines (headers, bodies) that follow it."""
    blocks = []
    for line in out.splitlines():
        if line.startswith(" ") and blocks:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return blocks


def via(p, pki, url, *extra):
    """curl through the explicit proxy `p`, trusting only the proxy CA.
    Returns (CompletedProcess, status code, response head text, body)."""
    r = curl("--cacert", pki.proxy_ca, "-x", p.url, "-D", "-",
             "-w", "\n@@%{http_code}", *extra, url)
    assert r.returncode == 0, "curl %s: rc=%d %s" % (url, r.returncode, r.stderr.decode())
    out = r.stdout
    idx = out.rfind(b"\n@@")
    code = int(out[idx + 3:])
    out = out[:idx]
    # With a CONNECT tunnel curl writes the proxy's "200 Connection
    # established" head first: keep the last head.
    heads = []
    while out.startswith(b"HTTP/"):
        head, _, out = out.partition(b"\r\n\r\n")
        heads.append(head.decode("latin-1"))
    return r, code, heads[-1], out


def header_names(head):
    return [l.split(":", 1)[0].strip().lower() for l in head.split("\r\n")[1:] if ":" in l]


def direct_count(pki, upstream, tls):
    """/count of an upstream server asked directly (not through tlspeek).
    The server counts this request too."""
    if tls:
        r = curl("--cacert", pki.upstream_ca, "https://localhost:%d/count" % upstream.port)
    else:
        r = curl("http://127.0.0.1:%d/count" % upstream.port)
    assert r.returncode == 0, r.stderr.decode()
    return int(r.stdout)


def read_har(path):
    with open(path) as f:
        return json.load(f)["log"]["entries"]


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def read_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def stop_ok(p, sig=signal.SIGTERM):
    rc = p.stop(sig)
    assert rc == 0, "tlspeek exit %s\nstderr:\n%s" % (rc, p.stderr()[-4000:])


def cert_der(pem_path):
    with open(pem_path) as f:
        m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", f.read(), re.S)
    assert m, "no certificate in %s" % pem_path
    return ssl.PEM_cert_to_DER_cert(m.group(0))


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


def recv_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(4096)
        if not piece:
            break
        data += piece
    return data


def tls_through_connect(proxy_port, target, server_hostname, cafile=None, path="/text"):
    """CONNECT `target` through the explicit proxy, then TLS with SNI
    `server_hostname` (none for an IP literal). With `cafile` the certificate
    is verified against exactly that file (and the name checked) and `path`
    is fetched. Returns (DER of the certificate the client saw, body or None)."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=30) as raw:
        raw.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        head = recv_head(raw)
        assert head.startswith(b"HTTP/1.1 200"), head
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cafile:
            ctx.load_verify_locations(cafile)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            der = tls.getpeercert(binary_form=True)
            if not cafile:
                return der, None
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


def openssl_verify(der, cafile):
    pem = ssl.DER_cert_to_PEM_cert(der).encode()
    r = subprocess.run(["openssl", "verify", "-no-CApath", "-no-CAstore", "-CAfile", cafile],
                       input=pem, capture_output=True, timeout=30)
    return r.returncode == 0, (r.stdout + r.stderr).decode()


class CountingServer(TcpServer):
    """A bare HTTP/1.1 server that records every accepted connection and
    the request line it got (to prove tlspeek never connected)."""

    backlog = 16

    def __init__(self):
        self.lines = []
        super().__init__()

    def handle(self, conn):
        with conn:
            conn.settimeout(10)
            try:
                head = recv_head(conn)
            except OSError:
                head = b""
            with self.lock:
                self.lines.append(head.split(b"\r\n")[0].decode("latin-1"))
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n"
                             b"\r\nok\n")
            except OSError:
                pass


# ---- -f: what the console shows ------------------------------------------------

def test_filter_shows_only_matching_flows(proxy_factory, pki, https_upstream, http_upstream):
    s, h = https_upstream.port, http_upstream.port
    p = proxy_factory("-v", "-f", "~d localhost & ~m POST")
    for host in ("localhost", "127.0.0.1"):
        for scheme, port in (("https", s), ("http", h)):
            base = "%s://%s:%d" % (scheme, host, port)
            r, code, _, _ = via(p, pki, base + "/text")
            assert code == 200
            r, code, _, body = via(p, pki, base + "/echo", "--data-binary", "post-body")
            assert code == 200 and body == b"post-body"
    # A last matching flow: once it shows, everything before it was decided.
    via(p, pki, "https://localhost:%d/echo?last" % s, "--data-binary", "x")
    out = p.wait_stdout("→ POST https://localhost:%d/echo?last → 200" % s)

    lines = flow_lines(out)
    assert len(lines) == 3, out
    assert "→ POST https://localhost:%d/echo → 200" % s in lines[0], out
    assert "→ POST http://localhost:%d/echo → 200" % h in lines[1], out
    for absent in ("GET ", "127.0.0.1:%d" % s, "127.0.0.1:%d" % h):
        assert not any(absent in l.split("→", 1)[1] for l in lines), (absent, out)
    # -v: the shown flows come with their headers.
    blocks = flow_blocks(out)
    assert len(blocks) == 3, out
    first = blocks[0]
    assert "  > POST /echo HTTP/1.1" in first, first
    assert "  > Host: localhost:%d" % s in first, first
    assert any(l.startswith("  < HTTP/1.1 200") for l in first), first
    assert "  > POST http://localhost:%d/echo HTTP/1.1" % h in blocks[1], blocks[1]


def test_no_filter_shows_every_flow(proxy_factory, pki, https_upstream):
    """Control for the test above: the same requests without -f all show."""
    s = https_upstream.port
    p = proxy_factory()
    via(p, pki, "https://127.0.0.1:%d/text" % s)
    via(p, pki, "https://localhost:%d/echo" % s, "--data-binary", "x")
    p.wait_stdout("→ GET https://127.0.0.1:%d/text → 200" % s)
    p.wait_stdout("→ POST https://localhost:%d/echo → 200" % s)


# ---- per-sink expressions -------------------------------------------------------

def test_sink_filters_record_only_their_flows(proxy_factory, pki, https_upstream,
                                              http_upstream, tmp_path):
    s, h = https_upstream.port, http_upstream.port
    har, jsonl = str(tmp_path / "f.har"), str(tmp_path / "f.jsonl")
    p = proxy_factory("--har", har, "--har-filter", "~m POST",
                      "--jsonl", jsonl, "--jsonl-filter", "~c 404")
    urls = []
    for host in ("localhost", "127.0.0.1"):
        via(p, pki, "https://%s:%d/text" % (host, s))
        via(p, pki, "https://%s:%d/echo" % (host, s), "--data-binary", "body-%s" % host)
        urls += ["GET https://%s:%d/text" % (host, s), "POST https://%s:%d/echo" % (host, s)]
    r, code, _, _ = via(p, pki, "http://localhost:%d/missing" % h)
    assert code == 404
    urls.append("GET http://localhost:%d/missing" % h)
    out = p.wait_stdout("→ GET http://localhost:%d/missing → 404" % h)
    stop_ok(p)
    out = p.stdout()

    # The console shows every flow.
    lines = flow_lines(out)
    assert len(lines) == 5, out
    for u in urls:
        assert sum(("→ %s →" % u) in l for l in lines) == 1, (u, out)

    entries = read_har(har)
    assert [(e["request"]["method"], e["request"]["url"]) for e in entries] == [
        ("POST", "https://localhost:%d/echo" % s), ("POST", "https://127.0.0.1:%d/echo" % s)]
    assert [e["response"]["status"] for e in entries] == [200, 200]

    records = read_jsonl(jsonl)
    assert len(records) == 1, records
    assert records[0]["status"] == 404
    assert records[0]["url"] == "http://localhost:%d/missing" % h
    assert records[0]["method"] == "GET"


# ---- --block --------------------------------------------------------------------

def test_block_answers_without_touching_upstream(proxy_factory, pki, https_upstream,
                                                 http_upstream, tmp_path):
    s, h = https_upstream.port, http_upstream.port
    har, jsonl = str(tmp_path / "b.har"), str(tmp_path / "b.jsonl")
    p = proxy_factory("--block", "~u /blocked", "--block", "~u /legal:451", "--har", har,
                      "--jsonl", jsonl)

    # HTTPS through a CONNECT tunnel: 403, and the server saw nothing.
    before = direct_count(pki, https_upstream, tls=True)
    r, code, head, body = via(p, pki, "https://localhost:%d/blocked" % s)
    assert code == 403, head
    assert b"--block" in body and len(body) < 200, body
    assert direct_count(pki, https_upstream, tls=True) == before + 1  # only the /count itself
    # Control: an unblocked request through the same proxy does reach it.
    r, code, _, body = via(p, pki, "https://localhost:%d/text" % s)
    assert code == 200 and body == TEXT
    assert direct_count(pki, https_upstream, tls=True) == before + 3

    # Plain http:// (absolute-form) with a custom status.
    before = direct_count(pki, http_upstream, tls=False)
    r, code, head, body = via(p, pki, "http://127.0.0.1:%d/legal" % h)
    assert code == 451, head
    assert b"--block" in body and len(body) < 200, body
    assert direct_count(pki, http_upstream, tls=False) == before + 1

    out = p.wait_stdout("→ GET http://127.0.0.1:%d/legal → 451" % h)
    lines = flow_lines(out)
    assert any(("→ GET https://localhost:%d/blocked → 403" % s) in l for l in lines), lines
    # The action says what it did, under the line and in both transcripts.
    why = "blocked: answered 451 by tlspeek (--block), not sent upstream"
    p.wait_stdout("↳ " + why)
    p.stop()
    by_url = {e["request"]["url"]: e for e in read_har(har)}
    assert by_url["http://127.0.0.1:%d/legal" % h]["_actions"] == [why], by_url
    assert "_actions" not in by_url["https://localhost:%d/text" % s], by_url
    rec = {r["url"]: r for r in read_jsonl(jsonl)}
    assert rec["http://127.0.0.1:%d/legal" % h]["actions"] == [why], rec
    assert "actions" not in rec["https://localhost:%d/text" % s], rec


def test_block_plain_http_never_connects_upstream(proxy_factory, pki):
    srv = CountingServer()
    try:
        p = proxy_factory("--block", "~u /blocked:451")
        r, code, head, body = via(p, pki, "http://127.0.0.1:%d/blocked" % srv.port)
        assert code == 451, head
        assert b"--block" in body, body
        # A later, unblocked request is the first connection the server sees.
        r, code, head, body = via(p, pki, "http://127.0.0.1:%d/open" % srv.port)
        assert code == 200 and body == b"ok\n", (head, body)
        with srv.lock:
            assert srv.lines == ["GET /open HTTP/1.1"], srv.lines
            assert srv.accepted == 1, srv.accepted
    finally:
        srv.close()


# ---- --set-header / --remove-header ------------------------------------------------

def test_set_and_remove_header(proxy_factory, pki, https_upstream, http_upstream):
    s, h = https_upstream.port, http_upstream.port
    p = proxy_factory("--set-header", "~q & ~u /headers:X-Tlspeek-Test:hello",
                      "--remove-header", "~d localhost:Server",
                      "--set-header", "~u /text:X-Added:yes",
                      "--set-header", "~u /headers:X-Resp-Side:r")

    # Request side (~q): the upstream got the header; the client's own value
    # is replaced.
    r, code, head, body = via(p, pki, "https://127.0.0.1:%d/headers" % s,
                              "-H", "X-Tlspeek-Test: from-client")
    assert code == 200
    received = body.decode()
    assert "X-Tlspeek-Test: hello\r\n" in received or "X-Tlspeek-Test: hello\n" in received, received
    assert "from-client" not in received, received
    # Response side (no ~q): the client sees it, the upstream did not get it.
    assert "x-resp-side" not in received.lower(), received
    assert "X-Resp-Side: r" in head.split("\r\n"), head
    assert "X-Tlspeek-Test" not in head, head
    # ~d localhost does not match 127.0.0.1: the Server header is still there.
    assert "server" in header_names(head), head

    # Response-side remove on localhost (HTTPS and plain HTTP).
    for url in ("https://localhost:%d/text" % s, "http://localhost:%d/text" % h):
        r, code, head, body = via(p, pki, url)
        assert code == 200 and body == TEXT
        assert "server" not in header_names(head), (url, head)
        assert "X-Added: yes" in head.split("\r\n"), (url, head)
    # The request-side set applies to /headers only.
    r, code, head, body = via(p, pki, "https://localhost:%d/headers" % s)
    assert "X-Tlspeek-Test: hello" in body.decode(), body
    assert "server" not in header_names(head), head
    r, code, head, body = via(p, pki, "https://127.0.0.1:%d/json" % s)
    assert "x-added" not in header_names(head), head
    assert "server" in header_names(head), head


def test_without_actions_headers_are_untouched(proxy_factory, pki, https_upstream):
    """Control: without the options the client sees Server and no X-Added."""
    s = https_upstream.port
    p = proxy_factory()
    r, code, head, body = via(p, pki, "https://localhost:%d/text" % s)
    assert "server" in header_names(head), head
    assert "x-added" not in header_names(head), head
    r, code, head, body = via(p, pki, "https://localhost:%d/headers" % s)
    assert "x-tlspeek-test" not in body.decode().lower(), body


# ---- --redact-auth ----------------------------------------------------------------

SECRETS = ("s3cr3t-TOKEN", "c00kie-SECRET", "setc00kie-SECRET")


def _secret_run(proxy_factory, pki, https_upstream, http_upstream, tmp_path, name, redact):
    s, h = https_upstream.port, http_upstream.port
    har, jsonl = str(tmp_path / (name + ".har")), str(tmp_path / (name + ".jsonl"))
    args = ["-vv", "--har", har, "--jsonl", jsonl] + (["--redact-auth"] if redact else [])
    p = proxy_factory(*args)
    for url in ("https://localhost:%d/setcookie" % s, "http://localhost:%d/setcookie" % h):
        r, code, head, body = via(p, pki, url, "-H", "Authorization: Bearer s3cr3t-TOKEN",
                                  "-H", "Cookie: session=c00kie-SECRET")
        assert code == 200 and body == TEXT
        # Redaction changes what is shown, never the traffic.
        assert "Set-Cookie: id=setc00kie-SECRET; Path=/" in head.split("\r\n"), head
    p.wait_stdout("→ GET http://localhost:%d/setcookie → 200" % h)
    rc = p.stop()
    got = {"stdout": p.stdout(), "stderr": p.stderr(), "har": read_text(har),
           "jsonl": read_text(jsonl)}
    return rc, got


def assert_exit_0(rc, got):
    assert rc == 0, "tlspeek exit %s\nstderr:\n%s" % (rc, got["stderr"][-4000:])


def test_redact_auth_leaves_no_secret(proxy_factory, pki, https_upstream, http_upstream,
                                      tmp_path):
    rc, got = _secret_run(proxy_factory, pki, https_upstream, http_upstream, tmp_path,
                          "redacted", True)
    for where, text in got.items():
        for secret in SECRETS:
            assert secret not in text, "%s leaked into %s:\n%s" % (secret, where, text[-3000:])
    for where in ("stdout", "har", "jsonl"):
        assert "<redacted>" in got[where], (where, got[where][-3000:])
    out = got["stdout"]
    for line in ("  > Authorization: <redacted>", "  > Cookie: <redacted>",
                 "  < Set-Cookie: <redacted>"):
        assert out.count(line + "\n") == 2, (line, out)
    # The records still name the headers.
    entries = read_har(str(tmp_path / "redacted.har"))
    assert len(entries) == 2
    for e in entries:
        req = {x["name"].lower(): x["value"] for x in e["request"]["headers"]}
        resp = {x["name"].lower(): x["value"] for x in e["response"]["headers"]}
        assert req["authorization"] == "<redacted>" and req["cookie"] == "<redacted>", req
        assert resp["set-cookie"] == "<redacted>", resp
    # Last, so that the checks above report first: a clean exit.
    assert_exit_0(rc, got)


def test_without_redact_auth_secrets_show(proxy_factory, pki, https_upstream, http_upstream,
                                          tmp_path):
    """Control run: the same traffic without --redact-auth shows every secret,
    so the test above can fail."""
    rc, got = _secret_run(proxy_factory, pki, https_upstream, http_upstream, tmp_path, "plain",
                          False)
    for where in ("stdout", "har", "jsonl"):
        for secret in SECRETS:
            assert secret in got[where], (secret, where, got[where][-3000:])
        assert "<redacted>" not in got[where], where
    assert_exit_0(rc, got)


# ---- plugins ---------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_count_hosts_plugin_table(sig, examples, proxy_factory, pki, https_upstream,
                                  http_upstream):
    s, h = https_upstream.port, http_upstream.port
    p = proxy_factory("--load", COUNT_HOSTS)
    assert "loaded plugin count_hosts" in p.stderr(), p.stderr()
    # Three requests on one kept-alive connection: counted per request.
    r = curl("--cacert", pki.proxy_ca, "-x", p.url, *(["https://localhost:%d/text" % s] * 3))
    assert r.returncode == 0 and r.stdout == TEXT * 3, r.stderr.decode()
    for _ in range(2):
        via(p, pki, "https://127.0.0.1:%d/json" % s)
    via(p, pki, "http://localhost:%d/echo" % h, "--data-binary", "x")
    p.wait_stdout("→ POST http://localhost:%d/echo → 200" % h)
    assert "requests  host" not in p.stdout()
    stop_ok(p, sig)

    out = p.stdout()
    lines = out.splitlines()
    assert "requests  host" in lines, out
    i = lines.index("requests  host")
    # The table comes after the flows.
    assert len(flow_lines("\n".join(lines[:i]))) == 6, out
    rows = {}
    for l in lines[i + 1:]:
        m = re.match(r"^\s*(\d+)  (\S+)$", l)
        assert m, "not a table row: %r\n%s" % (l, out)
        rows[m.group(2)] = int(m.group(1))
    assert rows == {"localhost:%d" % s: 3, "127.0.0.1:%d" % s: 2, "localhost:%d" % h: 1}, out
    # Sorted by count, largest first.
    counts = [int(l.split()[0]) for l in lines[i + 1:]]
    assert counts == sorted(counts, reverse=True), out


def test_tag_marker_plugin(examples, proxy_factory, pki, https_upstream, http_upstream,
                           tmp_path):
    s, h = https_upstream.port, http_upstream.port
    jsonl, har = str(tmp_path / "t.jsonl"), str(tmp_path / "t.har")
    p = proxy_factory("--load", TAG_MARKER + ":Second", "--jsonl", jsonl, "--har", har)
    assert "loaded plugin tag_marker" in p.stderr(), p.stderr()
    via(p, pki, "https://localhost:%d/text" % s)      # "Second line of text."
    via(p, pki, "https://localhost:%d/json" % s)      # no marker
    via(p, pki, "http://127.0.0.1:%d/text" % h)       # marker, plain HTTP
    out = p.wait_stdout("→ GET http://127.0.0.1:%d/text → 200" % h)
    stop_ok(p)
    out = p.stdout()
    lines = flow_lines(out)
    assert len(lines) == 3, out
    assert "/text → 200" in lines[0] and lines[0].endswith(" [marker:Second]"), lines[0]
    assert "/json → 200" in lines[1] and "[marker" not in lines[1], lines[1]
    assert "/text → 200" in lines[2] and lines[2].endswith(" [marker:Second]"), lines[2]

    tags = {r["url"]: r["tags"] for r in read_jsonl(jsonl)}
    assert tags == {"https://localhost:%d/text" % s: "marker:Second",
                    "https://localhost:%d/json" % s: None,
                    "http://127.0.0.1:%d/text" % h: "marker:Second"}, tags
    htags = {e["request"]["url"]: e.get("_tags") for e in read_har(har)}
    assert htags["https://localhost:%d/text" % s] == "marker:Second", htags
    assert htags["https://localhost:%d/json" % s] in (None, ""), htags


def test_tag_marker_plugin_refusing_to_start(examples, pki):
    """create() returning NULL: tlspeek exits before listening with its sentence."""
    port = free_port()
    r = run(["--ca-dir", pki.proxy_ca_dir, "-l", "127.0.0.1:%d" % port,
             "--load", TAG_MARKER + ":" + "x" * 200], env=clean_env(), timeout=30)
    err = r.stderr.decode()
    assert r.returncode in (1, 2), (r.returncode, err)
    assert "the marker is longer than 127 bytes" in err, err
    assert "listening on" not in err, err


PLUGIN_SRC = r"""
#include <stdlib.h>
#include "filters/filter.h"

static const flt_ops_t ops = {
    .abi_version = OPS_ABI,
    .name = "other_abi",
};

/* Must never run: a refused plugin is not started. */
static void *create(const char *arg, int slot, char *err, size_t errlen) {
  (void)arg; (void)slot; (void)err; (void)errlen;
  abort();
}

const flt_plugin_t tlspeek_plugin = {
    .abi_version = PLUGIN_ABI,
    .name = "other_abi",
    .description = "built for another filter ABI",
    .ops = &ops,
    .create = create,
};
"""


def compile_so(tmp_path, name, source, *defines):
    gcc = require_program("gcc")
    src = tmp_path / (name + ".c")
    src.write_text(source)
    so = str(tmp_path / (name + ".so"))
    r = subprocess.run([gcc, "-shared", "-fPIC", "-I", ROOT] + ["-D" + d for d in defines]
                       + ["-o", so, str(src)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return so


def run_load(pki, so):
    port = free_port()
    r = run(["--ca-dir", pki.proxy_ca_dir, "-l", "127.0.0.1:%d" % port, "--load", so],
            env=clean_env(), timeout=30)
    return r, r.stderr.decode()


@pytest.mark.parametrize("plugin_abi,ops_abi,bad", [
    ("FLT_ABI_VERSION+1", "FLT_ABI_VERSION+1", 3),
    ("FLT_ABI_VERSION", "FLT_ABI_VERSION+1", 3),   # only the vtable is of another ABI
    ("0", "0", 0),                                 # older than the oldest one spoken
    ("1", "2", 2),                                 # a v1 plugin with a v2 vtable
], ids=["both", "ops-only", "zero", "mixed"])
def test_plugin_of_another_abi_is_refused(plugin_abi, ops_abi, bad, pki, tmp_path):
    so = compile_so(tmp_path, "other_abi", PLUGIN_SRC, "PLUGIN_ABI=(%s)" % plugin_abi,
                    "OPS_ABI=(%s)" % ops_abi)
    r, err = run_load(pki, so)
    assert r.returncode in (1, 2), (r.returncode, err)
    assert "built for filter ABI %d" % bad in err, err
    assert "speaks ABI 1 to 2" in err, err
    assert so in err, err
    assert "listening on" not in err, err


def test_plugin_without_symbol_is_refused(pki, tmp_path):
    so = compile_so(tmp_path, "nosym", "int not_a_plugin = 1;\n")
    r, err = run_load(pki, so)
    assert r.returncode in (1, 2), (r.returncode, err)
    assert "tlspeek_plugin" in err and so in err, err
    assert "listening on" not in err, err


def test_missing_plugin_file_is_refused(pki, tmp_path):
    so = str(tmp_path / "does-not-exist.so")
    r, err = run_load(pki, so)
    assert r.returncode in (1, 2), (r.returncode, err)
    assert so in err, err
    assert "listening on" not in err, err


# ---- syntax errors ------------------------------------------------------------------

@pytest.mark.parametrize("opt,expr,column", [
    ("-f", "~d", 1),
    ("--filter", "~m GET ~d", 8),
    ("--har-filter", "~m GET (", 9),
    ("--jsonl-filter", "~c", 1),
    ("--pcap-filter", "~d a & (~m GET", 15),
    ("--keylog-filter", "~nosuchterm x", 1),
])
def test_bad_expression_exits_2_with_caret(opt, expr, column, pki, tmp_path):
    port = free_port()
    args = ["--ca-dir", pki.proxy_ca_dir, "-l", "127.0.0.1:%d" % port]
    if opt == "--har-filter":
        args += ["--har", str(tmp_path / "x.har")]
    elif opt == "--jsonl-filter":
        args += ["--jsonl", str(tmp_path / "x.jsonl")]
    elif opt == "--pcap-filter":
        args += ["--pcap", str(tmp_path / "x.pcap")]
    elif opt == "--keylog-filter":
        args += ["--keylog", str(tmp_path / "x.keys")]
    r = run(args + [opt, expr], env=clean_env(), timeout=30)
    err = r.stderr.decode()
    assert r.returncode == 2, (r.returncode, err)
    assert "listening on" not in err, err
    assert "column %d" % column in err, err
    lines = err.splitlines()
    # The expression, then a caret under the spot.
    idx = [i for i, l in enumerate(lines) if l.strip() == expr and i + 1 < len(lines)]
    assert idx, err
    shown, caret = lines[idx[0]], lines[idx[0] + 1]
    assert re.fullmatch(r" *\^", caret), err
    assert caret.index("^") == shown.index(expr) + column - 1, err


def test_ignore_hosts_refuses_flow_terms(pki):
    port = free_port()
    r = run(["--ca-dir", pki.proxy_ca_dir, "-l", "127.0.0.1:%d" % port,
             "--ignore-hosts", "~m GET"], env=clean_env(), timeout=30)
    err = r.stderr.decode()
    assert r.returncode == 2, (r.returncode, err)
    assert "--ignore-hosts accepts only" in err, err
    assert "listening on" not in err, err


# ---- --ignore-hosts with an expression -------------------------------------------------

def test_ignore_hosts_expression_passes_through(proxy_factory, pki, https_upstream):
    s = https_upstream.port
    leaf = fingerprint(cert_der(pki.leaf))
    p = proxy_factory("--ignore-hosts", "~sni localhost")

    # SNI "localhost": passed through, the client sees the upstream's own
    # certificate and verifies it against the upstream CA alone.
    der, body = tls_through_connect(p.port, "127.0.0.1:%d" % s, "localhost", pki.upstream_ca)
    assert fingerprint(der) == leaf
    assert body == TEXT
    r = curl("--cacert", pki.upstream_ca, "-x", p.url, "https://localhost:%d/text" % s)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == TEXT

    # No SNI (an IP literal): intercepted, with a certificate of tlspeek's CA.
    der, body = tls_through_connect(p.port, "127.0.0.1:%d" % s, "127.0.0.1", pki.proxy_ca)
    assert body == TEXT
    assert fingerprint(der) != leaf
    ok, msg = openssl_verify(der, pki.proxy_ca)
    assert ok, msg
    out = p.wait_stdout("→ GET https://127.0.0.1:%d/text → 200" % s)
    lines = flow_lines(out)
    passed = [l for l in lines if "(TLS passed through, not intercepted)" in l]
    assert len(passed) == 2, out
    assert not any("→ GET https://localhost" in l for l in lines), out
