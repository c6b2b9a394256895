"""`tlspeek replay FILE`: the requests of a HAR or JSONL transcript sent again
through tlspeek's own upstream logic, shown and recorded like live flows,
and compared with the recording.

Flows are recorded with curl through a running tlspeek (--har, --jsonl)
against origin servers of this file (HTTPS with the test PKI, and plain
HTTP) that log every request they get. Then `tlspeek replay` sends them
again: the servers' logs must see the same method, path, body and headers;
the console shows each flow with its "replayed" line; a --har of the
replay records it; the summary reports the path whose answer the server
changed in between; -f selects; without --upstream-ca every request fails
with the verification error; a bad file exits 2; --concurrency 4 has four
requests in flight at once (the server holds them at a barrier of four, so
one at a time could not pass it); an interrupt (SIGINT) reports what was
not sent, without a crash; --web keeps the page up until then; -m upstream:
reaches the origin through the next proxy; --proxyauth is given by the
senders; a gzip answer compressed differently is "body same" (decoded hashes).
"""
import gzip
import hashlib
import http.client
import http.server
import json
import os
import re
import signal
import subprocess
import time
import ssl
import threading

import pytest

from conftest import BIN, curl, free_port, run


GZ_TEXT = b"the same text, compressed differently each time " * 20


class LoggingOrigin:
    """An origin server on 127.0.0.1 (HTTPS when `pem` is given) that logs
    (method, path, body, headers) of every request. /flip answers
    `flip_status` with a body naming it; /wait/N waits at `barrier` when one
    is set; anything else echoes the request body, or "ok"."""

    def __init__(self, pem=None):
        self.log = []
        self.lock = threading.Lock()
        self.flip_status = 200
        self.barrier = None
        self.hold = None  # an Event: /hold waits for it when set
        self.gz_count = 0
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def handle_one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with origin.lock:
                    origin.log.append((self.command, self.path, body, dict(self.headers)))
                status, out = 200, body or b"ok"
                if self.path == "/flip":
                    status = origin.flip_status
                    out = b"flip answered %d" % status
                elif self.path.startswith("/wait/") and origin.barrier is not None:
                    origin.barrier.wait()
                elif self.path == "/hold" and origin.hold is not None:
                    origin.hold.wait(60)
                elif self.path == "/gz":
                    # gzip with a header that differs at each answer (its mtime
                    # field), the same text inside.
                    with origin.lock:
                        origin.gz_count += 1
                        out = gzip.compress(GZ_TEXT, mtime=origin.gz_count)
                    self.send_response(200)
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    return
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = handle_one

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that left (the interrupted replay): not a test failure

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if pem:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pem)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.base = "%s://127.0.0.1:%d" % ("https" if pem else "http", self.port)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def requests(self):
        with self.lock:
            return list(self.log)

    def clear(self):
        with self.lock:
            self.log.clear()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origins(pki):
    tls, plain = LoggingOrigin(pki.leaf), LoggingOrigin()
    yield tls, plain
    tls.close()
    plain.close()


def record(proxy_factory, pki, tls, plain, tmp_path, extra=()):
    """Records the flows with --har and --jsonl; returns both paths and the
    requests the servers saw, in order."""
    har, jsonl = str(tmp_path / "rec.har"), str(tmp_path / "rec.jsonl")
    p = proxy_factory("--har", har, "--jsonl", jsonl, "-q")
    via = ["--cacert", pki.proxy_ca, "-x", p.url, "-o", os.devnull, "-f"]
    for args in ([tls.base + "/a?x=1"],
                 ["-d", "name=replay&value=42", "-H", "Content-Type: text/plain",
                  tls.base + "/post"],
                 ["-H", "X-Replay-Test: yes please", tls.base + "/hdr"],
                 [tls.base + "/flip"],
                 ["-X", "PUT", "-d", "plain body", plain.base + "/plain"]) + tuple(extra):
        r = curl(*(via + args))
        assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert p.stop() == 0
    return har, jsonl, tls.requests() + plain.requests()


