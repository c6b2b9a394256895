"""End-to-end tests for the actions with which tlspeek answers requests
itself, without contacting the server: --map-local (a file or a directory,
directory traversal refused) and --serve-from (a HAR or JSONL recording,
--serve-match, --serve-miss).

Real clients (curl, Python http.client and raw sockets) talk through a real
tlspeek in explicit mode; the recordings are made by tlspeek itself earlier
in the same test, against the local origin servers of upstream_server.py,
which are then stopped. Clients trust tlspeek through --cacert pki.proxy_ca.

Run from tests/e2e:
  TLSPEEK_BIN=/path/to/tlspeek /usr/bin/python3 -m pytest -q test_change_answer.py
"""
import hashlib
import http.client
import json
import os
import socket
import ssl
import time

import pytest

from conftest import BIN, Upstream, curl, free_port, run
from upstream_server import TEXT, payload

SECRET = b"top-secret-content-outside-the-served-directory\n"


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"tlspeek binary not found at {BIN} (build it or set TLSPEEK_BIN)")


# ---- helpers -----------------------------------------------------------------

@pytest.fixture
def site(tmp_path):
    """A directory to serve, next to a secret file that must never be served,
    with a symbolic link (a file and a folder) from inside to outside."""
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "img").mkdir()
    (root / "space dir").mkdir()
    files = {
        "index.html": b"<!doctype html><title>mock</title><h1>home</h1>\n",
        "css/app.css": b"body { color: #123456 }\n",
        "app.js": b"console.log('mock');\n",
        "data.json": b'{"users": [1, 2, 3]}\n',
        "notes.txt": "plain text, ünïcödé\n".encode(),
        "img/pixel.png": bytes.fromhex("89504e470d0a1a0a0000000d49484452") + payload(300),
        "docs/index.html": b"<h1>docs index</h1>\n",
        "space dir/a b.txt": b"spaces in the path\n",
        "blob.unknownext": payload(5000),
        "big.bin": payload(3 * 1024 * 1024 + 17),
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    os.symlink(str(outside / "secret.txt"), str(root / "link.txt"))
    os.symlink(str(outside), str(root / "linkdir"))
    os.symlink("data.json", str(root / "inner-link.json"))  # stays inside: served
    return root, files


def via(p, *args):
    return curl("-x", p.url, *args)


def status_and_body(p, url, *extra):
    r = via(p, "-o", "-", "-w", "\n%{http_code} %{content_type}", *extra, url)
    assert r.returncode == 0, r.stderr.decode()
    body, _, tail = r.stdout.rpartition(b"\n")
    code, _, ctype = tail.decode().partition(" ")
    return int(code), ctype, body


def read_response(f):
    """One HTTP/1.1 response with Content-Length from the buffered reader f."""
    line = f.readline()
    assert line.startswith(b"HTTP/1.1 "), line
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, v = h.decode("latin-1").split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return status, headers, f.read(int(headers.get("content-length", "0")))


def wait_flow_lines(p, n, timeout=10.0):
    """The first n flow lines of the console (written by a writer thread)."""
    deadline = time.time() + timeout
    while True:
        flows = [l for l in p.stdout().splitlines() if l.startswith("127.0.0.1")]
        if len(flows) >= n or time.time() > deadline:
            assert len(flows) == n, flows
            return flows
        time.sleep(0.05)


def har_entries(path):
    with open(path) as f:
        return json.load(f)["log"]["entries"]


def jsonl_records(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


# ---- --map-local ---------------------------------------------------------------

def test_map_local_serves_a_directory(proxy_factory, site, tmp_path):
    root, files = site
    har = str(tmp_path / "flows.har")
    p = proxy_factory("--map-local", "~d mock.test:%s" % root, "--har", har)
    types = {"index.html": "text/html; charset=utf-8", "css/app.css": "text/css; charset=utf-8",
             "app.js": "text/javascript; charset=utf-8", "data.json": "application/json",
             "notes.txt": "text/plain; charset=utf-8", "img/pixel.png": "image/png",
             "blob.unknownext": "application/octet-stream",
             "big.bin": "application/octet-stream"}
    for rel, ctype in types.items():
        code, got_type, body = status_and_body(p, "http://mock.test/" + rel)
        assert code == 200, (rel, body[:200])
        assert got_type == ctype, rel
        assert body == files[rel], rel  # byte-identical
    # "/" and a folder: their index.html; an encoded space decodes.
    assert status_and_body(p, "http://mock.test/")[2] == files["index.html"]
    assert status_and_body(p, "http://mock.test/docs/")[2] == files["docs/index.html"]
    assert status_and_body(p, "http://mock.test/docs")[2] == files["docs/index.html"]
    assert status_and_body(p, "http://mock.test/space%20dir/a%20b.txt")[2] == \
        files["space dir/a b.txt"]
    # A query string is not part of the file name; a link inside stays allowed.
    assert status_and_body(p, "http://mock.test/data.json?x=1")[2] == files["data.json"]
    assert status_and_body(p, "http://mock.test/inner-link.json")[2] == files["data.json"]
    # A missing file: 404 answered by tlspeek, saying so.
    code, ctype, body = status_and_body(p, "http://mock.test/nope/missing.css")
    assert code == 404 and ctype.startswith("text/plain")
    assert b"--map-local has no file for this request" in body
    assert str(root / "nope" / "missing.css").encode() in body
    # HEAD: the length of the file, no body.
    r = via(p, "-sI", "http://mock.test/data.json")
    assert b"200 OK" in r.stdout and (b"Content-Length: %d" % len(files["data.json"])) in r.stdout
    out = p.wait_stdout("HEAD http://mock.test/data.json")
    assert "GET http://mock.test/css/app.css → 200 text/css" in out
    assert "    ↳ map-local: answered from %s (text/css; charset=utf-8, %d bytes)" % (
        root / "css" / "app.css", len(files["css/app.css"])) in out
    assert "    ↳ map-local: no file %s, answered 404" % (root / "nope" / "missing.css") in out
    assert p.stop() == 0
    by_url = {e["request"]["url"]: e for e in har_entries(har)}
    e = by_url["http://mock.test/data.json?x=1"]
    assert e["response"]["status"] == 200
    assert e["_actions"] == ["map-local: answered from %s (application/json, %d bytes)" % (
        root / "data.json", len(files["data.json"]))]
    assert e["response"]["content"]["text"] == files["data.json"].decode()


@pytest.mark.parametrize("path", [
    "/../secret.txt",
    "/css/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/css/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/css%2f..%2f..%2fsecret.txt",
    "/..%5csecret.txt",
    "/link.txt",
    "/linkdir/secret.txt",
    "/data.json%00.txt",
    "/bad%zzescape",
])
def test_map_local_refuses_traversal(proxy_factory, site, path):
    root, _ = site
    p = proxy_factory("--map-local", "~d mock.test:%s" % root)
    code, _, body = status_and_body(p, "http://mock.test" + path, "--path-as-is")
    assert code == 403, (path, body)
    assert b"--map-local refused the path" in body
    assert SECRET not in body
    out = p.wait_stdout("answered 403")
    assert "    ↳ map-local: refused path " in out


def test_map_local_refuses_backslash_and_raw_dots(proxy_factory, site):
    """What curl would not send as it is: a raw backslash, a bare '..'."""
    root, _ = site
    p = proxy_factory("--map-local", "~d mock.test:%s" % root)
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=20)
    for target in ("http://mock.test/..\\secret.txt", "http://mock.test/css/..",
                   "http://mock.test/.."):
        conn.request("GET", target, headers={"Host": "mock.test"})
        r = conn.getresponse()
        body = r.read()
        assert r.status == 403, (target, body)
        assert SECRET not in body
    conn.close()


def test_map_local_file_rule_and_big_file(proxy_factory, site, tmp_path, https_upstream):
    """A file rule answers every matching request with that file; a file of
    some MiB streams through TLS byte for byte (read in chunks); HTTPS
    through CONNECT needs no server at all, and a request that is not
    answered locally still reaches its (verified) server, on the same TLS
    connection as a local answer."""
    root, files = site
    dead = free_port()  # nothing listens there
    p = proxy_factory("--map-local", "~u /big:%s" % (root / "big.bin"),
                      "--map-local", "~d 127.0.0.1:%s" % root)
    for url in ("https://127.0.0.1:%d/big" % dead, "https://127.0.0.1:%d/bigger/x?y" % dead):
        r = via(p, "--cacert", p_ca(p), url)
        assert r.returncode == 0, r.stderr.decode()
        assert hashlib.sha256(r.stdout).hexdigest() == \
            hashlib.sha256(files["big.bin"]).hexdigest()
    code, ctype, body = status_and_body(p, "https://127.0.0.1:%d/app.js" % dead,
                                        "--cacert", p_ca(p))
    assert (code, ctype, body) == (200, "text/javascript; charset=utf-8", files["app.js"])
    out = p.wait_stdout("GET https://127.0.0.1:%d/app.js" % dead)
    assert "cannot connect" not in out + p.stderr()
    live = "https://localhost:%d" % https_upstream.port
    r = via(p, "--cacert", p_ca(p), "-w", " %{num_connects}", live + "/text", live + "/big")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == TEXT + b" 1" + files["big.bin"] + b" 0"  # one connection for both


def p_ca(p):
    return os.path.join(p.ca_dir, "tlspeek-ca-cert.pem")


def test_keepalive_across_local_and_forwarded(proxy_factory, site, http_upstream):
    """One client connection: forwarded and locally answered requests
    alternate, one after another (http.client) and pipelined (all sent at
    once, the first forwarded one slow): every answer comes, in order."""
    root, files = site
    (root / "local").mkdir()
    (root / "local" / "a.txt").write_bytes(b"local A\n")
    (root / "local" / "index.html").write_bytes(files["index.html"])
    up = http_upstream.port
    p = proxy_factory("--map-local", "~u /local/:%s" % root)
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=20)
    base = "http://127.0.0.1:%d" % up
    plan = [("/text", TEXT), ("/local/a.txt", b"local A\n"), ("/json", None),
            ("/local/a.txt", b"local A\n"), ("/local/missing", None), ("/text", TEXT)]
    sock = None
    for path, want in plan:
        conn.request("GET", base + path)
        r = conn.getresponse()
        body = r.read()
        assert r.status == (404 if path == "/local/missing" else 200), (path, body)
        if want is not None:
            assert body == want, path
        if sock is None:
            sock = conn.sock
        assert conn.sock is sock, "the client connection was not kept across %s" % path
    conn.close()

    s = socket.create_connection(("127.0.0.1", p.port), timeout=20)
    reqs = [
        "GET %s/slow/300 HTTP/1.1\r\nHost: x\r\n\r\n" % base,
        "GET %s/local/a.txt HTTP/1.1\r\nHost: x\r\n\r\n" % base,
        "POST %s/local/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world" % base,
        "GET %s/bin/70000 HTTP/1.1\r\nHost: x\r\n\r\n" % base,
        "GET %s/local/ HTTP/1.1\r\nHost: x\r\n\r\n" % base,
        "GET %s/text HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % base,
    ]
    s.sendall("".join(reqs).encode())
    f = s.makefile("rb")
    got = [read_response(f) for _ in reqs]
    assert [g[0] for g in got] == [200] * 6
    assert got[0][2] == TEXT and got[5][2] == TEXT
    assert got[1][2] == b"local A\n" and got[2][2] == b"local A\n"
    assert got[3][2] == payload(70000)
    assert got[4][2] == files["index.html"]
    assert f.read() == b""  # closed after the last, as asked
    s.close()
    # The locally answered POST's body was dropped, not sent upstream (there
    # it would have been one more request, and one more answer out of order).
    out = p.wait_stdout("GET %s/text" % base)
    assert "POST %s/local/a.txt → 200 text/plain" % base in out


