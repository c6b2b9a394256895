"""`tlspeek show FILE`: a transcript read back prints what the live console
printed for the same flows.

Real flows (curl through tlspeek to the local upstream servers: text, a
gzip-encoded JSON upload echoed back, a gzip response, binary bodies, a 1xx
upload, a head edited by --remove-header, plain HTTP, a flow that failed)
are recorded with --har and --jsonl by proxies running at detail 1, 2 and
3; `tlspeek show` at the same detail must print the same lines as that
proxy's console, except for what a transcript cannot know (README.md,
"Reading transcripts back"): a HAR has no client address ("-") and no heads
as received (so no "  ~ " lines). -f narrows like the live -f; broken
files are refused with the line or JSON path named, exit status 2.
"""
import gzip
import json
import os
import re
import subprocess

import pytest

from conftest import BIN, curl, run

TEXT = "Hello from the upstream server. Grüße! 🙂\nSecond line of text.\n".encode()
JSON_DOC = json.dumps({"name": "tlspeek", "items": [1, 2, 3], "ok": True}).encode()
UPLOAD = bytes(range(256)) * 12  # curl -T asks for 100-continue above 1 KiB

ASAN = os.environ.get("TLSPEEK_ASAN") == "1"
CLIENT = re.compile(r"^(?:\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):\d+ (?=→ )")


def closed_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_flows(p, pki, https_upstream, http_upstream, tmp_path):
    """The flows, one curl after another (so the live order is the file
    order); returns nothing: the proxy's console and files hold them."""
    hs = "https://localhost:%d" % https_upstream.port
    hp = "http://127.0.0.1:%d" % http_upstream.port
    gz = tmp_path / "doc.json.gz"
    gz.write_bytes(gzip.compress(JSON_DOC))
    up = tmp_path / "upload.bin"
    up.write_bytes(UPLOAD)
    base = ["--cacert", pki.proxy_ca, "-x", p.url, "-o", os.devnull]
    flows = [
        [hs + "/text"],
        [hs + "/gzip"],
        ["--data-binary", "@" + str(gz), "-H", "Content-Encoding: gzip",
         "-H", "Content-Type: application/json", hs + "/echo"],
        ["--data-binary", "not gzip at all", "-H", "Content-Encoding: gzip",
         "-H", "Content-Type: text/plain", hs + "/echo?undecodable"],
        [hs + "/bin/600"],
        [hs + "/png"],
        ["-T", str(up), hs + "/echo"],  # 100 Continue
        ["-H", "X-Drop: me", hs + "/headers"],  # --remove-header
        [hp + "/json"],
        [hp + "/status/404"],
        ["http://127.0.0.1:%d/nothing-listens" % closed_port()],  # 502, ERROR
    ]
    for extra in flows:
        r = curl(*(base + extra))
        assert r.returncode == 0, (extra, r.stderr)
    return len(flows)


def show(*args, stdin=None):
    return subprocess.run([BIN, "show"] + list(args), capture_output=True, timeout=60,
                          input=stdin)


def live_lines(p, n_flows):
    """The proxy's console, once all flows are shown (the writer is a thread)."""
    p.wait_stdout(" → ERROR ")
    out = p.stdout()
    return out.splitlines()


def no_client(lines):
    return [CLIENT.sub("- ", l) for l in lines]


def no_changes(lines):
    return [l for l in lines if not l.startswith("  ~ ")]


@pytest.fixture(scope="module")
def recorded(pki, https_upstream, http_upstream, tmp_path_factory):
    """Three proxies, at detail 1, 2 and 3, each recording the same flows."""
    from conftest import Proxy
    runs = {}
    for detail in (1, 2, 3):
        d = tmp_path_factory.mktemp("show%d" % detail)
        har, jsonl = str(d / "run.har"), str(d / "run.jsonl")
        p = Proxy(pki, ["--detail", str(detail), "--har", har, "--jsonl", jsonl,
                        "--remove-header", "~q & ~u /headers:X-Drop"])
        try:
            n = run_flows(p, pki, https_upstream, http_upstream, d)
            lines = live_lines(p, n)
        finally:
            rc = p.stop()
        assert rc == 0, p.stderr()
        runs[detail] = (lines, har, jsonl, d)
    return runs


