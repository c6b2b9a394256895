"""--intercept EXPR: matching requests wait until the flow browser resumes,
edits or kills them (README.md "Intercept", proxy/web/README.md).

Real clients (curl through tlspeek) against a real local HTTPS server that
records every request it receives (method, target, headers, body), so each
test asserts what the upstream actually saw. The decisions are made through
the web API (python urllib with the token), and once in headless Chromium
on the page itself (cdp.py). No timing assertions: every wait is a bounded
poll of a condition."""
import hashlib
import http.server
import json
import os
import re
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from cdp import Browser
from conftest import BIN, clean_env, free_port, require_program, run

START_LINE = re.compile(r"tlspeek: web: (http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]{32}))")


class Recorder:
    """An HTTPS origin on 127.0.0.1 that answers every request with what it
    received, as JSON, and keeps the list of requests it has seen."""

    def __init__(self, pem):
        self.seen = []
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                got = {"method": self.command, "path": self.path,
                       "headers": [[k, v] for k, v in self.headers.items()],
                       "body": body.decode("utf-8", "replace"), "len": len(body),
                       "sha256": hashlib.sha256(body).hexdigest()}
                with lock:
                    outer.seen.append(got)
                out = json.dumps(got).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pem)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self):
        return [s["path"] for s in self.seen]

    def find(self, needle):
        return [s for s in self.seen if needle in s["path"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def origin(pki):
    require_program("curl")
    r = Recorder(pki.leaf)
    yield r
    r.close()


class Api:
    """The flow browser's API of one running tlspeek."""

    def __init__(self, proxy):
        deadline = time.time() + 15
        while not START_LINE.search(proxy.stderr()):
            assert time.time() < deadline, "no web start line:\n" + proxy.stderr()
            time.sleep(0.05)
        m = START_LINE.search(proxy.stderr())
        self.url, self.port, self.token = m.group(1), int(m.group(2)), m.group(3)
        self.base = "http://127.0.0.1:%d" % self.port

    def call(self, path, data=None, token=True, method=None):
        """(status, JSON answer)."""
        sep = "&" if "?" in path else "?"
        url = self.base + path + (sep + "token=" + self.token if token else "")
        if isinstance(data, (dict, list)):
            data = json.dumps(data).encode()
        req = urllib.request.Request(url, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def waiting(self):
        status, j = self.call("/api/intercepts")
        assert status == 200, j
        return j["waiting"]

    def wait_waiting(self, needle, timeout=15):
        """The list id of the flow whose URL holds `needle`, once it waits."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for w in self.waiting():
                status, d = self.call("/api/flows/%d" % w["id"])
                if status == 200 and needle in d["summary"]["url"]:
                    return w["id"]
            time.sleep(0.05)
        raise AssertionError("no waiting flow for %s: %r" % (needle, self.waiting()))


def start(proxy_factory, *args):
    p = proxy_factory("--web", "127.0.0.1:%d" % free_port(), "--intercept", "~u /hold", *args)
    return p, Api(p)


def curl_bg(p, pki, url, *args):
    return subprocess.Popen(["curl", "-sS", "--max-time", "60", "-x", p.url, "--cacert",
                             pki.proxy_ca] + list(args) + [url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())


def finish(proc):
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out


def wait_stderr(p, needle, timeout=15):
    deadline = time.time() + timeout
    while needle not in p.stderr():
        assert time.time() < deadline, "%r not on stderr:\n%s" % (needle, p.stderr()[-3000:])
        time.sleep(0.05)
    return p.stderr()


# ---- the API ----------------------------------------------------------------------


def test_resume_with_edits_reaches_the_upstream(proxy_factory, pki, origin, tmp_path):
    jsonl = str(tmp_path / "flows.jsonl")
    p, api = start(proxy_factory, "--jsonl", jsonl)
    url = "https://localhost:%d/hold/one" % origin.port
    held = curl_bg(p, pki, url, "-d", "original body", "-H", "X-Orig: 1",
                   "-H", "Content-Type: text/plain", "-H", "User-Agent: test-agent")
    try:
        fid = api.wait_waiting("/hold/one")
        wait_stderr(p, "\u23f8 intercepted: POST %s waiting in the flow browser" % url)
        # Held: the upstream has not seen it, and another connection flows meanwhile.
        free = curl_bg(p, pki, "https://localhost:%d/free" % origin.port)
        assert json.loads(finish(free))["path"] == "/free"
        assert origin.find("/hold/one") == [] and held.poll() is None
        status, j = api.call("/api/flows/%d/resume" % fid, {
            "method": "PUT",
            "url": "https://localhost:%d/hold/edited?x=1" % origin.port,
            "headers": [["X-Orig", "2"], ["X-New", "yes"], ["Content-Type", "text/plain"],
                        ["Accept", "*/*"], ["User-Agent", "test-agent"]],
            "body": "edited body, longer than before"})
        assert status == 200 and j["ok"], j
        got = json.loads(finish(held))
    finally:
        if held.poll() is None:
            held.kill()
    # What the upstream saw is the edit, and the client got its answer.
    assert got["method"] == "PUT" and got["path"] == "/hold/edited?x=1", got
    h = {k.lower(): v for k, v in got["headers"]}
    assert h["x-orig"] == "2" and h["x-new"] == "yes", h
    assert got["body"] == "edited body, longer than before"
    assert h["content-length"] == str(len(got["body"])), h
    assert h["host"] == "localhost:%d" % origin.port, h
    assert [s["path"] for s in origin.find("/hold/")] == ["/hold/edited?x=1"]
    err = wait_stderr(p, "\u25b6 resumed: POST %s after " % url)
    assert re.search(r"resumed: POST \S+ after \d+\.\d s \(edited: method, URL, 2 headers, body\)",
                     err), err
    out = p.wait_stdout("\u21b3 intercepted: edited in the flow browser (method, URL, 2 headers, "
                        "body) after ")
    assert "PUT" in out or "POST" in out
    p.stop()
    rec = [json.loads(line) for line in open(jsonl) if "/hold/" in line]
    assert len(rec) == 1, rec
    assert any(a.startswith("intercepted: edited in the flow browser (method, URL, 2 headers, body)")
               for a in rec[0]["actions"]), rec[0]
    # Recorded as forwarded: the edited head.
    assert rec[0]["method"] == "PUT", rec[0]
    names = {h["name"].lower(): h["value"] for h in rec[0]["request"]["headers"]}
    assert names.get("x-new") == "yes" and names.get("content-length") == "31", rec[0]["request"]
    # ... and as the client sent it.
    got = {h["name"].lower(): h["value"] for h in rec[0]["requestReceived"]["headers"]}
    assert got.get("x-orig") == "1" and "x-new" not in got, rec[0]["requestReceived"]


def test_resume_unchanged(proxy_factory, pki, origin):
    p, api = start(proxy_factory)
    url = "https://localhost:%d/hold/same" % origin.port
    held = curl_bg(p, pki, url, "-d", "as sent")
    fid = api.wait_waiting("/hold/same")
    status, j = api.call("/api/flows/%d/resume" % fid, b"")
    assert status == 200, j
    got = json.loads(finish(held))
    assert got["method"] == "POST" and got["path"] == "/hold/same" and got["body"] == "as sent"
    p.wait_stdout("\u21b3 intercepted: resumed unchanged in the flow browser after ")
    # Decided once: a second decision is refused.
    status, j = api.call("/api/flows/%d/kill" % fid, b"")
    assert status == 409 and "not waiting" in j["error"], j


def test_intercept_with_replace_on_the_same_request(proxy_factory, pki, origin):
    """A request both intercepted and matched by a request-side --replace rule
    is held whole by the intercept (not also by the body rewrite): once resumed,
    the upstream gets it exactly once, head and body intact, and the next
    request on the connection is paired with its own answer."""
    p, api = start(proxy_factory, "--replace", "~q ~u /hold:/secret/public/")
    url = "https://localhost:%d/hold/both" % origin.port
    before = len(origin.seen)
    held = subprocess.Popen(["curl", "-sS", "--max-time", "60", "-x", p.url, "--cacert",
                             pki.proxy_ca, "-d", "a secret body", url, "--next", "-x", p.url,
                             "--cacert", pki.proxy_ca, "https://localhost:%d/after" % origin.port],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    fid = api.wait_waiting("/hold/both")
    assert len(origin.seen) == before, origin.seen[before:]  # nothing went up while held
    status, j = api.call("/api/flows/%d/resume" % fid, b"")
    assert status == 200, j
    out = finish(held)
    first, _, second = out.partition(b"}")
    got = json.loads(first + b"}")
    assert got["method"] == "POST" and got["path"] == "/hold/both", got
    assert got["body"] == "a secret body" and got["len"] == 13, got
    assert json.loads(second)["path"] == "/after", second
    paths = [r["path"] for r in origin.seen[before:]]
    assert paths == ["/hold/both", "/after"], paths


def test_event_stream_says_a_flow_waits(proxy_factory, pki, origin):
    import http.client

    p, api = start(proxy_factory)
    c = http.client.HTTPConnection("127.0.0.1", api.port, timeout=20)
    c.request("GET", "/api/events?token=" + api.token, headers={"Host": "127.0.0.1:%d" % api.port})
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/event-stream")
    held = curl_bg(p, pki, "https://localhost:%d/hold/sse" % origin.port)
    event = None
    while True:  # bounded by the connection's timeout
        line = r.fp.readline().decode()
        assert line, "the stream ended"
        if line.startswith("event: "):
            event = line[7:].strip()
        elif line.startswith("data: ") and event == "intercepts":
            waiting = json.loads(line[6:])
            if waiting:
                break
    assert waiting[0]["side"] == "request" and waiting[0]["origin"] == \
        "https://localhost:%d" % origin.port, waiting
    assert api.call("/api/flows/%d/resume" % waiting[0]["id"], b"")[0] == 200
    # ... and again once it no longer waits.
    while True:
        line = r.fp.readline().decode()
        assert line, "the stream ended"
        if line.startswith("event: "):
            event = line[7:].strip()
        elif line.startswith("data: ") and event == "intercepts" and json.loads(line[6:]) == []:
            break
    c.close()
    assert json.loads(finish(held))["path"] == "/hold/sse"


def test_kill_answers_502_and_sends_nothing(proxy_factory, pki, origin):
    p, api = start(proxy_factory)
    url = "https://localhost:%d/hold/kill-me" % origin.port
    held = curl_bg(p, pki, url, "-w", "\n%{http_code}")
    fid = api.wait_waiting("/hold/kill-me")
    status, j = api.call("/api/flows/%d/kill" % fid, b"")
    assert status == 200 and j["ok"], j
    out = finish(held).decode()
    assert out.endswith("\n502"), out
    assert "tlspeek: the request was killed in the flow browser (--intercept); it was not sent " \
           "upstream" in out, out
    assert origin.find("/hold/kill-me") == []
    wait_stderr(p, "\u2716 killed: GET %s after " % url)
    p.wait_stdout("\u21b3 intercepted: killed in the flow browser after ")
    assert api.waiting() == []


def test_timeout_kills_by_default(proxy_factory, pki, origin):
    p, api = start(proxy_factory, "--intercept-timeout", "1")
    held = curl_bg(p, pki, "https://localhost:%d/hold/late" % origin.port, "-w", "\n%{http_code}")
    out = finish(held).decode()
    assert out.endswith("\n502") and "killed by --intercept-timeout" in out, out
    assert origin.find("/hold/late") == []
    p.wait_stdout("\u21b3 intercepted: killed by --intercept-timeout after ")


def test_timeout_can_resume(proxy_factory, pki, origin):
    p, api = start(proxy_factory, "--intercept-timeout", "1s:resume")
    held = curl_bg(p, pki, "https://localhost:%d/hold/later" % origin.port, "-d", "kept")
    got = json.loads(finish(held))
    assert got["path"] == "/hold/later" and got["body"] == "kept", got
    p.wait_stdout("\u21b3 intercepted: resumed by --intercept-timeout after ")
    wait_stderr(p, "(--intercept-timeout)")


def test_plain_http_and_the_next_request_on_the_connection(proxy_factory, pki, origin):
    """Explicit plain http:// (absolute-form): the held request and, on the same
    keep-alive connection, the next one, which waits until the first is decided."""
    import http.server as hs

    seen = []

    class H(hs.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a):
            pass

    srv = hs.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        p, api = start(proxy_factory)
        base = "http://127.0.0.1:%d" % srv.server_address[1]
        # One curl, two URLs (/hold/first, then /after): the second goes on the
        # same connection once the first is answered.
        both = subprocess.Popen(["curl", "-sS", "--max-time", "60", "-x", p.url, base + "/hold/first",
                                 base + "/after"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=clean_env())
        fid = api.wait_waiting("/hold/first")
        assert seen == [] and both.poll() is None
        status, j = api.call("/api/flows/%d/resume" % fid,
                             {"url": base + "/hold/changed"})
        assert status == 200, j
        assert finish(both) == b"okok"
        assert seen == ["/hold/changed", "/after"], seen
    finally:
        srv.shutdown()
        srv.server_close()


def test_client_that_left_before_the_decision(proxy_factory, pki, origin):
    """A client's EOF does not end a held flow (after a half-close it could still
    read the answer); decided after the client is gone, it is sent on and
    tlspeek goes on serving."""
    p, api = start(proxy_factory)
    held = curl_bg(p, pki, "https://localhost:%d/hold/gone" % origin.port)
    fid = api.wait_waiting("/hold/gone")
    held.kill()
    held.wait()
    status, j = api.call("/api/flows/%d/resume" % fid, {"body": "late"})
    assert status == 200, j
    deadline = time.time() + 15
    while not origin.find("/hold/gone"):
        assert time.time() < deadline, origin.paths()
        time.sleep(0.05)
    assert origin.find("/hold/gone")[0]["body"] == "late"
    assert api.waiting() == []
    again = curl_bg(p, pki, "https://localhost:%d/after-gone" % origin.port)
    assert json.loads(finish(again))["path"] == "/after-gone"


def test_large_body_waits_in_the_socket_and_goes_on_whole(proxy_factory, pki, origin, tmp_path):
    """A body over the 1 MiB that tlspeek holds is not read further until the
    decision; resumed unchanged, the upstream gets all of it."""
    big = bytes(range(256)) * (3 * 4096)  # 3 MiB
    path = tmp_path / "big.bin"
    path.write_bytes(big)
    p, api = start(proxy_factory)
    held = curl_bg(p, pki, "https://localhost:%d/hold/big" % origin.port, "--data-binary",
                   "@" + str(path), "-H", "Expect:")
    fid = api.wait_waiting("/hold/big")
    deadline = time.time() + 15
    while api.call("/api/flows/%d/intercept" % fid)[1]["body_state"] != "too_large":
        assert time.time() < deadline, api.call("/api/flows/%d/intercept" % fid)
        time.sleep(0.05)
    assert api.call("/api/flows/%d/resume" % fid, b"")[0] == 200
    got = json.loads(finish(held))
    assert got["len"] == len(big) and got["sha256"] == hashlib.sha256(big).hexdigest()
    h = {k.lower(): v for k, v in got["headers"]}
    assert h["content-length"] == str(len(big)), h


def test_chunked_response_replaced(proxy_factory, pki, https_upstream):
    p = proxy_factory("--web", "127.0.0.1:%d" % free_port(), "--intercept", "~s & ~u /chunked")
    api = Api(p)
    held = curl_bg(p, pki, "https://localhost:%d/chunked/5000" % https_upstream.port, "-i")
    fid = api.wait_waiting("/chunked/5000")
    deadline = time.time() + 15
    while api.call("/api/flows/%d/intercept" % fid)[1]["body_state"] == "pending":
        assert time.time() < deadline
        time.sleep(0.05)
    status, m = api.call("/api/flows/%d/intercept" % fid)
    assert m["body_state"] == "chunked" and m["body"] is None, m
    assert api.call("/api/flows/%d/resume" % fid, {"body": "short"})[0] == 200
    out = finish(held).decode()
    head, _, body = out.rpartition("\r\n\r\n")
    assert body == "short", out
    assert "Content-Length: 5" in head and "chunked" not in head.lower(), head
    assert "Trailer:" not in head, head  # it described the old body


def test_pipelined_request_waits_behind_the_held_one(proxy_factory, pki):
    """Two requests in one write on one connection: the second is not sent
    upstream before the first is decided, and the answers keep their order."""
    import http.server as hs
    import socket

    seen = []

    class H(hs.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            seen.append(self.path)
            body = self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = hs.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        p, api = start(proxy_factory)
        base = "http://127.0.0.1:%d" % srv.server_address[1]
        c = socket.create_connection(("127.0.0.1", p.port), timeout=30)
        c.sendall(("GET %s/hold/p1 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET %s/p2 HTTP/1.1\r\nHost: x\r\n\r\n" % (base, base)).encode())
        fid = api.wait_waiting("/hold/p1")
        assert seen == [], seen
        assert api.call("/api/flows/%d/resume" % fid, b"")[0] == 200
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"/p2"):
            chunk = c.recv(65536)
            assert chunk, data
            data += chunk
        c.close()
        assert seen == ["/hold/p1", "/p2"], seen
        assert data.index(b"/hold/p1") < data.index(b"\r\n\r\n/p2"), data
    finally:
        srv.shutdown()
        srv.server_close()


def test_bad_input_gets_a_clear_400(proxy_factory, pki, origin):
    p, api = start(proxy_factory)
    held = curl_bg(p, pki, "https://localhost:%d/hold/bad" % origin.port, "-w", "\n%{http_code}")
    try:
        fid = api.wait_waiting("/hold/bad")
        path = "/api/flows/%d/resume" % fid
        cases = [
            (b"{not json", 400, "the body must be a JSON object"),
            (b"[1,2]", 400, "the body must be a JSON object"),
            ({"methd": "GET"}, 400, 'unknown field "methd"'),
            ({"method": "GE T"}, 400, "method:"),
            ({"method": 7}, 400, "method:"),
            ({"url": "ftp://x/"}, 400, "url: give an absolute http:// or https:// URL"),
            ({"url": "https://elsewhere.example/x"}, 400, "url: keep the origin https://localhost:"),
            ({"headers": {"a": "b"}}, 400, "headers: give an array"),
            ({"headers": [["X-A"]]}, 400, "headers[0]: give [\"Name\",\"value\"]"),
            ({"headers": [["Bad Name", "v"]]}, 400, "headers[0]: bad name"),
            ({"headers": [["X-A", "a\r\nInjected: 1"]]}, 400, "line break or control byte"),
            ({"body": 12}, 400, "body: give a string"),
        ]
        for data, want_status, want in cases:
            status, j = api.call(path, data)
            assert status == want_status and want in j["error"], (data, status, j)
        assert api.call("/api/flows/%d/resume" % fid, method="GET")[0] == 405
        assert api.call(path, {}, token=False)[0] == 403
        assert api.call("/api/flows/999999/resume", {})[0] == 404
        # Still waiting after all that, and a good decision still works.
        assert [w["id"] for w in api.waiting()] == [fid]
        status, j = api.call("/api/flows/%d/kill" % fid, b"")
        assert status == 200, j
        assert finish(held).endswith(b"\n502")
    finally:
        if held.poll() is None:
            held.kill()


def test_refused_at_start(pki):
    cases = [
        (["--intercept", "~u /x"], "--intercept needs --web"),
        (["--web", "0", "--intercept", "~u ("], "bad expression in --intercept"),
        (["--web", "0", "--intercept", "~u /x", "--intercept-timeout", "soon"],
         "bad --intercept-timeout 'soon'"),
        (["--web", "0", "--intercept", "~u /x", "--intercept-timeout", "5m:maybe"],
         "bad --intercept-timeout '5m:maybe'"),
    ]
    for args, want in cases:
        r = run(["--ca-dir", pki.proxy_ca_dir, "-l", "127.0.0.1:%d" % free_port()] + args)
        assert r.returncode == 2 and want in r.stderr.decode(), (args, r.stderr)


def test_response_held_edited_and_killed(proxy_factory, pki, origin):
    """A rule with ~s holds the response: the upstream has answered, the
    client gets what the page decides (status, headers, body), or a 502."""
    p = proxy_factory("--web", "127.0.0.1:%d" % free_port(), "--intercept", "~s & ~u /resp")
    api = Api(p)
    url = "https://localhost:%d/resp/one" % origin.port
    held = curl_bg(p, pki, url, "-i")
    try:
        fid = api.wait_waiting("/resp/one")
        assert [w["side"] for w in api.waiting()] == ["response"]
        assert len(origin.find("/resp/one")) == 1 and held.poll() is None
        wait_stderr(p, "\u23f8 intercepted: response 200 to GET %s waiting in the flow browser" % url)
        status, m = api.call("/api/flows/%d/intercept" % fid)
        assert status == 200 and m["side"] == "response" and m["status"] == 200, m
        assert json.loads(m["body"])["path"] == "/resp/one", m
        # A response has no method or URL to edit.
        status, j = api.call("/api/flows/%d/resume" % fid, {"method": "PUT"})
        assert status == 400 and "waits with its response" in j["error"], j
        headers = [[n, "text/plain" if n.lower() == "content-type" else v] for n, v in m["headers"]]
        status, j = api.call("/api/flows/%d/resume" % fid, {
            "status": 201, "headers": headers + [["X-Edited", "1"]], "body": "changed"})
        assert status == 200, j
        out = finish(held).decode()
    finally:
        if held.poll() is None:
            held.kill()
    head, _, body = out.rpartition("\r\n\r\n")
    assert "\r\nHTTP/1.1 201 Created\r\n" in "\r\n" + head + "\r\n", out
    assert "X-Edited: 1" in head and "Content-Type: text/plain" in head, out
    assert "Content-Length: 7" in head and body == "changed", out
    p.wait_stdout("\u21b3 intercepted: response edited in the flow browser (status, 2 headers, body)"
                  " after ")
    # The next one is killed: the client gets tlspeek's 502, not the answer.
    held = curl_bg(p, pki, "https://localhost:%d/resp/two" % origin.port, "-w", "\n%{http_code}")
    fid = api.wait_waiting("/resp/two")
    assert api.call("/api/flows/%d/kill" % fid, b"")[0] == 200
    out = finish(held).decode()
    assert out.endswith("\n502") and "the response was killed in the flow browser" in out, out
    assert len(origin.find("/resp/two")) == 1
    p.wait_stdout("\u21b3 intercepted: response killed in the flow browser after ")


# ---- the page, in headless Chromium -------------------------------------------------


def test_edit_and_resume_in_the_page(proxy_factory, pki, origin, tmp_path_factory):
    """The issue's Done-when: an intercepted request is edited in the page (a
    header and the body) and resumed; the upstream sees the edit."""
    chromium = require_program("chromium")
    shots = os.environ.get("TLSPEEK_SCREENSHOTS") or str(tmp_path_factory.mktemp("screens"))
    p, api = start(proxy_factory)
    with Browser(chromium, width=1280, height=900, env=clean_env()) as b:
        page = b.new_page()
        page.goto(api.url)
        page.wait_for("document.getElementById('live').classList.contains('on')",
                      "the page did not connect to the event stream")
        url = "https://localhost:%d/hold/page?q=1" % origin.port
        held = curl_bg(p, pki, url, "-H", "X-Mood: calm", "-H", "Content-Type: application/json",
                       "--data-binary", '{"answer":41}')
        try:
            page.wait_for("document.querySelector('#viewport .row.waiting') !== null",
                          "no waiting row in the list")
            page.wait_for("!document.getElementById('waiting').hidden && "
                          "document.getElementById('waiting').textContent.includes('1 waiting')",
                          "the header does not say that a flow waits")
            page.click("#viewport .row.waiting")
            page.wait_for("!document.getElementById('icpt-box').hidden && "
                          "document.getElementById('icpt-body').value === '{\"answer\":41}'",
                          lambda: "the intercept editor did not open with the request's body: %r" % page.eval("[document.getElementById('icpt-box').hidden, document.getElementById('icpt-body').value, document.getElementById('icpt-headers').value, document.getElementById('detail-title').textContent]"))
            page.wait_for("/^waiting \\d+ s$/.test(document.getElementById('icpt-waited')"
                          ".textContent)", "the editor does not say how long the flow waits")
            headers = page.eval("document.getElementById('icpt-headers').value")
            assert "X-Mood: calm" in headers, headers
            page.type_into("#icpt-headers", headers.replace("X-Mood: calm", "X-Mood: edited"),
                           submit=False)
            page.type_into("#icpt-body", '{"answer":42}', submit=False)
            page.screenshot(os.path.join(shots, "intercept.png"))
            assert origin.find("/hold/page") == []
            page.click("#icpt-resume")
            got = json.loads(finish(held))
        finally:
            if held.poll() is None:
                held.kill()
        page.wait_for("document.getElementById('icpt-box').hidden && "
                      "document.getElementById('waiting').hidden",
                      "the editor and the waiting count did not go away after Resume")
        problems = [x for x in page.problems() if "favicon.ico" not in x]
        assert not problems, problems
    h = {k.lower(): v for k, v in got["headers"]}
    assert h["x-mood"] == "edited" and got["body"] == '{"answer":42}', got
    assert h["content-length"] == "13" and got["method"] == "POST", got
    p.wait_stdout("\u21b3 intercepted: edited in the flow browser (1 header, body) after ")
