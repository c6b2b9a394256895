"""What the console and the transcripts say about what tlspeek relayed and
changed, with real clients (curl, Python's http.client) and real local
servers:

  - 1xx interim responses (100 Continue for `Expect: 100-continue`, 103 Early
    Hints) reach the client, the upload then reaches the server intact, and
    the console (-v) shows each interim head before the final one; the JSONL
    transcript lists them in "interim", HAR in response._interimResponses;
  - with --remove-header / --set-header the console shows the head as
    forwarded, then one "  ~ " line per change, and the server really got
    that head; HAR and JSONL record the forwarded head, JSONL also the head
    as received;
  - re-using a transcript file name is stated on stderr at start-up.
"""
import http.client
import json
import os
import socket

from conftest import TcpServer, curl, require_program

BODY = bytes(range(256)) * 12  # 3072 bytes: curl -T asks for 100-continue above 1 KiB


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def _indented_after(lines, i):
    block = []
    for l in lines[i + 1:]:
        if not l.startswith(" "):
            break
        block.append(l)
    return block


def flow_block(out, needle):
    """The flow whose flow line contains `needle` ("METHOD url → status"), as
    one list: the flow line, then the request part (written at -v when the
    request went upstream, under "client → METHOD url"), then the lines that
    followed the flow line."""
    lines = out.splitlines()
    start = needle.split(" → ")[0]
    for i, line in enumerate(lines):
        if not line.startswith(" ") and needle in line:
            head = line[:line.index(start) + len(start)]
            req = next((j for j in range(i - 1, -1, -1) if lines[j] == head), None)
            assert req is not None, "no request part %r in:\n%s" % (head, out[-4000:])
            return [line] + _indented_after(lines, req) + _indented_after(lines, i)
    raise AssertionError("no flow line with %r in:\n%s" % (needle, out[-4000:]))


def heads_only(block):
    return [l for l in block if l.startswith(("  > ", "  < ", "  ~ "))]


# ---- Expect: 100-continue -------------------------------------------------------


def test_curl_upload_with_expect_100_continue(proxy_factory, pki, http_upstream, https_upstream,
                                              tmp_path):
    require_program("curl")
    jsonl, har = str(tmp_path / "up.jsonl"), str(tmp_path / "up.har")
    p = proxy_factory("-v", "--jsonl", jsonl, "--har", har)
    src = tmp_path / "upload.bin"
    src.write_bytes(BODY)
    urls = ["http://127.0.0.1:%d/echo" % http_upstream.port,
            "https://localhost:%d/echo" % https_upstream.port]
    for url in urls:
        r = curl("--cacert", pki.proxy_ca, "-x", p.url, "-T", str(src), "-v", url)
        assert r.returncode == 0, r.stderr.decode()
        err = r.stderr.decode("latin-1")
        # curl asked, and got its 100 Continue through tlspeek.
        assert "> Expect: 100-continue" in err, err
        assert "< HTTP/1.1 100 Continue" in err, err
        # The upstream echoes what it read: the upload arrived whole.
        assert r.stdout == BODY
    p.stop()
    out = p.stdout()
    for url in urls:
        block = flow_block(out, "PUT %s → 200" % url)
        resp = [l for l in block if l.startswith("  < ")]
        assert resp[0] == "  < HTTP/1.1 100 Continue", block
        assert resp[1] == "  < HTTP/1.1 200 OK", block
        assert "  > Expect: 100-continue" in block, block
    flows = read_jsonl(jsonl)
    assert len(flows) == 2
    for f in flows:
        assert f["status"] == 200
        assert f["interim"] == [{"status": 100, "reason": "Continue", "httpVersion": "HTTP/1.1",
                                 "headers": []}], f["interim"]
        assert f["requestReceived"] is None and f["responseReceived"] is None
        assert f["request"]["bodySize"] == len(BODY)
    with open(har) as fh:
        entries = json.load(fh)["log"]["entries"]
    assert [e["response"]["_interimResponses"][0]["status"] for e in entries] == [100, 100]