@pytest.mark.parametrize("detail", [1, 2, 3])
def test_jsonl_shows_what_the_console_showed(recorded, detail):
    live, _, jsonl, _ = recorded[detail]
    r = show("--detail", str(detail), jsonl)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr == b""
    got = r.stdout.decode().splitlines()
    assert got == live, "\n".join(["--- live"] + live + ["--- show"] + got)


@pytest.mark.parametrize("detail", [1, 2, 3])
def test_har_shows_what_the_console_showed(recorded, detail):
    """The same, but a HAR knows no client address and no head as received."""
    live, har, _, _ = recorded[detail]
    r = show("-" + "v" * (detail - 1) if detail > 1 else "--detail=1", har)
    assert r.returncode == 0, r.stderr.decode()
    got = r.stdout.decode().splitlines()
    assert got == no_changes(no_client(live)), "\n".join(["--- live"] + live + ["--- show"] + got)
    assert all(l.startswith("- → ") for l in got if not l.startswith(" ")), got


def test_the_flows_are_what_was_asked_for(recorded):
    """The comparison above is not vacuous: every kind of flow is there."""
    live = recorded[3][0]
    text = "\n".join(live)
    for needle in ("→ GET https://localhost:", "/gzip → 200 text/plain 67 B (88 B gzip) ",
                   "/echo → 200 application/json 67 B ", '      "items": [',
                   "    00000000: ", "  < HTTP/1.1 100 Continue", "  ~ removed: X-Drop",
                   "/status/404 → 404 ", " → ERROR ", "  > GET http://127.0.0.1:",
                   "    (gzip: could not decode: "):
        assert needle in text, (needle, text)


def test_detail_0_prints_nothing_and_stdin_works(recorded):
    _, har, jsonl, _ = recorded[1]
    r = show("-q", jsonl)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    with open(jsonl, "rb") as f:
        r = show("-", stdin=f.read())
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == recorded[1][0]
    with open(har, "rb") as f:
        r = show("-", stdin=f.read())
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == no_client(recorded[1][0])


def test_filter_narrows_like_the_live_filter(pki, https_upstream, http_upstream, proxy_factory,
                                             tmp_path):
    """show -v -f EXPR on a JSONL prints what the proxy that recorded it
    printed, running -v -f EXPR (the JSONL itself holds every flow)."""
    expr = "~m 'POST|PUT' | ~bs Grüße"
    jsonl = str(tmp_path / "all.jsonl")
    p = proxy_factory("-v", "-f", expr, "--jsonl", jsonl,
                      "--remove-header", "~q & ~u /headers:X-Drop")
    run_flows(p, pki, https_upstream, http_upstream, tmp_path)
    # -f hides the failed flow: a last flow that matches marks the end.
    curl("--cacert", pki.proxy_ca, "-x", p.url, "-o", os.devnull, "--data", "end",
         "https://localhost:%d/echo?end" % https_upstream.port)
    p.wait_stdout("/echo?end → 200")
    assert p.stop() == 0
    live = p.stdout().splitlines()
    r = show("-v", "-f", expr, jsonl)
    assert r.returncode == 0, r.stderr.decode()
    got = r.stdout.decode().splitlines()
    assert got == live, "\n".join(["--- live"] + live + ["--- show"] + got)
    flow_lines = [l for l in got if not l.startswith(" ")]
    assert len(flow_lines) == 6, flow_lines  # /text, /gzip, two POSTs, the PUT, the end
    assert len(open(jsonl).read().splitlines()) == 12
    r = show("-f", "~d nomatch.example", jsonl)
    assert (r.returncode, r.stdout) == (0, b"")