def test_map_local_expect_continue(proxy_factory, site):
    """A client that waits for 100 Continue before its body gets it; the
    body is dropped, the answer comes, the connection stays open."""
    root, files = site
    p = proxy_factory("--map-local", "~d mock.test:%s" % root)
    s = socket.create_connection(("127.0.0.1", p.port), timeout=20)
    body = b"x" * 200000
    s.sendall(b"PUT http://mock.test/data.json HTTP/1.1\r\nHost: mock.test\r\n"
              b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
    f = s.makefile("rb")
    assert f.readline() == b"HTTP/1.1 100 Continue\r\n"  # else the timeout fails the test
    assert f.readline() == b"\r\n"
    s.sendall(body + b"GET http://mock.test/app.js HTTP/1.1\r\nHost: mock.test\r\n\r\n")
    assert read_response(f)[::2] == (200, files["data.json"])
    assert read_response(f)[::2] == (200, files["app.js"])
    s.close()


# ---- --serve-from --------------------------------------------------------------

def record(proxy_factory, pki, fmt, path, urls, posts=()):
    """Records the given exchanges through a tlspeek with --har/--jsonl."""
    p = proxy_factory("--" + fmt, path)
    bodies = {}
    for url in urls:
        r = via(p, "--cacert", pki.proxy_ca, "--compressed", url)
        assert r.returncode == 0, r.stderr.decode()
        bodies.setdefault(url, []).append(r.stdout)
    for url, data in posts:
        r = via(p, "--cacert", pki.proxy_ca, "--data-binary", data, url)
        assert r.returncode == 0 and r.stdout == data.encode()
    assert p.stop() == 0
    return bodies


def test_serve_from_har_with_the_server_stopped(proxy_factory, pki, tmp_path):
    up = Upstream(pki.leaf)
    base = "https://127.0.0.1:%d" % up.port
    har = str(tmp_path / "rec.har")
    urls = [base + "/text", base + "/json", base + "/gzip", base + "/bin/100000",
            base + "/png", base + "/count", base + "/count"]
    try:
        recorded = record(proxy_factory, pki, "har", har, urls)
    finally:
        up.stop()
    counts = recorded[base + "/count"]
    assert counts[0] != counts[1]

    p = proxy_factory("--serve-from", har, "--har", str(tmp_path / "served.har"))
    for url in urls[:5]:
        r = via(p, "--cacert", pki.proxy_ca, "-D", str(tmp_path / "h"), url)
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout == recorded[url][0], url
        head = (tmp_path / "h").read_text()
        assert "Content-Length: %d" % len(r.stdout) in head
        assert "Content-Encoding" not in head  # the HAR holds /gzip decoded
    # Identical requests cycle through the recorded responses, in order.
    got = [via(p, "--cacert", pki.proxy_ca, base + "/count").stdout for _ in range(3)]
    assert got == [counts[0], counts[1], counts[0]]
    # Several on one connection (curl reuses it), and a miss: forwarded, to
    # a server that is gone: 502.
    r = via(p, "--cacert", pki.proxy_ca, "-w", "%{http_code}\\n", "-o", "/dev/null",
            base + "/text", "-o", "/dev/null", base + "/json", "-o", "/dev/null",
            base + "/not-recorded")
    assert r.stdout.decode().split() == ["200", "200", "502"]
    out = p.wait_stdout("GET %s/not-recorded" % base)
    assert "GET %s/json → 200 application/json" % base in out
    assert "    ↳ served: 200 from log.entries[1] of %s (response 1 of 1 for this request, " % har \
        in out
    assert "response 2 of 2 for this request" in out
    assert ("    ↳ served: 200 from log.entries[2] of %s (response 1 of 1 for this request, "
            "%d bytes; recorded decoded, Content-Encoding gzip dropped)" % (har, len(TEXT))) in out
    assert p.stop() == 0
    served = har_entries(str(tmp_path / "served.har"))
    first = [e for e in served if e["request"]["url"] == base + "/text"][0]
    assert first["_actions"][0].startswith("served: 200 from log.entries[0] of %s" % har)


def test_serve_miss_404_and_forward(proxy_factory, pki, tmp_path, http_upstream):
    up = Upstream(pki.leaf)
    base = "https://127.0.0.1:%d" % up.port
    har = str(tmp_path / "rec.har")
    try:
        recorded = record(proxy_factory, pki, "har", har, [base + "/text"])
    finally:
        up.stop()
    p = proxy_factory("--serve-from", har, "--serve-miss", "404")
    code, ctype, body = status_and_body(p, base + "/other", "--cacert", pki.proxy_ca)
    assert code == 404 and ctype.startswith("text/plain")
    assert ("no recorded response for GET %s/other in %s" % (base, har)).encode() in body
    code, _, body = status_and_body(p, base + "/text", "--cacert", pki.proxy_ca)
    assert (code, body) == (200, recorded[base + "/text"][0])
    out = p.wait_stdout("GET %s/other" % base)
    assert "    ↳ served: no recorded response for GET %s/other, answered 404 " \
           "(--serve-miss 404)" % base in out
    # forward (the default): what is not recorded reaches a live server.
    p2 = proxy_factory("--serve-from", har, "--serve-miss", "forward")
    live = "http://127.0.0.1:%d/text" % http_upstream.port
    assert status_and_body(p2, live) == (200, "text/plain; charset=utf-8", TEXT)
    out = p2.wait_stdout("GET %s" % live)
    assert "served" not in out


def test_serve_from_jsonl_and_url_body(proxy_factory, pki, tmp_path):
    up = Upstream(pki.leaf)
    base = "https://127.0.0.1:%d" % up.port
    rec = str(tmp_path / "rec.jsonl")
    try:
        record(proxy_factory, pki, "jsonl", rec, [base + "/json"],
               posts=[(base + "/echo", "alpha"), (base + "/echo", "bravo")])
    finally:
        up.stop()
    # url: the POSTs cycle whatever their body; url+body: the body chooses.
    p = proxy_factory("--serve-from", rec)
    got = [via(p, "--cacert", pki.proxy_ca, "--data-binary", "zzz", base + "/echo").stdout
           for _ in range(3)]
    assert got == [b"alpha", b"bravo", b"alpha"]
    p2 = proxy_factory("--serve-from", rec, "--serve-match", "url+body", "--serve-miss", "404")
    for data in ("bravo", "alpha", "bravo"):
        r = via(p2, "--cacert", pki.proxy_ca, "--data-binary", data, base + "/echo")
        assert r.stdout == data.encode()
    code, _, body = status_and_body(p2, base + "/echo", "--cacert", pki.proxy_ca,
                                    "--data-binary", "charlie")
    assert code == 404
    assert b"no recorded response for POST %s/echo with this request body" % base.encode() in body
    assert status_and_body(p2, base + "/json", "--cacert", pki.proxy_ca)[0] == 200
    out = p2.wait_stdout("GET %s/json" % base)
    assert "    ↳ served: 200 from line 2 of %s" % rec in out


def test_serve_url_body_miss_is_forwarded(proxy_factory, pki, tmp_path, http_upstream):
    """--serve-match url+body, --serve-miss forward: a recorded URL with
    another body goes to the (live) server after all, head and body intact,
    on a connection that goes on serving."""
    url = "http://127.0.0.1:%d/echo" % http_upstream.port
    rec = str(tmp_path / "rec.jsonl")
    record(proxy_factory, pki, "jsonl", rec, [], posts=[(url, "alpha")])
    p = proxy_factory("--serve-from", rec, "--serve-match", "url+body")
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=20)
    for data in (b"alpha", b"charlie-" + payload(30000).hex().encode(), b"alpha", b"delta"):
        conn.request("POST", url, body=data)
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, data)
    conn.close()
    flows = wait_flow_lines(p, 4)
    assert ["[served]" in l for l in flows] == [True, False, True, False], flows


