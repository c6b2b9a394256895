"""The flow browser's server (--web, tlspeek web FILE): its API against real
clients (curl through the proxy, python http.client for the page's side) and
real local servers. README.md "Flow browser" and proxy/web/README.md say what
each route promises."""
import gzip
import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, TcpServer, clean_env, curl, free_port, require_program

TOKEN_RE = re.compile(r"tlspeek: web: http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]{32})\n")


class Web:
    """The page's side: requests to the web server of a running tlspeek."""

    def __init__(self, stderr_fn, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = TOKEN_RE.search(stderr_fn())
            if m:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no start line:\n" + stderr_fn())
        self.port, self.token = int(m.group(1)), m.group(2)
        self.host = "127.0.0.1:%d" % self.port

    def request(self, method, path, body=None, headers=None, token=True):
        h = {"Host": self.host}
        h.update(headers or {})
        if token is True:
            path += ("&" if "?" in path else "?") + "token=" + self.token
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def json(self, path, method="GET", body=None, status=200):
        r, data = self.request(method, path, body)
        assert r.status == status, (r.status, data[:500])
        return json.loads(data)

    def flows(self, query=""):
        return self.json("/api/flows" + query)["flows"]

    def wait_flows(self, pred, query="", timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            flows = self.flows(query)
            if pred(flows):
                return flows
            time.sleep(0.05)
        raise AssertionError("flows never matched: %r" % self.flows(query))


def start(proxy_factory, *args):
    p = proxy_factory("-q", "--web", "127.0.0.1:%d" % free_port(), *args)
    return p, Web(p.stderr)


def via(p, pki, url, *args):
    r = curl("-x", p.url, "--cacert", pki.proxy_ca, "-o", "/dev/null", "-w", "%{http_code}",
             *args, url)
    assert r.returncode == 0, r.stderr
    return r


# ---- security ---------------------------------------------------------------------


def test_token_host_and_headers(proxy_factory):
    p, web = start(proxy_factory)
    r, body = web.request("GET", "/api/info", token=False)
    assert r.status == 403 and json.loads(body) == {"error": "missing or wrong token"}
    r, body = web.request("GET", "/api/info?token=" + "0" * 32, token=False)
    assert r.status == 403
    r, body = web.request("GET", "/api/info", token=False,
                          headers={"X-Tlspeek-Token": web.token})
    assert r.status == 200 and json.loads(body)["mode"] == "live"
    info = web.json("/api/info")
    assert info["proxy"] == "127.0.0.1:%d" % p.port and info["max_flows"] == 10000
    # DNS rebinding: a page of another origin that resolved to 127.0.0.1.
    r, body = web.request("GET", "/api/info", headers={"Host": "evil.example:%d" % web.port})
    assert r.status == 403 and json.loads(body) == {"error": "Host not allowed"}
    r, body = web.request("GET", "/", token=False, headers={"Host": "localhost:%d" % web.port})
    assert r.status == 200 and b"<html" in body.lower()
    csp = r.getheader("Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert r.getheader("X-Content-Type-Options") == "nosniff"
    assert r.getheader("X-Frame-Options") == "DENY"
    r, _ = web.request("DELETE", "/api/info")
    assert r.status == 405
    # No Host at all (HTTP/1.0): 400.
    with socket.create_connection(("127.0.0.1", web.port)) as s:
        s.sendall(b"GET /api/info?token=%s HTTP/1.0\r\n\r\n" % web.token.encode())
        assert s.recv(100).startswith(b"HTTP/1.1 400")


def info_once_free(web):
    """/api/info once the server has seen the closes of connections the test
    just closed (they arrive asynchronously: until then a new connection may
    still be one too many and get 503)."""
    deadline = time.time() + 10
    r, body = web.request("GET", "/api/info")
    while r.status == 503 and time.time() < deadline:
        time.sleep(0.1)
        r, body = web.request("GET", "/api/info")
    assert r.status == 200, (r.status, body[:200])
    return json.loads(body)


def test_limits(proxy_factory):
    p, web = start(proxy_factory)
    r, body = web.request("POST", "/api/filter", body=b"x" * (2 << 20))
    assert r.status == 413
    r, body = web.request("GET", "/api/info", headers={"X-Long": "a" * 20000})
    assert r.status == 431
    socks = [socket.create_connection(("127.0.0.1", web.port)) for _ in range(32)]
    try:
        extra = socket.create_connection(("127.0.0.1", web.port))
        extra.settimeout(10)
        assert extra.recv(100).startswith(b"HTTP/1.1 503")
        extra.close()
    finally:
        for s in socks:
            s.close()
    assert info_once_free(web)["count"] == 0  # still serving


def test_idle_connections_are_closed(proxy_factory):
    """A connection that sends no complete request within 10 s is closed, so
    processes without the token cannot keep every slot; an event stream
    cannot be opened without it."""
    p, web = start(proxy_factory)
    r, body = web.request("GET", "/api/events", token=False)
    assert r.status == 403 and json.loads(body) == {"error": "missing or wrong token"}
    assert r.getheader("Content-Type") != "text/event-stream"
    stream = Events(web)  # with the token: a stream, never cut for idling
    socks = [socket.create_connection(("127.0.0.1", web.port)) for _ in range(31)]
    socks[0].sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1")  # never finished
    try:
        extra = socket.create_connection(("127.0.0.1", web.port))
        extra.settimeout(10)
        assert extra.recv(100).startswith(b"HTTP/1.1 503"), "the 32 slots were not all taken"
        extra.close()
        for s in socks:  # the server closes each, without an answer
            s.settimeout(60)
            assert s.recv(100) == b"", "an idle connection got an answer instead of a close"
    finally:
        for s in socks:
            s.close()
    assert info_once_free(web)["count"] == 0  # the slots are free again
    # the stream, older than the deadline, still gets events
    web.json("/api/clear", method="POST")
    deadline = time.time() + 20
    while ("clear", {}) not in stream.events and time.time() < deadline:
        time.sleep(0.05)
    assert ("clear", {}) in stream.events, "the event stream was cut: %r" % stream.events


# ---- the live list -----------------------------------------------------------------


class Events:
    """An event stream read on a thread: (event, data) pairs as they come."""

    def __init__(self, web, query=""):
        self.events = []
        self.conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
        self.conn.request("GET", "/api/events?token=%s%s" % (web.token, query),
                          headers={"Host": web.host})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        assert self.resp.getheader("Content-Type") == "text/event-stream"
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        ev, data = None, []
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    ev = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and ev:
                    self.events.append((ev, json.loads("\n".join(data))))
                    ev, data = None, []
        except Exception:
            pass

    def wait(self, pred, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for ev, data in list(self.events):
                if ev == "flows":
                    for f in data:
                        if pred(f):
                            return f
            time.sleep(0.02)
        raise AssertionError("no such event: %r" % self.events)


def test_sse_pending_then_done(proxy_factory, http_upstream):
    p, web = start(proxy_factory)
    ev = Events(web)
    url = "http://127.0.0.1:%d/slow/3000" % http_upstream.port
    client = subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-x", p.url, url],
                              env=clean_env())
    pending = ev.wait(lambda f: f["path"] == "/slow/3000" and f["state"] == "pending")
    # The upstream is still sleeping: the client has no response yet.
    assert client.poll() is None
    assert pending["status"] is None and pending["method"] == "GET"
    assert pending["url"] == url and pending["proto"] == "HTTP/1.1"
    done = ev.wait(lambda f: f["id"] == pending["id"] and f["state"] == "done")
    assert client.wait(timeout=30) == 0
    text = urlopen_text(http_upstream.port)
    assert done["status"] == 200 and done["type"] == "text/plain"
    assert done["size"] == len(text) and done["wire"] > len(text)
    assert done["duration"] > 0 and done["seq"] > pending["seq"]


def urlopen_text(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/text")
    data = c.getresponse().read()
    c.close()
    return data


def test_detail_decoded_body_and_both_handshakes(proxy_factory, pki, https_upstream):
    p, web = start(proxy_factory)
    url = "https://localhost:%d/gzip" % https_upstream.port
    via(p, pki, url)
    (f,) = web.wait_flows(lambda fl: fl and fl[0]["state"] == "done")
    d = web.json("/api/flows/%d" % f["id"])
    assert d["summary"]["tls"] in ("TLSv1.3", "TLSv1.2")
    resp = d["record"]["response"]
    assert resp["bodyEncoding"] == "utf8" and resp["decodeError"] is None
    r, decoded = web.request("GET", "/api/flows/%d/body/response" % f["id"])
    assert r.status == 200 and r.getheader("Content-Type") == "application/octet-stream"
    r, raw = web.request("GET", "/api/flows/%d/body/response?raw=1&download=1" % f["id"])
    assert gzip.decompress(raw) == decoded and raw != decoded
    assert resp["body"].encode() == decoded
    assert 'filename="flow-%d-response.bin"' % f["id"] in r.getheader("Content-Disposition")
    legs = d["conn"]["legs"]
    client_types = [m["type"] for m in legs["client"]["handshake"]]
    up_types = [m["type"] for m in legs["upstream"]["handshake"]]
    assert client_types[0] == "ClientHello" and "ServerHello" in client_types
    assert up_types[0] == "ClientHello" and "Certificate" in up_types
    hello = legs["client"]["handshake"][0]
    assert hello["step"] == 1 and hello["dir"] == "in" and "SNI" in hello["summary"]
    assert hello["explain"] and "client" in hello["explain"]
    assert legs["upstream"]["handshake"][0]["dir"] == "out"
    assert legs["upstream"]["certs"][0]["san"] and len(legs["upstream"]["certs"][0]["sha256"]) == 64
    assert "localhost" in " ".join(legs["client"]["certs"][0]["san"])
    assert re.fullmatch(r"[0-9a-f]{32}", d["conn"]["ja3"]) and d["conn"]["ja4"]
    assert re.fullmatch(r"[0-9a-f]{32}", d["conn"]["ja3s"])
    kinds = {(w["leg"], w["kind"]) for w in d["conn"]["wire"]}
    assert ("client", "Handshake") in kinds and ("upstream", "ApplicationData") in kinds
    assert any(w["plain"] and "GET /gzip" in w["plain"] for w in d["conn"]["wire"]
               if w["leg"] == "upstream")
    # One entry per TLS record: its header is its kind and its length.
    names = {20: "ChangeCipherSpec", 21: "Alert", 22: "Handshake", 23: "ApplicationData"}
    for w in d["conn"]["wire"]:
        head = bytes.fromhex(w["hex"])
        if head.startswith(b"CONNECT ") or head.startswith(b"HTTP/1.1 200"):
            assert w["kind"] == "plain" and w["leg"] == "client", w  # before TLS
            continue
        assert len(head) >= 5 and w["kind"] == names[head[0]], w
        assert w["len"] == 5 + int.from_bytes(head[3:5], "big"), w
        assert len(head) == min(64, w["len"]), w
    ccs = [w for w in d["conn"]["wire"] if w["kind"] == "ChangeCipherSpec"]
    assert ccs and all(w["len"] == 6 and w["plain"] is None for w in ccs), ccs
    # the client's request: the received ApplicationData record that carried it
    assert any(w["plain"] and "GET /gzip" in w["plain"] and w["kind"] == "ApplicationData"
               for w in d["conn"]["wire"] if w["leg"] == "client" and w["dir"] == "in")


def test_filter_errors_and_narrowing(proxy_factory, http_upstream):
    p, web = start(proxy_factory)
    base = "http://127.0.0.1:%d" % http_upstream.port
    for path in ("/text", "/json"):
        assert curl("-x", p.url, "-o", "/dev/null", base + path).returncode == 0
    web.wait_flows(lambda fl: len(fl) == 2 and all(f["state"] == "done" for f in fl))
    only = web.flows("?filter=" + "~u%20json")
    assert [f["path"] for f in only] == ["/json"]
    r, body = web.request("GET", "/api/flows?filter=" + "~m%20GET%20~d")
    err = json.loads(body)
    assert r.status == 400 and err["pos"] == 7 and "~d" in err["error"]
    r, body = web.request("GET", "/api/events?filter=" + "(~m%20GET")
    assert r.status == 400 and json.loads(body)["pos"] >= 0
    assert web.json("/api/filter", "POST", b"~q & ~c 200") == {"ok": True}
    bad = web.json("/api/filter", "POST", b"~c 200 &")
    assert bad["ok"] is False and bad["pos"] == 8


def test_curl_command_reproduces_the_request(proxy_factory, pki, tmp_path):
    rec = Recorder()
    p, web = start(proxy_factory)
    marker = tmp_path / "pwned"
    hostile = "x'; touch %s; echo '$(touch %s)" % (marker, marker)
    url = "http://127.0.0.1:%d/submit?q=1" % rec.port
    r = curl("-x", p.url, "-X", "PUT", "-H", "X-Evil: " + hostile, "-H", "Content-Type: text/plain",
             "--data-binary", "body with 'quotes' and $HOME", url)
    assert r.returncode == 0, r.stderr
    (f,) = web.wait_flows(lambda fl: fl and fl[0]["state"] == "done")
    out = web.json("/api/flows/%d/curl" % f["id"])
    assert out["complete"] is True and "--cacert" in out["command"]
    rc = subprocess.run(out["command"] + " -sS -o /dev/null", shell=True, env=clean_env(),
                        timeout=30)
    assert rc.returncode == 0
    assert not marker.exists()
    first, second = rec.requests
    assert first == second
    assert first[0] == "PUT /submit?q=1" and first[2] == b"body with 'quotes' and $HOME"
    assert ("x-evil", hostile) in first[1]


class Recorder(TcpServer):
    """Records each request's line, headers (lower-cased names, sorted, hop-by-hop
    left out) and body; answers 200."""

    def __init__(self):
        self.requests = []
        super().__init__()

    def handle(self, conn):
        f = conn.makefile("rb")
        line = f.readline().decode().rstrip("\r\n")
        headers = []
        while True:
            h = f.readline().decode().rstrip("\r\n")
            if not h:
                break
            name, value = h.split(":", 1)
            headers.append((name.strip().lower(), value.strip()))
        n = int(dict(headers).get("content-length", "0"))
        body = f.read(n)
        skip = {"connection", "proxy-connection", "keep-alive"}
        self.requests.append((line.rsplit(" ", 1)[0], sorted(h for h in headers
                                                              if h[0] not in skip), body))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()


def test_har_download(proxy_factory, http_upstream):
    p, web = start(proxy_factory)
    base = "http://127.0.0.1:%d" % http_upstream.port
    for path in ("/text", "/json", "/png"):
        assert curl("-x", p.url, "-o", "/dev/null", base + path).returncode == 0
    flows = web.wait_flows(lambda fl: len(fl) == 3 and all(f["state"] == "done" for f in fl))
    r, body = web.request("GET", "/api/har")
    assert r.status == 200 and "tlspeek.har" in r.getheader("Content-Disposition")
    har = json.loads(body)
    assert har["log"]["version"] == "1.2"
    assert [e["request"]["url"] for e in har["log"]["entries"]] == [f["url"] for f in flows]
    sub = json.loads(web.request("GET", "/api/har?ids=%d,%d" % (flows[0]["id"],
                                                               flows[2]["id"]))[1])
    assert [e["request"]["url"] for e in sub["log"]["entries"]] == [base + "/text", base + "/png"]


def test_resend_makes_a_new_flow(proxy_factory, pki, https_upstream):
    p, web = start(proxy_factory)
    url = "https://localhost:%d/headers" % https_upstream.port
    via(p, pki, url, "-H", "X-Orig: 1")
    (f,) = web.wait_flows(lambda fl: fl and fl[0]["state"] == "done")
    assert web.json("/api/resend", "POST", json.dumps({"id": f["id"]}).encode()) == {"ok": True}
    edit = {"id": f["id"], "headers": [["X-Edited", "yes"]]}
    assert web.json("/api/resend", "POST", json.dumps(edit).encode()) == {"ok": True}
    flows = web.wait_flows(lambda fl: len(fl) == 3 and all(x["state"] == "done" for x in fl))
    assert [x["url"] for x in flows] == [url] * 3
    seen = [web.request("GET", "/api/flows/%d/body/response" % x["id"])[1] for x in flows]
    assert b"X-Orig: 1" in seen[1] and b"X-Edited: yes" in seen[2] and b"X-Orig" not in seen[2]
    bad = web.json("/api/resend", "POST", b'{"id": 999}')
    assert bad["ok"] is False and "999" in bad["error"]


def test_memory_bound(proxy_factory, http_upstream):
    p, web = start(proxy_factory, "--web-flows", "5")
    base = "http://127.0.0.1:%d" % http_upstream.port
    for i in range(8):
        assert curl("-x", p.url, "-o", "/dev/null", base + "/text?n=%d" % i).returncode == 0
    flows = web.wait_flows(lambda fl: len(fl) == 5 and fl[-1]["path"] == "/text?n=7"
                           and fl[-1]["state"] == "done")
    assert [f["path"] for f in flows] == ["/text?n=%d" % i for i in range(3, 8)]
    info = web.json("/api/info")
    assert info["count"] == 5 and info["dropped"] == 3 and info["max_flows"] == 5
    assert web.json("/api/flows")["dropped"] == 3
    r, body = web.request("GET", "/api/flows/1")
    assert r.status == 404 and "dropped" in json.loads(body)["error"]
    assert web.json("/api/clear", "POST") == {"ok": True}
    assert web.flows() == []


# ---- file mode --------------------------------------------------------------------------


class FileWeb:
    def __init__(self, path):
        self.err_path = path + ".stderr"
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([BIN, "web", "--web", "127.0.0.1:%d" % free_port(), path],
                                     stderr=self.err, stdout=subprocess.DEVNULL)
        self.web = Web(self.stderr)

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=15)
        self.err.close()
        return rc


def test_file_mode_reads_what_tlspeek_wrote(proxy_factory, pki, https_upstream, tmp_path):
    har, jsonl = str(tmp_path / "t.har"), str(tmp_path / "t.jsonl")
    p = proxy_factory("-q", "--har", har, "--jsonl", jsonl)
    urls = ["https://localhost:%d/%s" % (https_upstream.port, x) for x in ("text", "gzip", "json")]
    for u in urls:
        via(p, pki, u)
    assert p.stop() == 0
    for path in (har, jsonl):
        fw = FileWeb(path)
        try:
            info = fw.web.json("/api/info")
            assert info["mode"] == "file" and info["file"] == path and info["proxy"] is None
            flows = fw.web.flows()
            assert sorted(f["url"] for f in flows) == sorted(urls)
            assert all(f["state"] == "done" and f["status"] == 200 for f in flows)
            g = [f for f in flows if f["path"] == "/gzip"][0]
            d = fw.web.json("/api/flows/%d" % g["id"])
            text = urlopen_tls_text(pki, https_upstream.port)
            assert d["record"]["response"]["body"].encode() == text and g["size"] == len(text)
            body = fw.web.request("GET", "/api/flows/%d/body/response" % g["id"])[1]
            assert body == text
            res = fw.web.json("/api/resend", "POST", json.dumps({"id": g["id"]}).encode())
            assert res["ok"] is False
        finally:
            assert fw.stop() == 0


def urlopen_tls_text(pki, port):
    import ssl
    ctx = ssl.create_default_context(cafile=pki.upstream_ca)
    c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    c.request("GET", "/text")
    data = c.getresponse().read()
    c.close()
    return data


@pytest.mark.parametrize("name,content,where", [
    ("bad.har", '{"log": {"entries": [{"request": 5}]}}', "log.entries[0].request"),
    ("bad.jsonl", '{"id": 1, "url": "http://a/", "method": "GET"}\nnot json\n', "line"),
])
def test_file_mode_refuses_a_malformed_file(tmp_path, name, content, where):
    path = tmp_path / name
    path.write_text(content)
    r = subprocess.run([BIN, "web", "--web", "127.0.0.1:%d" % free_port(), str(path)],
                       capture_output=True, timeout=30)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert err.startswith("tlspeek: error: %s: " % path) and where in err
    assert "tlspeek: web:" not in err


def test_web_option_in_help_and_bad_values():
    r = subprocess.run([BIN, "--help"], capture_output=True, timeout=30)
    assert b"--web [HOST:]PORT" in r.stdout and b"--web-flows N" in r.stdout
    for bad in (["--web", "nonsense"], ["--web", "example.com:8081"], ["--web-flows", "0"]):
        r = subprocess.run([BIN] + bad, capture_output=True, timeout=30)
        assert r.returncode == 2, (bad, r.stderr)
        assert r.stderr.startswith(b"tlspeek: error: ")
    r = subprocess.run([BIN, "web"], capture_output=True, timeout=30)
    assert r.returncode == 2 and b"tlspeek web needs a file" in r.stderr