def test_bodies_cut_when_recorded(proxy_factory, pki, https_upstream, tmp_path):
    """--body-cap cut the bodies kept: show says so, and where; the live
    console (cut at --body-limit only) showed more."""
    jsonl, har = str(tmp_path / "cap.jsonl"), str(tmp_path / "cap.har")
    p = proxy_factory("-vv", "--body-cap", "100", "--jsonl", jsonl, "--har", har)
    hs = "https://localhost:%d" % https_upstream.port
    for path in ("/bin/600", "/gzip"):
        r = curl("--cacert", pki.proxy_ca, "-x", p.url, "-o", os.devnull, hs + path)
        assert r.returncode == 0, r.stderr
    p.wait_stdout("/gzip → 200")
    assert p.stop() == 0
    live = p.stdout()
    assert "(--body-cap" not in live and "    00000250: " in live  # all 600 bytes
    for path in (jsonl, har):
        r = show("-vv", path)
        assert r.returncode == 0, r.stderr.decode()
        out = r.stdout.decode()
        assert "    … body cut at 100 of 600 bytes (--body-cap, when recorded)" in out, out
        assert "    00000060: " in out and "    00000070: " not in out, out
        # 67 decoded bytes of /gzip fit in 100: it was not cut, and decodes as live
        assert "/gzip → 200 text/plain 67 B (88 B gzip) " in out, out
        assert "    Hello from the upstream server. Grüße! 🙂" in out, out
    r = show("-vv", "--body-limit", "16", jsonl)
    assert "    … body cut at 16 of 600 bytes (--body-limit)" in r.stdout.decode()


def test_bad_expression_shows_the_caret(recorded):
    _, _, jsonl, _ = recorded[1]
    r = show("-f", "~m GET ~d", jsonl)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "bad expression in -f: column 8: expected a regular expression after ~d" in err, err
    assert "  ~m GET ~d\n         ^" in err, err


def test_colour_on_request(recorded):
    _, _, jsonl, _ = recorded[1]
    assert "\x1b[" in show("--color", jsonl).stdout.decode()
    assert "\x1b[" not in show("--no-color", jsonl).stdout.decode()


# ---- files that are not transcripts -----------------------------------------------

def refused(path, *args):
    r = show(*(list(args) + [str(path)]))
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = r.stderr.decode()
    assert err.startswith("tlspeek: error: %s: " % path) and err.count("\n") == 1, err
    return r.stdout.decode(), err.strip()


def test_malformed_jsonl_names_the_line(recorded, tmp_path):
    _, _, jsonl, _ = recorded[1]
    lines = open(jsonl).read().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n" + lines[1][:40] + "\n" + lines[2] + "\n")
    out, err = refused(bad)
    assert re.search(r": line 2, column \d+: malformed JSON$", err), err
    assert len(out.splitlines()) == 1  # the flow before it is shown

    rec = json.loads(lines[2])
    rec["status"] = "200"
    bad.write_text("\n".join(lines[:2] + [json.dumps(rec)]) + "\n")
    out, err = refused(bad)
    assert err.endswith(": line 3: status: expected a number"), err
    assert len(out.splitlines()) == 2

    rec = json.loads(lines[0])
    rec["response"]["headers"][1]["value"] = 7
    bad.write_text(json.dumps(rec) + "\n")
    _, err = refused(bad)
    assert err.endswith(": line 1: response.headers[1].value: expected a string"), err

    rec = json.loads(lines[0])
    rec["response"]["body"], rec["response"]["bodyEncoding"] = "not*base64", "base64"
    bad.write_text(json.dumps(rec) + "\n")
    _, err = refused(bad)
    assert err.endswith(": line 1: response.body: invalid base64"), err