def test_serve_url_body_with_a_request_replace_rule(proxy_factory, pki, tmp_path,
                                                   http_upstream):
    """--serve-match url+body decides on the request as received while a
    request-side --replace rule also matches it: a hit is answered from the
    recording and nothing goes to the server; a miss goes to the server once,
    as the client sent it (kept whole until the body decided, it is not
    rewritten), and the next request still gets its own answer."""
    url = "http://127.0.0.1:%d/echo" % http_upstream.port
    rec = str(tmp_path / "rec.jsonl")
    record(proxy_factory, pki, "jsonl", rec, [], posts=[(url, "alpha")])
    p = proxy_factory("--serve-from", rec, "--serve-match", "url+body",
                      "--replace", "~q ~u /echo:/charlie/delta/")
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=20)
    for sent, want in ((b"alpha", b"alpha"), (b"charlie", b"charlie"), (b"alpha", b"alpha"),
                       (b"xcharliex", b"xcharliex")):
        conn.request("POST", url, body=sent)
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, want), sent
    conn.close()
    flows = wait_flow_lines(p, 4)
    assert ["[served]" in l for l in flows] == [True, False, True, False], flows


def test_serve_from_over_http_client_keepalive(proxy_factory, pki, tmp_path):
    """python http.client through the CONNECT tunnel, several requests on one
    TLS connection, the server stopped."""
    up = Upstream(pki.leaf)
    base = "https://127.0.0.1:%d" % up.port
    har = str(tmp_path / "rec.har")
    try:
        recorded = record(proxy_factory, pki, "har", har, [base + "/text", base + "/bin/5000"])
    finally:
        up.stop()
    p = proxy_factory("--serve-from", har, "--serve-miss", "404")
    ctx = ssl.create_default_context(cafile=pki.proxy_ca)
    conn = http.client.HTTPSConnection("127.0.0.1", p.port, context=ctx, timeout=20)
    conn.set_tunnel("127.0.0.1", up.port)
    sock = None
    for path, status in (("/text", 200), ("/bin/5000", 200), ("/missing", 404), ("/text", 200)):
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        assert r.status == status, (path, body)
        if status == 200:
            assert body == recorded[base + path][0]
        sock = sock or conn.sock
        assert conn.sock is sock
    conn.close()