def test_http_client_waits_for_100_continue(proxy_factory, pki, http_upstream):
    """Python's http.client sends the head with Expect, and only after reading
    the 100 from tlspeek sends the body."""
    p = proxy_factory("-v")
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=20)
    conn.putrequest("POST", "http://127.0.0.1:%d/echo" % http_upstream.port)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(len(BODY)))
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    interim = b""
    while b"\r\n\r\n" not in interim:
        chunk = conn.sock.recv(1)
        assert chunk, "tlspeek closed before the interim response: %r" % interim
        interim += chunk
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
    conn.send(BODY)
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read() == BODY
    conn.close()
    out = p.wait_stdout("  < HTTP/1.1 200 OK")
    block = flow_block(out, "POST http://127.0.0.1:%d/echo → 200" % http_upstream.port)
    resp_lines = [l for l in block if l.startswith("  < ")]
    assert resp_lines[:2] == ["  < HTTP/1.1 100 Continue", "  < HTTP/1.1 200 OK"], block


class EarlyHintsServer(TcpServer):
    """Answers each request with 103 Early Hints, 100 Continue, then 200."""

    def handle(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                         b"HTTP/1.1 100 Continue\r\n\r\n"
                         b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: 3\r\nConnection: close\r\n\r\nok\n")
            try:
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)
            except OSError:
                pass


def test_two_interim_responses_in_order(proxy_factory, tmp_path):
    srv = EarlyHintsServer()
    try:
        jsonl = str(tmp_path / "hints.jsonl")
        p = proxy_factory("-v", "--jsonl", jsonl)
        r = curl("-x", p.url, "-D", "-", "http://127.0.0.1:%d/page" % srv.port)
        assert r.returncode == 0, r.stderr.decode()
        got = r.stdout.decode("latin-1")
        assert got.index("HTTP/1.1 103 Early Hints") < got.index("HTTP/1.1 200 OK"), got
        assert got.endswith("ok\n"), got
        p.stop()
        block = flow_block(p.stdout(), "GET http://127.0.0.1:%d/page → 200" % srv.port)
        resp = [l for l in block if l.startswith("  < ")]
        assert resp[:4] == ["  < HTTP/1.1 103 Early Hints", "  < Link: </s.css>; rel=preload",
                            "  < HTTP/1.1 100 Continue", "  < HTTP/1.1 200 OK"], block
        [f] = read_jsonl(jsonl)
        assert [(i["status"], i["reason"]) for i in f["interim"]] == [
            (103, "Early Hints"), (100, "Continue")]
        assert f["interim"][0]["headers"] == [{"name": "Link", "value": "</s.css>; rel=preload"}]
    finally:
        srv.close()


# ---- heads as forwarded -------------------------------------------------------


