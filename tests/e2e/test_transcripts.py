"""End-to-end tests for tlspeek's transcripts: HAR 1.2 (--har), JSON lines
(--jsonl), PCAP (--pcap), the NSS key log (--keylog / SSLKEYLOGFILE) and
--body-cap, with real clients (curl, Python's http.client) through a real
tlspeek to the local origin servers of upstream_server.py, all on 127.0.0.1.

Clients trust tlspeek only through the exported proxy CA; tlspeek trusts the
upstream only through --upstream-ca (the Proxy fixture passes it). The PCAP
and key log files are checked with tshark, the HAR against a JSON Schema of
HAR 1.2 written below (python3-jsonschema).

Run from tests/e2e:
  TLSPEEK_BIN=/path/to/tlspeek /usr/bin/python3 -m pytest -q test_transcripts.py
"""
import base64
import copy
import gzip
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import pytest

from conftest import BIN, clean_env, curl, free_port, require_program
from upstream_server import PNG, TEXT, payload

ASAN = os.environ.get("TLSPEEK_ASAN") == "1"

# What upstream_server.py serves at /json (same code, same bytes).
JSON_BODY = json.dumps({"name": "tlspeek", "list": [1, 2, 3], "nested": {"ok": True}}).encode()
# A form with percent-escapes, '+' for space and an empty value.
FORM = "name=J%C3%BCrgen+M%C3%BCller&msg=hello+world%21&empty="


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"tlspeek binary not found at {BIN} (build it or set TLSPEEK_BIN)")


@pytest.fixture(autouse=True)
def _no_inherited_keylog(monkeypatch):
    """SSLKEYLOGFILE from the caller's environment would make tlspeek (and
    curl) log keys somewhere else, and make the key log tests meaningless."""
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)


# ---- HAR 1.2 schema ------------------------------------------------------------
# From the HAR 1.2 spec (http://www.softwareishard.com/blog/har-12-spec/):
# the required fields and the types of every field it defines. Custom fields
# (tlspeek's "_..." extras) are allowed: objects are not closed.

STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
ISO_8601 = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$",
}
SIZE = {"type": "integer", "minimum": -1}  # -1: not available
OPT_TIMING = {"type": "number", "minimum": -1}  # -1: does not apply
TIMING = {"type": "number", "minimum": 0}


def _obj(required, **props):
    return {"type": "object", "required": list(required), "properties": props}


def _arr(item):
    return {"type": "array", "items": item}


_NAME_VALUE = _obj(["name", "value"], name=STR, value=STR, comment=STR)
_COOKIE = _obj(["name", "value"], name=STR, value=STR, path=STR, domain=STR, expires=ISO_8601,
               httpOnly=BOOL, secure=BOOL, comment=STR)
_PARAM = _obj(["name"], name=STR, value=STR, fileName=STR, contentType=STR, comment=STR)
_POST_DATA = _obj(["mimeType"], mimeType=STR, params=_arr(_PARAM), text=STR, comment=STR)
_CONTENT = _obj(["size", "mimeType"], size=INT, compression=INT, mimeType=STR, text=STR,
                encoding=STR, comment=STR)
_CACHE_STATE = {"oneOf": [
    {"type": "null"},
    _obj(["lastAccess", "eTag", "hitCount"], expires=ISO_8601, lastAccess=ISO_8601, eTag=STR,
         hitCount=INT, comment=STR),
]}
_CACHE = _obj([], beforeRequest=_CACHE_STATE, afterRequest=_CACHE_STATE, comment=STR)
_TIMINGS = _obj(["send", "wait", "receive"], blocked=OPT_TIMING, dns=OPT_TIMING,
                connect=OPT_TIMING, send=TIMING, wait=TIMING, receive=TIMING, ssl=OPT_TIMING,
                comment=STR)
_REQUEST = _obj(
    ["method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize", "bodySize"],
    method=STR, url=STR, httpVersion=STR, cookies=_arr(_COOKIE), headers=_arr(_NAME_VALUE),
    queryString=_arr(_NAME_VALUE), postData=_POST_DATA, headersSize=SIZE, bodySize=SIZE,
    comment=STR)
_RESPONSE = _obj(
    ["status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL",
     "headersSize", "bodySize"],
    status=INT, statusText=STR, httpVersion=STR, cookies=_arr(_COOKIE), headers=_arr(_NAME_VALUE),
    content=_CONTENT, redirectURL=STR, headersSize=SIZE, bodySize=SIZE, comment=STR)
_ENTRY = _obj(["startedDateTime", "time", "request", "response", "cache", "timings"],
              pageref=STR, startedDateTime=ISO_8601, time={"type": "number", "minimum": 0},
              request=_REQUEST, response=_RESPONSE, cache=_CACHE, timings=_TIMINGS,
              serverIPAddress=STR, connection=STR, comment=STR)
_CREATOR = _obj(["name", "version"], name=STR, version=STR, comment=STR)
_PAGE = _obj(["startedDateTime", "id", "title", "pageTimings"], startedDateTime=ISO_8601, id=STR,
             title=STR, pageTimings=_obj([], onContentLoad={"type": "number"},
                                         onLoad={"type": "number"}, comment=STR),
             comment=STR)