# ---- bad arguments -------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--serve-from", "/nonexistent/rec.har"], "cannot serve from --serve-from /nonexistent/rec.har: "),
    (["--serve-match", "headers"], "bad --serve-match 'headers' (use url or url+body)"),
    (["--serve-miss", "500"], "bad --serve-miss '500' (use forward or 404)"),
    (["--map-local", "~d x.test"], "bad --map-local '~d x.test': no existing file or directory"),
    (["--map-local", "~d x.test:/nonexistent/dir"], "no existing file or directory"),
    (["--map-local", "~bogus x:/tmp"], "the expression before PATH does not compile"),
])
def test_bad_arguments_exit_2(args, message):
    r = run(args + ["-l", "127.0.0.1:%d" % free_port()], timeout=20)
    assert r.returncode == 2, r.stderr.decode()
    assert message in r.stderr.decode()


def test_bad_recordings_exit_2(tmp_path):
    notjson = tmp_path / "notes.txt"
    notjson.write_text("hello\n")
    r = run(["--serve-from", str(notjson)], timeout=20)
    assert r.returncode == 2
    assert "cannot serve from --serve-from %s: line 1" % notjson in r.stderr.decode()
    broken = tmp_path / "broken.har"
    broken.write_text('{"log": {"entries": [{"request": {}}]}}')
    r = run(["--serve-from", str(broken)], timeout=20)
    assert r.returncode == 2
    assert "log.entries[0].request" in r.stderr.decode()
    empty = tmp_path / "empty.har"
    empty.write_text('{"log": {"version": "1.2", "entries": []}}')
    r = run(["--serve-from", str(empty)], timeout=20)
    assert r.returncode == 2
    assert "no recorded request has a response to serve" in r.stderr.decode()


def test_help_documents_the_options():
    r = run(["--help"])
    text = r.stdout.decode()
    for opt in ("--map-local EXPR:PATH", "--serve-from FILE", "--serve-match HOW",
                "--serve-miss WHAT"):
        assert opt in text, opt
    assert "last ':' followed by" in text