def test_malformed_har_names_the_json_path(recorded, tmp_path):
    _, har, _, _ = recorded[1]
    doc = json.load(open(har))
    doc["log"]["entries"][3]["response"]["status"] = "200"
    bad = tmp_path / "bad.har"
    bad.write_text(json.dumps(doc, indent=2))
    out, err = refused(bad)
    assert err.endswith(": log.entries[3].response.status: expected a number"), err
    assert len(out.splitlines()) == 3

    doc = json.load(open(har))
    del doc["log"]["entries"][0]["request"]["url"]
    bad.write_text(json.dumps(doc))
    _, err = refused(bad)
    assert err.endswith(": log.entries[0].request.url: missing"), err

    data = open(har).read()
    bad.write_text(data[:len(data) // 2])
    _, err = refused(bad)
    assert re.search(r": line \d+, column \d+: malformed JSON", err), err

    bad.write_text(json.dumps({"log": {"version": "1.2"}}, indent=1))
    _, err = refused(bad)
    assert err.endswith(": log.entries: missing"), err


def test_files_that_are_not_transcripts(tmp_path):
    cases = [
        (b"", "empty: not a HAR or JSONL transcript"),
        (b"GET / HTTP/1.1\r\n", "line 1 starts with 'G': not a HAR or JSONL transcript "
                                "(both are JSON objects)"),
        (bytes.fromhex("89504e470d0a1a0a"), "line 1 starts with byte 0x89: not a HAR or JSONL "
                                            "transcript (both are JSON objects)"),
        (b'{"name": "a package.json"}\n', 'line 1: not a HAR or JSONL transcript: a JSON object '
                                          'without "log" (HAR) or "url" (JSONL)'),
        (b"\n\n  {\n", "line 4, column 1: malformed JSON (it ends too early)"),
    ]
    for i, (data, message) in enumerate(cases):
        path = tmp_path / ("f%d.txt" % i)
        path.write_bytes(data)
        _, err = refused(path)
        assert err == "tlspeek: error: %s: %s" % (path, message), err
    _, err = refused(tmp_path / "missing.har")
    assert err.endswith("missing.har: cannot open it: No such file or directory"), err
    _, err = refused(tmp_path)
    assert err.endswith(": cannot read it: Is a directory"), err


def test_har_over_the_cap_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.har"
    with open(big, "wb") as f:
        f.write(b'{\n  "log": {"entries": [\n')
        f.truncate(1024 * 1024 * 1024 + 1)  # sparse: nothing to write
    _, err = refused(big)
    assert err.endswith(": larger than 1 GiB, the cap of a HAR file (JSONL files stream, "
                        "whatever their size)"), err


# Runs tlspeek show in a child and prints that child's peak RSS (KiB) alone.
PEAK_RSS = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.stderr.decode())
"""


def test_jsonl_streams_in_bounded_memory(recorded, tmp_path):
    """A JSONL of 100 MB is read a line at a time: tlspeek's peak memory
    stays far below the file's size."""
    _, _, jsonl, _ = recorded[1]
    lines = open(jsonl, "rb").read().splitlines(keepends=True)
    chunk = b"".join(lines) * 64
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as f:
        while f.tell() < 100 * 1000 * 1000:
            f.write(chunk)
    for detail in ("-q", "-vv"):
        r = subprocess.run(["/usr/bin/python3", "-c", PEAK_RSS, BIN, "show", detail, str(big)],
                           capture_output=True, timeout=600)
        rc, peak_kib, err = r.stdout.decode().split(" ", 2)
        assert (rc, err.strip()) == ("0", ""), r.stdout
        # ASan keeps freed memory in quarantine (256 MB): no bound to check there.
        assert ASAN or int(peak_kib) < 60 * 1024, (detail, peak_kib)


def test_usage_errors():
    for args, needle in ((["--har", "x.har", "a.jsonl"], "'--har' is not an option of tlspeek show"),
                         ([], "tlspeek show needs a file"),
                         (["a.har", "b.har"], "tlspeek show reads one file, not 'b.har' as well")):
        r = show(*args)
        assert r.returncode == 2 and needle in r.stderr.decode(), (args, r.stderr)
    r = show("--help")
    assert r.returncode == 0 and b"Usage: tlspeek show" in r.stdout
    r = run(["--help"])
    assert b"tlspeek show" in r.stdout