HAR_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    **_obj(["log"], log=_obj(["version", "creator", "entries"], version=STR, creator=_CREATOR,
                             browser=_CREATOR, pages=_arr(_PAGE), entries=_arr(_ENTRY),
                             comment=STR)),
}


def har_errors(har):
    """Every schema violation as 'path: message' (empty when valid)."""
    jsonschema.Draft7Validator.check_schema(HAR_SCHEMA)
    v = jsonschema.Draft7Validator(HAR_SCHEMA)
    return ["/".join(str(p) for p in e.absolute_path) + ": " + e.message
            for e in sorted(v.iter_errors(har), key=lambda e: list(map(str, e.absolute_path)))]


# ---- helpers -------------------------------------------------------------------

def sha256(data):
    return hashlib.sha256(data).hexdigest()


def wait_for(what, fn, timeout=20.0):
    """Polls fn() until it returns something truthy (transcripts are written
    by a writer thread, moments after a flow ends)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def load_har(path):
    with open(path, "rb") as f:
        return json.load(f)


def try_load_har(path):
    """The HAR, or None while a write is (possibly) in progress."""
    try:
        return load_har(path)
    except (OSError, ValueError):
        return None


def har_with(path, n):
    """Waits until the HAR file parses and holds at least n entries."""
    return wait_for("%d HAR entries in %s" % (n, path),
                    lambda: (lambda h: h if h and len(h["log"]["entries"]) >= n else None)(
                        try_load_har(path)))


def load_jsonl(path):
    """Every line must be a whole JSON object (flushed per flow)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return []
    assert data.endswith(b"\n"), "JSONL does not end with a newline: %r" % data[-200:]
    out = []
    for i, line in enumerate(data.split(b"\n")[:-1]):
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise AssertionError("JSONL line %d does not parse (%s): %r" % (i + 1, e, line[:300]))
    return out


def jsonl_with(path, n):
    def get():
        try:
            lines = load_jsonl(path)
        except (OSError, AssertionError):
            return None  # a line being written
        return lines if len(lines) >= n else None
    return wait_for("%d JSONL lines in %s" % (n, path), get)


def body_bytes(obj):
    """The bytes of a HAR content/postData object ("encoding": "base64" or text)."""
    if obj.get("encoding") == "base64":
        return base64.b64decode(obj["text"], validate=True)
    assert "encoding" not in obj, obj.get("encoding")
    return obj["text"].encode("utf-8")


def jsonl_body(msg):
    if msg["bodyEncoding"] == "base64":
        return base64.b64decode(msg["body"], validate=True)
    assert msg["bodyEncoding"] == "utf8", msg["bodyEncoding"]
    return msg["body"].encode("utf-8")


def header(headers, name):
    vals = [h["value"] for h in headers if h["name"].lower() == name.lower()]
    return vals[0] if vals else None


def curl_sections(proxy, pki, sections, timeout=60):
    """One curl process, one transfer per section (--next), so transfers to
    the same host share a keep-alive connection. A section is a list of curl
    arguments ending with the URL. Returns, per transfer, (status, local
    port) from curl's -w, the port curl's connection used."""
    args = []
    for i, sec in enumerate(sections):
        if i:
            args.append("--next")
        args += ["-sS", "--max-time", str(timeout), "-x", proxy.url, "--cacert", pki.proxy_ca,
                 "-w", "%{http_code} %{local_port}\\n"] + list(sec)
    r = subprocess.run(["curl"] + args, capture_output=True, timeout=timeout + 30, env=clean_env())
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    rows = [ln.split() for ln in r.stdout.decode().splitlines() if ln.strip()]
    assert len(rows) == len(sections), r.stdout
    return [(int(s), int(p)) for s, p in rows]


def tshark(*args, timeout=120):
    r = subprocess.run([require_program("tshark")] + list(args), capture_output=True, timeout=timeout,
                       env=clean_env())
    assert r.returncode == 0, "tshark %s failed: %s" % (" ".join(args), r.stderr.decode())
    return r.stdout.decode("utf-8", "replace")


def field_rows(out):
    return [ln.split("\t") for ln in out.splitlines() if ln.strip()]


def https_client_ctx(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=pki.proxy_ca)  # nothing else
    return ctx


# ---- the schema can fail ---------------------------------------------------------