def replay(pki, *args, upstream_ca=True):
    cmd = ["--ca-dir", pki.proxy_ca_dir, "replay"] + list(args)
    if upstream_ca:
        cmd += ["--upstream-ca", pki.upstream_ca]
    r = run(cmd, timeout=120)
    err = r.stderr.decode("utf-8", "replace")
    # Under `make asan` a report also exits 1: never take it for a failed request.
    assert "Sanitizer" not in err and "runtime error" not in err, err
    return r, r.stdout.decode("utf-8", "replace"), err


def seen(reqs):
    return [(m, p, b) for m, p, b, _ in reqs]


@pytest.mark.parametrize("fmt", ["har", "jsonl"])
def test_replay_sends_again_shows_records_and_compares(proxy_factory, pki, origins, tmp_path,
                                                      fmt):
    tls, plain = origins
    har, jsonl, recorded = record(proxy_factory, pki, tls, plain, tmp_path)
    assert len(recorded) == 5
    src = har if fmt == "har" else jsonl
    tls.clear()
    plain.clear()
    tls.flip_status = 404  # the server changed its mind about /flip
    out_har = str(tmp_path / "replayed.har")

    r, out, err = replay(pki, src, "--har", out_har)
    assert r.returncode == 0, err
    # The servers saw every request again: method, path with query, body.
    again = tls.requests() + plain.requests()
    assert seen(again) == seen(recorded)
    hdr = [h for m, p, b, h in again if p == "/hdr"][0]
    assert hdr.get("X-Replay-Test") == "yes please"
    post = [h for m, p, b, h in again if p == "/post"][0]
    assert post.get("Content-Type") == "text/plain"
    assert post.get("Content-Length") == str(len(b"name=replay&value=42"))
    # The console: each flow, then its replayed line naming file and entry.
    lines = out.splitlines()
    for n, (method, url) in enumerate([("GET", tls.base + "/a?x=1"),
                                       ("POST", tls.base + "/post"),
                                       ("GET", tls.base + "/hdr"),
                                       ("GET", tls.base + "/flip"),
                                       ("PUT", plain.base + "/plain")], 1):
        flow = [i for i, l in enumerate(lines) if "→ %s %s →" % (method, url) in l]
        assert flow, out
        assert lines[flow[0] + 1].startswith(
            "    ↳ replayed: from %s entry %d (recorded " % (src, n)), out
    flip_body = b"flip answered 200"
    assert "entry 4 (recorded 200, %d bytes, sha256 %s…)" % (
        len(flip_body), hashlib.sha256(flip_body).hexdigest()[:12]) in out, out
    # The comparison.
    flip = "GET %s/flip" % tls.base
    assert "replay: entry 4 %s: 200 -> 404, body differs" % flip in out
    assert "replay: entry 2 POST %s/post: 200 -> 200, body same" % tls.base in out
    assert ("replay: 5 requests, 4 same status, 1 changed (%s: 200 -> 404), 1 body differs"
            % flip) in out
    # The replay's own --har records the new flows, with the action.
    entries = json.load(open(out_har))["log"]["entries"]
    assert [e["request"]["url"] for e in entries] == [
        tls.base + "/a?x=1", tls.base + "/post", tls.base + "/hdr", tls.base + "/flip",
        plain.base + "/plain"]
    assert entries[3]["response"]["status"] == 404
    for n, e in enumerate(entries, 1):
        assert e["_actions"][0].startswith("replayed: from %s entry %d " % (src, n))


def test_replay_filter_selects(proxy_factory, pki, origins, tmp_path):
    tls, plain = origins
    har, _, _ = record(proxy_factory, pki, tls, plain, tmp_path)
    tls.clear()
    plain.clear()
    r, out, err = replay(pki, "-f", "~m POST | ~u /plain", har)
    assert r.returncode == 0, err
    assert seen(tls.requests() + plain.requests()) == [
        ("POST", "/post", b"name=replay&value=42"), ("PUT", "/plain", b"plain body")]
    assert "replay: 2 requests, 2 same status, 0 changed, 0 bodies differ" in out
    r, out, err = replay(pki, "-f", "~u /nothing-like-this", har)
    assert r.returncode == 0 and out == "replay: 0 requests\n"
    assert "warning: replay: %s has no entry that -f matches" % har in err