def test_remove_header_shows_forwarded_head(proxy_factory, pki, https_upstream, tmp_path):
    jsonl, har = str(tmp_path / "edit.jsonl"), str(tmp_path / "edit.har")
    p = proxy_factory("-v", "--jsonl", jsonl, "--har", har,
                      "--remove-header", "~q & ~u /headers:Cookie",
                      "--set-header", "~q & ~u /headers:X-Debug:1",
                      "--remove-header", "~u /headers:Server")
    url = "https://localhost:%d/headers" % https_upstream.port
    r = curl("--cacert", pki.proxy_ca, "-x", p.url, "-D", "-", "-H", "Cookie: session=abc123",
             "-H", "X-Debug: 0", url)
    assert r.returncode == 0, r.stderr.decode()
    head, _, body = r.stdout.decode("latin-1").partition("\r\n\r\n")
    # What the upstream received (it echoes its request head): no Cookie, the new X-Debug.
    assert "abc123" not in body and "cookie" not in body.lower(), body
    assert "X-Debug: 1" in body.splitlines(), body
    assert "X-Debug: 0" not in body, body
    assert "server:" not in head.lower(), head
    p.stop()
    block = heads_only(flow_block(p.stdout(), "GET %s → 200" % url))
    req = [l for l in block if l.startswith("  > ")]
    assert req[0] == "  > GET /headers HTTP/1.1", block
    assert "  > X-Debug: 1" in req and "  > X-Debug: 0" not in req, block
    assert not any(l.lower().startswith("  > cookie") for l in req), block
    # The changes follow the head they belong to, in this order.
    i = block.index(req[-1])
    assert block[i + 1:i + 3] == ["  ~ removed: Cookie", "  ~ set: X-Debug: 1"], block
    assert block[-1] == "  ~ removed: Server", block
    assert not any(l.lower().startswith("  < server") for l in block), block
    [f] = read_jsonl(jsonl)
    names = [h["name"].lower() for h in f["request"]["headers"]]
    assert "cookie" not in names and {"name": "X-Debug", "value": "1"} in f["request"]["headers"]
    got = f["requestReceived"]["headers"]
    assert {"name": "Cookie", "value": "session=abc123"} in got, got
    assert {"name": "X-Debug", "value": "0"} in got, got
    assert "server" not in [h["name"].lower() for h in f["response"]["headers"]]
    assert "server" in [h["name"].lower() for h in f["responseReceived"]["headers"]]
    with open(har) as fh:
        [e] = json.load(fh)["log"]["entries"]
    assert "cookie" not in [h["name"].lower() for h in e["request"]["headers"]]
    assert e["request"]["cookies"] == [], e["request"]["cookies"]


def test_unedited_flow_has_no_change_lines(proxy_factory, pki, https_upstream, tmp_path):
    """Control: the same options, a flow they do not match."""
    jsonl = str(tmp_path / "plain.jsonl")
    p = proxy_factory("-v", "--jsonl", jsonl, "--remove-header", "~q & ~u /headers:Cookie")
    url = "https://localhost:%d/text" % https_upstream.port
    r = curl("--cacert", pki.proxy_ca, "-x", p.url, "-H", "Cookie: session=abc123", url)
    assert r.returncode == 0, r.stderr.decode()
    p.stop()
    block = flow_block(p.stdout(), "GET %s → 200" % url)
    assert "  > Cookie: session=abc123" in block, block
    assert not any(l.startswith("  ~ ") for l in block), block
    [f] = read_jsonl(jsonl)
    assert f["requestReceived"] is None and f["responseReceived"] is None


# ---- re-used transcript files --------------------------------------------------


def test_overwriting_a_transcript_is_stated(proxy_factory, pki, http_upstream, tmp_path):
    old_har, new_jsonl = tmp_path / "old.har", tmp_path / "new.jsonl"
    old_pcap, keys = tmp_path / "old.pcap", tmp_path / "keys.txt"
    old_har.write_text('{"log": "from an earlier run"}\n')
    old_pcap.write_bytes(b"")  # empty: nothing is lost, nothing said
    keys.write_text("CLIENT_RANDOM 00 00\n")
    for f in (old_har, old_pcap, keys):
        os.chmod(f, 0o600)  # no line about the mode: only the one about reuse
    har_size, keys_size = os.path.getsize(old_har), os.path.getsize(keys)
    p = proxy_factory("--har", str(old_har), "--jsonl", str(new_jsonl), "--pcap", str(old_pcap),
                      "--keylog", str(keys))
    r = curl("-x", p.url, "http://127.0.0.1:%d/text" % http_upstream.port)
    assert r.returncode == 0, r.stderr.decode()
    p.stop()
    err = p.stderr()
    assert ("tlspeek: warning: overwriting existing HAR file %s (%d B)\n" % (old_har, har_size)
            in err), err
    assert ("tlspeek: info: key log %s exists (%d B): appending to it\n" % (keys, keys_size)
            in err), err
    assert str(new_jsonl) not in err and str(old_pcap) not in err, err
    assert err.count("overwriting existing") == 1, err
    with open(old_har) as fh:
        assert len(json.load(fh)["log"]["entries"]) == 1
    assert keys.read_text().startswith("CLIENT_RANDOM 00 00\n")
    assert os.path.getsize(old_pcap) > 0