def test_har_schema_rejects_malformed_entries():
    """The schema is not vacuous: a minimal valid HAR passes, and each
    mutation that breaks a HAR 1.2 rule is caught."""
    nv = [{"name": "Host", "value": "x"}]
    good = {"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": [{
        "startedDateTime": "2024-05-01T12:00:00.123Z", "time": 1.5,
        "request": {"method": "GET", "url": "http://x/", "httpVersion": "HTTP/1.1",
                    "cookies": [], "headers": nv, "queryString": [], "headersSize": -1,
                    "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                     "cookies": [], "headers": nv,
                     "content": {"size": 0, "mimeType": "text/plain"},
                     "redirectURL": "", "headersSize": -1, "bodySize": 0},
        "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0.5}}]}}
    assert har_errors(good) == []

    def broken(fn):
        h = copy.deepcopy(good)
        fn(h["log"], h["log"]["entries"][0])
        return har_errors(h)

    assert broken(lambda log, e: log.pop("creator"))
    assert broken(lambda log, e: e["response"]["content"].pop("mimeType"))
    assert broken(lambda log, e: e["response"].__setitem__("status", "200"))
    assert broken(lambda log, e: e["request"].__setitem__("bodySize", 1.5))
    assert broken(lambda log, e: e["request"].pop("queryString"))
    assert broken(lambda log, e: e.pop("cache"))
    assert broken(lambda log, e: e["timings"].pop("wait"))
    assert broken(lambda log, e: e["request"]["headers"].append({"name": "X"}))
    assert broken(lambda log, e: e["request"].__setitem__("postData", {"text": "a=1"}))
    assert broken(lambda log, e: e.__setitem__("startedDateTime", "yesterday"))


# ---- HAR: schema, bodies, order --------------------------------------------------

def test_har_schema_bodies_and_order(proxy_factory, pki, https_upstream, http_upstream, tmp_path):
    har_path = str(tmp_path / "run.har")
    p = proxy_factory("--har", har_path)
    hs = "https://127.0.0.1:%d" % https_upstream.port
    hp = "http://127.0.0.1:%d" % http_upstream.port
    upload = payload(3000) + b"\x00\xff\xfe"
    with pytest.raises(UnicodeDecodeError):
        upload.decode("utf-8")  # so it has to be recorded as base64
    (tmp_path / "upload.bin").write_bytes(upload)
    chunked_n = 50000

    # (method, url, status, curl args, body the server sends, body the client uploads)
    flows = [
        ("GET", hs + "/text", 200, [], TEXT, None),
        ("GET", hs + "/json?a=1&b=two%20words", 200, [], JSON_BODY, None),
        ("GET", hs + "/gzip", 200, [], gzip.compress(TEXT), None),  # curl does not decode
        ("GET", hp + "/text", 200, [], TEXT, None),
        ("GET", hs + "/png", 200, [], PNG, None),
        ("GET", hs + "/chunked/%d" % chunked_n, 200, [], payload(chunked_n), None),
        ("POST", hs + "/echo", 200, ["--data", FORM], FORM.encode(), FORM.encode()),
        ("POST", hs + "/echo", 200,
         ["--data-binary", "@" + str(tmp_path / "upload.bin"),
          "-H", "Content-Type: application/octet-stream"], upload, upload),
        ("GET", hp + "/json", 200, [], JSON_BODY, None),
        ("GET", hs + "/redirect", 302, [], b"", None),  # not followed
        ("GET", hs + "/nope", 404, [], b"not found\n", None),
        ("POST", hp + "/echo", 200, ["--data", FORM], FORM.encode(), FORM.encode()),
    ]
    sections = []
    for i, (method, url, status, extra, served, up) in enumerate(flows):
        sections.append(["-o", str(tmp_path / ("out%d" % i))] + extra + [url])
    got = curl_sections(p, pki, sections)
    for i, (method, url, status, extra, served, up) in enumerate(flows):
        assert got[i][0] == status, (url, got[i])
        received = (tmp_path / ("out%d" % i)).read_bytes()
        if url.endswith("/gzip"):
            assert gzip.decompress(received) == TEXT
        else:
            assert received == served, url

    # Valid while tlspeek runs, and the same after a clean stop.
    har = har_with(har_path, len(flows))
    assert p.stop() == 0, p.stderr()
    assert load_har(har_path) == har

    assert har_errors(har) == []
    log = har["log"]
    assert log["version"] == "1.2"
    assert log["creator"]["name"] == "tlspeek"
    entries = log["entries"]
    # One entry per flow, in the order the requests were made.
    assert [(e["request"]["method"], e["request"]["url"], e["response"]["status"])
            for e in entries] == [(m, u, s) for m, u, s, _, _, _ in flows]

    started = [e["startedDateTime"] for e in entries]
    assert started == sorted(started), "entries not in start order: %s" % started

    for e, (method, url, status, extra, served, up) in zip(entries, flows):
        req, resp, content = e["request"], e["response"], e["response"]["content"]
        what = "%s %s" % (method, url)
        assert req["httpVersion"] == "HTTP/1.1", what
        assert resp["httpVersion"] == "HTTP/1.1", what
        assert e.get("serverIPAddress") == "127.0.0.1", what
        assert (("_tls" in e) == url.startswith("https:")), what
        assert "_bodyTruncated" not in req and "_bodyTruncated" not in resp, what
        # HAR 1.2: time is the sum of the timings that apply (ssl is in connect).
        t = e["timings"]
        parts = [t[k] for k in ("blocked", "dns", "connect", "send", "wait", "receive")
                 if t.get(k, -1) != -1]
        assert e["time"] == pytest.approx(sum(parts), abs=0.01), (what, e["time"], t)

        # The response body, decoded.
        decoded = gzip.decompress(served) if url.endswith("/gzip") else served
        assert body_bytes(content) == decoded, what
        assert content["size"] == len(decoded), what
        if url.endswith("/gzip"):
            assert header(resp["headers"], "Content-Encoding") == "gzip"
            assert resp["bodySize"] == len(served)  # as received: still compressed
            assert "encoding" not in content  # decoded text is UTF-8
        elif url.endswith(("/png", "/chunked/%d" % chunked_n)) or up == upload:
            assert content.get("encoding") == "base64", what
        elif decoded:
            assert "encoding" not in content, what
        if url.endswith("/chunked/%d" % chunked_n):
            assert resp["bodySize"] == chunked_n  # de-chunked
        cl = header(resp["headers"], "Content-Length")
        if cl is not None:
            assert resp["bodySize"] == int(cl), what
        assert content["mimeType"] == (header(resp["headers"], "Content-Type") or ""), what

        # The request body.
        if up is None:
            assert "postData" not in req, what
            assert req["bodySize"] == 0, what
        else:
            pd = req["postData"]
            assert req["bodySize"] == len(up), what
            assert body_bytes(pd) == up, what
            if up == upload:
                assert pd["encoding"] == "base64"
                assert pd["mimeType"] == "application/octet-stream"
            else:
                assert pd["text"] == FORM
                assert pd["mimeType"].startswith("application/x-www-form-urlencoded")
                assert [(x["name"], x["value"]) for x in pd["params"]] == \
                    parse_qsl(FORM, keep_blank_values=True)

        if url.endswith("/redirect"):
            assert resp["redirectURL"] == "/text"
        else:
            assert resp["redirectURL"] == "", what
        query = urlsplit(url).query
        assert [(q["name"], q["value"]) for q in req["queryString"]] == \
            parse_qsl(query, keep_blank_values=True), what
    assert [(q["name"], q["value"]) for q in entries[1]["request"]["queryString"]] == \
        [("a", "1"), ("b", "two words")]


# ---- SIGKILL in the middle of a run ----------------------------------------------

def _tunnel_conn(proxy, ctx, port):
    c = http.client.HTTPSConnection("127.0.0.1", proxy.port, timeout=30, context=ctx)
    c.set_tunnel("127.0.0.1", port)
    return c


class SequentialClient:
    """Python http.client doing n requests one after another through the
    proxy: blocks of 20 on one keep-alive connection, alternating HTTPS via
    CONNECT and plain http://. `completed` lists (method, url) of the flows
    whose response was read in full and checked. After `kill_after` flows,
    `kill()` is called: when kill_after < n, with a 1 MiB download in flight
    (its head and 64 KiB of its body read, the rest not)."""

    BLOCK = 20

    def __init__(self, proxy, pki, https_port, http_port, n, kill_after, kill):
        self.proxy, self.https_port, self.http_port = proxy, https_port, http_port
        self.ctx = https_client_ctx(pki)
        self.n, self.kill_after, self.kill = n, kill_after, kill
        self.completed = []
        self.in_flight = None
        self.error = None
        self.killed_at = None  # len(completed) when kill() was called
        self.killed_flow = None  # the (method, url) in flight then

    def _conn(self, block):
        if block % 2 == 0:
            return (_tunnel_conn(self.proxy, self.ctx, self.https_port),
                    "https://127.0.0.1:%d" % self.https_port, True)
        c = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=30)
        return c, "http://127.0.0.1:%d" % self.http_port, False

    def _one(self, conn, base, tunnel, i):
        kind = i % 4
        body = None
        if kind == 0:
            method, path, expect = "GET", "/text?i=%d" % i, TEXT
        elif kind == 1:
            method, path, expect = "GET", "/json?i=%d" % i, JSON_BODY
        elif kind == 2:
            method, path = "POST", "/echo?i=%d" % i
            body = expect = b"flow=%d&" % i + payload(500 + i).hex().encode()
        else:
            method, path, expect = "GET", "/bin/2048?i=%d" % i, payload(2048)
        url = base + path
        self.in_flight = (method, url)
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request(method, path if tunnel else url, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == 200 and data == expect, (url, resp.status, len(data))
        self.completed.append((method, url))
        self.in_flight = None

    def _kill(self):
        self.killed_at = len(self.completed)
        self.killed_flow = self.in_flight
        self.kill(list(self.completed))

    def _kill_in_flight(self, conn, base, tunnel):
        path = "/bin/1048576?kill"
        self.in_flight = ("GET", base + path)
        conn.request("GET", path if tunnel else base + path)
        resp = conn.getresponse()
        assert resp.status == 200
        assert len(resp.read(65536)) == 65536
        self._kill()
        resp.read()  # the rest may or may not come; either way the flow was in flight

    def run(self):
        conn = None
        try:
            for i in range(self.n):
                if i % self.BLOCK == 0:
                    if conn:
                        conn.close()
                    conn, base, tunnel = self._conn(i // self.BLOCK)
                if i == self.kill_after:
                    self._kill_in_flight(conn, base, tunnel)
                self._one(conn, base, tunnel, i)  # after the kill: fails
            if self.kill_after == self.n:
                self._kill()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            if conn:
                conn.close()


class NoiseClient:
    """Small HTTPS requests one after another until the proxy goes away, so
    that the writers are busy when the kill comes."""

    def __init__(self, proxy, pki, https_port):
        self.conn = _tunnel_conn(proxy, https_client_ctx(pki), https_port)
        self.base = "https://127.0.0.1:%d" % https_port
        self.sent = []  # (method, url), in order
        self.error = None

    def run(self):
        try:
            for i in range(1000000):
                path = "/text?noise=%d" % i
                self.sent.append(("GET", self.base + path))
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                assert resp.status == 200 and resp.read() == TEXT
        except Exception as e:  # noqa: BLE001
            self.error = e
        finally:
            self.conn.close()


def recorded_so_far(har_path, jsonl_path):
    """(HAR flows, JSONL flows) as (method, url), or None while a write is
    in progress (a torn HAR, a JSONL line without its newline)."""
    har = try_load_har(har_path)
    try:
        with open(jsonl_path, "rb") as f:
            data = f.read()
        lines = [json.loads(ln) for ln in data.split(b"\n")[:-1]]
    except (OSError, ValueError):
        return None
    if har is None:
        return None
    return ([(e["request"]["method"], e["request"]["url"]) for e in har["log"]["entries"]],
            [(j["method"], j["url"]) for j in lines])


def is_noise(flow):
    return "?noise=" in flow[1]


@pytest.mark.parametrize("when", ["mid-run", "after-all"])
def test_sigkill_leaves_whole_har_and_jsonl(when, proxy_factory, pki, https_upstream,
                                            http_upstream, tmp_path):
    """SIGKILL while a sequential client is in the middle of a run (a 1 MiB
    download in flight) or after its 200 flows, with a second client keeping
    tlspeek's writers busy. The writers are asynchronous (a flow is queued for
    them after its last byte went to the client), so before the kill the test
    waits until both files hold every flow the client completed: asking for
    more would be a timing assertion. What is checked is that the kill, which
    lands while the writers are appending, destroys none of it."""
    har_path, jsonl_path = str(tmp_path / "k.har"), str(tmp_path / "k.jsonl")
    p = proxy_factory("--har", har_path, "--jsonl", jsonl_path)
    n = 200
    noise = NoiseClient(p, pki, https_upstream.port)

    def kill(completed):
        def caught_up():
            got = recorded_so_far(har_path, jsonl_path)
            if got is None:
                return None
            return all(set(completed) <= {f for f in flows if not is_noise(f)} for flows in got)
        wait_for("both transcripts to hold the %d completed flows" % len(completed), caught_up,
                 timeout=60)
        assert noise.error is None and noise.sent, "the noise client is not running"
        p.proc.send_signal(signal.SIGKILL)

    client = SequentialClient(p, pki, https_upstream.port, http_upstream.port, n,
                              kill_after=100 if when == "mid-run" else n, kill=kill)
    threads = [threading.Thread(target=c.run, daemon=True) for c in (noise, client)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
        assert not t.is_alive(), "a client hung"
    assert client.killed_at is not None, "no kill: %r" % client.error
    assert p.proc.wait(timeout=10) == -signal.SIGKILL, p.stderr()
    assert noise.error is not None  # cut off by the kill: the writers were busy

    if when == "mid-run":
        assert client.killed_at == 100, repr(client.error)
        assert client.error is not None  # the proxy went away in the middle
        assert len(client.completed) == 100
        in_flight = client.killed_flow
        assert in_flight[1].endswith("/bin/1048576?kill")
    else:
        assert client.error is None, repr(client.error)
        assert client.killed_at == len(client.completed) == n
        in_flight = None

    # The HAR parses as it is, is valid HAR, and so is every JSONL line.
    with open(har_path, "rb") as f:
        raw = f.read()
    try:
        har = json.loads(raw)
    except ValueError as e:
        raise AssertionError("HAR left by SIGKILL does not parse (%s); tail: %r" % (e, raw[-300:]))
    assert har_errors(har) == []
    lines = load_jsonl(jsonl_path)
    entries = har["log"]["entries"]
    har_flows = [(e["request"]["method"], e["request"]["url"]) for e in entries]
    jsonl_flows = [(j["method"], j["url"]) for j in lines]

    for name, flows in (("HAR", har_flows), ("JSONL", jsonl_flows)):
        # Every completed flow of the client, and at most the one in flight.
        # (Order is test_har_schema_bodies_and_order's business; here the
        # client changes connections every 20 flows.)
        mine = [f for f in flows if not is_noise(f)]
        assert len(set(mine)) == len(mine), name
        missing = [f for f in client.completed if f not in set(mine)]
        assert not missing, "%s lacks %d completed flows, e.g. %s" % (name, len(missing),
                                                                      missing[:3])
        extra = set(mine) - set(client.completed)
        assert extra <= ({in_flight} if in_flight else set()), (name, extra)
        # The noise client's flows: ones it sent, in order, none twice.
        theirs = [f for f in flows if is_noise(f)]
        assert theirs == noise.sent[:len(theirs)], name
    # The same flows of the client in both files, except the one in flight.
    # (Noise flows are not compared across files: each writer may have been
    # some flows behind the other at the kill; within a file they must be
    # the noise client's first ones, checked above. Flows of the two clients
    # may also interleave differently: each file is in the order its own
    # writer got them.)
    assert len(set(har_flows)) == len(har_flows) and len(set(jsonl_flows)) == len(jsonl_flows)
    diff = {f for f in set(har_flows) ^ set(jsonl_flows) if not is_noise(f)}
    assert diff <= {in_flight}, diff
    jsonl_by_flow = {(j["method"], j["url"]): j for j in lines}
    for f, e in zip(har_flows, entries):
        j = jsonl_by_flow.get(f)
        if j is None:
            continue
        assert e["response"]["status"] == j["status"]
        if j["status"] == 200 and j["response"]["bodyTruncated"] is False:
            assert body_bytes(e["response"]["content"]) == jsonl_body(j["response"])
    by_url = {(e["request"]["method"], e["request"]["url"]): e for e in entries}
    for f in client.completed:
        e = by_url[f]
        assert e["response"]["status"] == 200 and "_error" not in e, f


# ---- PCAP ------------------------------------------------------------------------

def follow_raw(pcap, stream):
    """tshark's Follow TCP stream (raw): (client bytes, server bytes, node0, node1)."""
    out = tshark("-r", pcap, "-q", "-z", "follow,tcp,raw,%d" % stream)
    nodes = re.findall(r"^Node [01]: (\S+)$", out, re.M)
    assert len(nodes) == 2, out[:500]
    body = out.split("Node 1: " + nodes[1], 1)[1]
    c2s, s2c = bytearray(), bytearray()
    for line in body.splitlines():
        if not line.strip() or line.startswith("="):
            continue
        if line.startswith("\t"):
            s2c += bytes.fromhex(line.strip())
        else:
            c2s += bytes.fromhex(line.strip())
    return bytes(c2s), bytes(s2c), nodes[0], nodes[1]


def test_pcap_requests_ports_and_5mib_body(proxy_factory, pki, https_upstream, http_upstream,
                                           tmp_path):
    pcap, jsonl_path = str(tmp_path / "run.pcap"), str(tmp_path / "run.jsonl")
    # A small --body-cap: it applies to HAR and JSONL, never to the PCAP.
    p = proxy_factory("--pcap", pcap, "--jsonl", jsonl_path, "--body-cap", "1k")
    hs = "https://127.0.0.1:%d" % https_upstream.port
    hp = "http://127.0.0.1:%d" % http_upstream.port
    big = 5 * 1024 * 1024
    big_path = tmp_path / "big.bin"

    # (method, url, curl args); the sections of one list share a curl.
    runs = [
        [("GET", hs + "/text", []), ("GET", hs + "/json?x=1", []),
         ("POST", hs + "/echo", ["--data", FORM])],
        [("GET", hp + "/text", []), ("POST", hp + "/echo", ["--data", FORM])],
        [("GET", hs + "/bin/%d" % big, ["-o", str(big_path)])],
        [("GET", hp + "/status/204", [])],
    ]
    expected = []  # (method, url, client port, server port)
    for sections in runs:
        args = [extra + ([] if "-o" in extra else ["-o", os.devnull]) + [url]
                for _, url, extra in sections]
        got = curl_sections(p, pki, args)
        for (method, url, _), (status, port) in zip(sections, got):
            assert status in (200, 204), (url, status)
            expected.append((method, url, port, urlsplit(url).port))
    assert sha256(big_path.read_bytes()) == sha256(payload(big))

    lines = jsonl_with(jsonl_path, len(expected))
    assert p.stop() == 0, p.stderr()  # flushes the PCAP
    # tlspeek saw the same client ports as curl used (the JSONL is only the
    # witness here: its order is not what this test is about).
    assert sorted((j["method"], j["url"], int(j["client"].rsplit(":", 1)[1])) for j in lines) == \
        sorted((m, u, c) for m, u, c, _ in expected)

    rows = field_rows(tshark("-r", pcap, "-Y", "http.request", "-T", "fields",
                             "-e", "http.request.method", "-e", "http.request.uri",
                             "-e", "tcp.srcport", "-e", "tcp.dstport"))

    def norm(uri):  # https requests are origin-form, plain http:// ones absolute
        u = urlsplit(uri)
        return u.path + ("?" + u.query if u.query else "")

    assert [(r[0], norm(r[1]), int(r[2]), int(r[3])) for r in rows] == \
        [(m, norm(u), c, s) for m, u, c, s in expected]
    for r, (m, u, c, s) in zip(rows, expected):
        if r[1].startswith("http"):
            assert r[1] == u

    # The 5 MiB download, reassembled by tshark, byte for byte.
    stream = field_rows(tshark("-r", pcap, "-Y", 'http.request.uri contains "/bin/%d"' % big,
                               "-T", "fields", "-e", "tcp.stream"))
    assert len(stream) == 1, stream
    c2s, s2c, node0, node1 = follow_raw(pcap, int(stream[0][0]))
    big_client_port = [c for m, u, c, s in expected if u.endswith("/bin/%d" % big)][0]
    assert node0 == "127.0.0.1:%d" % big_client_port
    assert node1 == "127.0.0.1:%d" % https_upstream.port
    assert c2s.startswith(b"GET /bin/%d HTTP/1.1\r\n" % big) and c2s.endswith(b"\r\n\r\n")
    head, sep, body = s2c.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 200 "), s2c[:200]
    assert re.search(rb"(?im)^content-length: *%d\r?$" % big, head), head
    assert len(body) == big
    assert sha256(body) == sha256(payload(big))


# ---- key log --------------------------------------------------------------------

class LoopbackCapture:
    """tshark -i lo -f "tcp port PORT" -w FILE. Start and stop are both
    confirmed with a marker connection to PORT that tshark must have seen
    (it prints each packet's source port with -P), so no packet of the test
    is missed at either end."""

    def __init__(self, port, path):
        self.port, self.path = port, path
        self.err_path = path + ".stderr"
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [require_program("tshark"), "-i", "lo", "-f", "tcp port %d" % port, "-w", path, "-P", "-l",
             "-T", "fields", "-e", "tcp.srcport"],
            stdout=subprocess.PIPE, stderr=self._err, env=clean_env())
        self.ports = []  # source port of every packet seen, in order
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            wait_for("tshark to start capturing",
                     lambda: "Capturing on" in self.stderr() or self._dead(), timeout=30)
            self._marker()
        except BaseException:
            self._end()
            raise

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def _dead(self):
        if self.proc.poll() is not None:
            raise AssertionError("tshark exited: %s" % self.stderr())
        return False

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.isdigit():
                self.ports.append(int(line))

    def _marker(self):
        """Connects to the port (and closes) until tshark shows the packets."""
        deadline = time.time() + 30
        while time.time() < deadline:
            seen = len(self.ports)
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                mine = s.getsockname()[1]
            t_end = time.time() + 2
            while time.time() < t_end:
                if mine in self.ports[seen:]:
                    return
                self._dead()
                time.sleep(0.05)
        raise AssertionError("tshark did not see the marker connection: %s" % self.stderr())

    def _end(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        self._err.close()

    def stop(self):
        try:
            self._marker()
        finally:
            self._end()
        assert self.proc.returncode == 0, self.stderr()


def decrypted_uris(pcapng, keylog=None):
    """Request URIs tshark shows in the capture (CONNECT, which is plain
    text on this leg, reported separately)."""
    args = ["-r", pcapng]
    if keylog:
        args += ["-o", "tls.keylog_file:" + keylog]
    rows = field_rows(tshark(*args, "-Y", "http.request", "-T", "fields",
                             "-e", "http.request.method", "-e", "http.request.uri"))
    connect = [r[1] for r in rows if r[0] == "CONNECT"]
    return [r[1] for r in rows if r[0] != "CONNECT"], connect


KEYLOG_LINE = re.compile(r"^(CLIENT_RANDOM|CLIENT_EARLY_TRAFFIC_SECRET|"
                         r"CLIENT_HANDSHAKE_TRAFFIC_SECRET|SERVER_HANDSHAKE_TRAFFIC_SECRET|"
                         r"CLIENT_TRAFFIC_SECRET_0|SERVER_TRAFFIC_SECRET_0|EXPORTER_SECRET) "
                         r"[0-9a-fA-F]{64} [0-9a-fA-F]{32,}$")


@pytest.mark.parametrize("how,version", [("option", "1.3"), ("option", "1.2"), ("env", "1.3")])
def test_keylog_decrypts_client_leg(how, version, proxy_factory, pki, https_upstream, tmp_path):
    keylog = str(tmp_path / "keys.log")
    if how == "option":
        p = proxy_factory("--keylog", keylog)
    else:
        p = proxy_factory(extra_env={"SSLKEYLOGFILE": keylog})
    tls = ["--tlsv1.3"] if version == "1.3" else ["--tlsv1.2", "--tls-max", "1.2"]
    path = "/text?tls=%s&how=%s" % (version, how)
    cap_path = str(tmp_path / "cap.pcapng")

    cap = LoopbackCapture(p.port, cap_path)
    try:
        r = curl("--cacert", pki.proxy_ca, "-x", p.url, *tls,
                 "https://127.0.0.1:%d%s" % (https_upstream.port, path))
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout == TEXT
    finally:
        cap.stop()
    assert p.stop() == 0, p.stderr()

    # Without the key log: the tunnel is there, the request inside is not.
    inside, connect = decrypted_uris(cap_path)
    assert connect == ["127.0.0.1:%d" % https_upstream.port], connect
    assert inside == []
    # With it: the request tlspeek decrypted on the client leg.
    inside, _ = decrypted_uris(cap_path, keylog)
    assert inside == [path]

    st = os.stat(keylog)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    with open(keylog) as f:
        lines = f.read().splitlines()
    assert lines and all(KEYLOG_LINE.match(ln) for ln in lines), lines
    labels = {ln.split()[0] for ln in lines}
    if version == "1.2":
        assert "CLIENT_RANDOM" in labels, labels
    else:
        assert "CLIENT_TRAFFIC_SECRET_0" in labels, labels


# ---- files that cannot be written ------------------------------------------------

@pytest.mark.parametrize("opt", ["--har", "--jsonl", "--pcap", "--keylog", "SSLKEYLOGFILE"])
def test_unopenable_file_exits_1_naming_it(opt, pki, tmp_path):
    bad = "/nonexistent-dir-%d/x.out" % os.getpid()
    port = free_port()
    args = [BIN, "--ca-dir", pki.proxy_ca_dir, "-l", "127.0.0.1:%d" % port]
    env = clean_env()
    if opt == "SSLKEYLOGFILE":
        env["SSLKEYLOGFILE"] = bad
    else:
        args += [opt, bad]
    try:
        r = subprocess.run(args, capture_output=True, timeout=30, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("tlspeek %s %s started instead of exiting" % (opt, bad))
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 1, err
    assert bad in err, err
    assert "No such file or directory" in err, err
    assert "listening on" not in err, err


def test_runtime_write_error_warns_once_and_proxying_continues(proxy_factory, pki,
                                                               https_upstream):
    p = proxy_factory("--jsonl", "/dev/full")
    url = "https://127.0.0.1:%d/text" % https_upstream.port
    r = curl("--cacert", pki.proxy_ca, "-x", p.url, url)
    assert r.returncode == 0 and r.stdout == TEXT, r.stderr
    wait_for("the write error warning", lambda: "/dev/full" in p.stderr())
    for i in range(3):
        r = curl("--cacert", pki.proxy_ca, "-x", p.url, url + "?again=%d" % i)
        assert r.returncode == 0 and r.stdout == TEXT, r.stderr
    assert p.proc.poll() is None, "tlspeek died"
    assert p.stop() == 0, p.stderr()
    mentions = [ln for ln in p.stderr().splitlines() if "/dev/full" in ln]
    assert len(mentions) == 1, mentions
    assert "warning" in mentions[0] and "No space left on device" in mentions[0], mentions


def test_jsonl_and_pcap_into_fifos(proxy_factory, pki, https_upstream, tmp_path):
    """--jsonl and --pcap to FIFOs (as to a pipe or /dev/stdout): written at the
    pipe's position, every flow whole, readable by a reader on the other end."""
    fifos = {name: str(tmp_path / name) for name in ("flows.jsonl", "flows.pcap")}
    got = {}
    readers = []
    for name, path in fifos.items():
        os.mkfifo(path, 0o600)

        def read_all(name=name, path=path):
            with open(path, "rb") as f:
                got[name] = f.read()
        t = threading.Thread(target=read_all, daemon=True)
        t.start()
        readers.append(t)
    p = proxy_factory("--jsonl", fifos["flows.jsonl"], "--pcap", fifos["flows.pcap"])
    url = "https://127.0.0.1:%d/text" % https_upstream.port
    for i in range(3):
        r = curl("--cacert", pki.proxy_ca, "-x", p.url, url + "?n=%d" % i)
        assert r.returncode == 0 and r.stdout == TEXT, r.stderr
    assert p.stop() == 0, p.stderr()
    for t in readers:
        t.join(30)
    lines = got["flows.jsonl"].decode().splitlines()
    assert [json.loads(ln)["url"] for ln in lines] == [url + "?n=%d" % i for i in range(3)]
    pcap = tmp_path / "copy.pcap"
    pcap.write_bytes(got["flows.pcap"])
    out = tshark("-r", str(pcap), "-Y", "http.request", "-T", "fields", "-e", "http.request.uri")
    assert sorted(field_rows(out)) == [["/text?n=%d" % i] for i in range(3)], out


# ---- --body-cap ------------------------------------------------------------------

def test_body_cap_truncates_records_not_traffic(proxy_factory, pki, https_upstream, tmp_path):
    har_path, jsonl_path = str(tmp_path / "cap.har"), str(tmp_path / "cap.jsonl")
    p = proxy_factory("--body-cap", "1k", "--har", har_path, "--jsonl", jsonl_path)
    hs = "https://127.0.0.1:%d" % https_upstream.port
    big = payload(10 * 1024)
    (tmp_path / "up.bin").write_bytes(big)
    flows = [  # (method, url, curl args, uploaded, served)
        ("GET", hs + "/bin/10240", [], None, big),
        ("GET", hs + "/chunked/10240", [], None, big),
        ("POST", hs + "/echo", ["--data-binary", "@" + str(tmp_path / "up.bin"),
                                "-H", "Content-Type: application/octet-stream"], big, big),
        ("GET", hs + "/text", [], None, TEXT),
    ]
    got = curl_sections(p, pki, [["-o", str(tmp_path / ("o%d" % i))] + extra + [url]
                                 for i, (_, url, extra, _, _) in enumerate(flows)])
    for i, (method, url, extra, up, served) in enumerate(flows):
        assert got[i][0] == 200
        # The client gets every byte.
        assert (tmp_path / ("o%d" % i)).read_bytes() == served, url
    har = har_with(har_path, len(flows))
    lines = jsonl_with(jsonl_path, len(flows))
    assert p.stop() == 0, p.stderr()
    assert har_errors(har) == []
    assert har["log"]["_bodyCap"] == 1024

    for e, j, (method, url, extra, up, served) in zip(har["log"]["entries"], lines, flows):
        assert (e["request"]["method"], e["request"]["url"]) == (method, url)
        assert (j["method"], j["url"]) == (method, url)
        cut = len(served) > 1024
        if cut:
            assert e["response"].get("_bodyTruncated") is True, url
            assert body_bytes(e["response"]["content"]) == served[:1024], url
            assert j["response"]["bodyTruncated"] is True, url
            assert jsonl_body(j["response"]) == served[:1024], url
        else:
            assert "_bodyTruncated" not in e["response"], url
            assert body_bytes(e["response"]["content"]) == served
            assert j["response"]["bodyTruncated"] is False
            assert jsonl_body(j["response"]) == served
        assert e["response"]["bodySize"] == len(served)  # what was received, uncut
        assert j["response"]["bodySize"] == len(served)
        if up is not None:
            assert e["request"].get("_bodyTruncated") is True
            assert body_bytes(e["request"]["postData"]) == up[:1024]
            assert e["request"]["bodySize"] == len(up)
            assert j["request"]["bodyTruncated"] is True
            assert jsonl_body(j["request"]) == up[:1024]
        else:
            assert "_bodyTruncated" not in e["request"]
            assert j["request"]["bodyTruncated"] is False