def test_replay_verification_failure_is_reported_per_request(proxy_factory, pki, origins,
                                                             tmp_path):
    tls, plain = origins
    _, jsonl, _ = record(proxy_factory, pki, tls, plain, tmp_path)
    tls.clear()
    r, out, err = replay(pki, "-f", "~u ^https", jsonl, upstream_ca=False)
    assert r.returncode == 1
    assert tls.requests() == []
    failed = [l for l in out.splitlines() if l.startswith("replay: entry ")]
    assert len(failed) == 4, out
    for l in failed:
        assert "failed: certificate for 127.0.0.1 failed verification" in l, l
        assert "--upstream-ca" in l
    assert "replay: 4 requests, 0 same status, 0 changed, 0 bodies differ, 4 failed" in out
    assert "error: replay: entry 1 GET %s/a?x=1: certificate for 127.0.0.1" % tls.base in err


def test_replay_bad_files_exit_2(pki, tmp_path):
    r, out, err = replay(pki, str(tmp_path / "missing.har"))
    assert r.returncode == 2
    assert "tlspeek: error: %s: cannot open it" % (tmp_path / "missing.har") in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"url": "https://x/", "method": "GET"\n')
    r, out, err = replay(pki, str(bad))
    assert r.returncode == 2
    assert "tlspeek: error: %s: line 1" % bad in err
    notjson = tmp_path / "notes.txt"
    notjson.write_text("hello\n")
    r, out, err = replay(pki, str(notjson))
    assert r.returncode == 2 and "tlspeek: error: %s: " % notjson in err
    for args, msg in ((["--concurrency", "0", "x.har"], "bad --concurrency '0'"),
                      (["-f", "~q(", "x.har"], "bad -f expression: column 4"),
                      ([], "tlspeek replay needs a file"),
                      (["-l", "127.0.0.1:9", "x.har"], "--listen is not taken")):
        r, out, err = replay(pki, *args)
        assert r.returncode == 2 and msg in err, err
    r = run(["replay", "--help"])
    assert r.returncode == 0 and b"--concurrency N" in r.stdout


def test_replay_concurrency_has_requests_in_flight_together(proxy_factory, pki, origins,
                                                            tmp_path):
    tls, plain = origins
    extra = tuple([tls.base + "/wait/%d" % i] for i in range(8))
    har, _, _ = record(proxy_factory, pki, tls, plain, tmp_path, extra=extra)
    tls.clear()
    # Each /wait/N is held until four are in flight at once.
    tls.barrier = threading.Barrier(4, timeout=60)
    r, out, err = replay(pki, "--concurrency", "4", "-f", "~u /wait/", har)
    assert r.returncode == 0, err + out
    assert sorted(p for _, p, _, _ in tls.requests()) == ["/wait/%d" % i for i in range(8)]
    assert "replay: 8 requests, 8 same status, 0 changed, 0 bodies differ" in out
    assert not tls.barrier.broken


def test_replay_interrupted_reports_what_was_not_sent(proxy_factory, pki, origins, tmp_path):
    tls, plain = origins
    har, _, _ = record(proxy_factory, pki, tls, plain, tmp_path, extra=([tls.base + "/hold"],))
    tls.clear()
    tls.hold = threading.Event()
    proc = subprocess.Popen([BIN, "--ca-dir", pki.proxy_ca_dir, "replay", "-f", "~u /hold|/a",
                             har, "--upstream-ca", pki.upstream_ca],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Entry 1 (/a) is answered; entry 6 (/hold) is held: interrupt then.
        deadline = time.time() + 30
        while "/hold" not in [p for _, p, _, _ in tls.requests()] and time.time() < deadline:
            time.sleep(0.05)
        assert [p for _, p, _, _ in tls.requests()] == ["/a?x=1", "/hold"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        tls.hold.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = out.decode(), err.decode()
    assert proc.returncode == 1, err
    assert "replay: entry 1 GET %s/a?x=1: 200 -> 200, body same" % tls.base in out
    assert "replay: entry 6 GET %s/hold: failed: shutting down" % tls.base in out
    assert "replay: 2 requests, 1 same status, 0 changed, 0 bodies differ, 1 failed" in out
    assert "Sanitizer" not in err and "runtime error" not in err, err


def test_replay_with_web_keeps_the_page_until_interrupted(proxy_factory, pki, origins, tmp_path):
    tls, plain = origins
    har, _, _ = record(proxy_factory, pki, tls, plain, tmp_path)
    err_path = str(tmp_path / "stderr")
    port = free_port()
    with open(err_path, "wb") as err_f:
        proc = subprocess.Popen([BIN, "--ca-dir", pki.proxy_ca_dir, "replay", har, "--web",
                                 "127.0.0.1:%d" % port, "--upstream-ca", pki.upstream_ca],
                                stdout=subprocess.PIPE, stderr=err_f)
    try:
        deadline = time.time() + 60
        err = ""
        while "replay: every request is done" not in err and time.time() < deadline:
            time.sleep(0.05)
            err = open(err_path, encoding="utf-8", errors="replace").read()
        assert "the flow browser stays up until Ctrl-C" in err, err
        token = re.search(r"tlspeek: web: http://127\.0\.0\.1:%d/\?token=([0-9a-f]{32})" % port,
                          err).group(1)

        def api(path):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", path + ("&" if "?" in path else "?") + "token=" + token,
                      headers={"Host": "127.0.0.1:%d" % port})
            r = c.getresponse()
            body = r.read()
            c.close()
            assert r.status == 200, body
            return json.loads(body)

        flows = api("/api/flows")["flows"]
        assert len(flows) == 5
        for f in flows:
            actions = api("/api/flows/%d" % f["id"])["record"]["actions"]
            assert actions[0].startswith("replayed: from %s entry " % har), actions
        assert proc.poll() is None  # still serving the page
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "replay: 5 requests, 5 same status, 0 changed, 0 bodies differ" in out.decode()


def test_replay_with_proxyauth_sends_its_credentials(proxy_factory, pki, origins, tmp_path):
    """--proxyauth guards the replay's own listener too: its senders give the
    credentials, on CONNECT (https://) and on an absolute-form request
    (http://)."""
    tls, plain = origins
    har, _, recorded = record(proxy_factory, pki, tls, plain, tmp_path)
    tls.clear()
    plain.clear()
    r, out, err = replay(pki, har, "--proxyauth", "user:s3cret")
    assert r.returncode == 0, err + out
    assert seen(tls.requests() + plain.requests()) == seen(recorded)
    assert all("Proxy-Authorization" not in h for _, _, _, h in plain.requests())


def test_replay_goes_through_the_next_proxy(proxy_factory, pki, origins, tmp_path):
    """-m upstream:http://HOST:PORT: the replayed requests reach the origin
    through the next proxy (here another tlspeek, whose console shows them;
    its CA is what the replaying tlspeek must trust upstream)."""
    tls, plain = origins
    har, _, _ = record(proxy_factory, pki, tls, plain, tmp_path)
    tls.clear()
    plain.clear()
    nxt = proxy_factory()
    r = run(["--ca-dir", str(tmp_path / "replay-ca"), "replay", har,
             "-m", "upstream:http://127.0.0.1:%d" % nxt.port, "--upstream-ca", pki.proxy_ca],
            timeout=120)
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode() + out
    assert "replay: 5 requests, 5 same status, 0 changed, 0 bodies differ" in out
    assert len(tls.requests() + plain.requests()) == 5
    shown = nxt.wait_stdout("PUT %s/plain" % plain.base)
    for path in ("/a?x=1", "/post", "/hdr", "/flip"):
        assert "%s%s → 200" % (tls.base, path) in shown, shown


def test_replay_compares_decoded_bodies(proxy_factory, pki, origins, tmp_path):
    """A gzip answer whose compressed bytes differ from the recorded ones but
    whose text is the same is "body same": both sides are hashed decoded."""
    tls, plain = origins
    har, _, _ = record(proxy_factory, pki, tls, plain, tmp_path,
                       extra=(["--compressed", tls.base + "/gz"],))
    r, out, err = replay(pki, "-f", "~u /gz", har)
    assert r.returncode == 0, err
    assert tls.gz_count == 2
    assert "entry 6 (recorded 200, %d bytes, sha256 %s…)" % (
        len(GZ_TEXT), hashlib.sha256(GZ_TEXT).hexdigest()[:12]) in out, out
    assert "replay: entry 6 GET %s/gz: 200 -> 200, body same" % tls.base in out
