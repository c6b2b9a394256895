"""The TLS view end to end: the http-vs-https demo, and --handshake/--wire
and -vvv through a running proxy (filters/tls/tlsview.h)."""
import os
import re
import subprocess
import sys

import pytest

from conftest import BIN, ROOT, clean_env, curl, require_program

DEMO = os.path.join(ROOT, "examples", "http-vs-https")
sys.path.insert(0, DEMO)
import sections  # noqa: E402  (the demo's own output parser)

HEXLINE = re.compile(r"^    [0-9a-f]{8}: ")


@pytest.fixture(scope="module")
def demo_raw(tmp_path_factory):
    """Where the demo copies tlspeek's unsplit output (DEMO_RAW_OUT)."""
    return str(tmp_path_factory.mktemp("demo") / "tlspeek.out")


@pytest.fixture(scope="module")
def demo(demo_raw):
    raw = demo_raw
    env = clean_env(TLSPEEK_BIN=BIN, DEMO_RAW_OUT=raw, DEMO_TSHARK="0")
    r = subprocess.run(["sh", os.path.join(DEMO, "run.sh")], capture_output=True, timeout=120,
                       env=env)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, "demo failed (%d):\n%s\n%s" % (r.returncode, out[-3000:],
                                                            r.stderr.decode()[-3000:])
    ports = re.search(r"from http://127\.0\.0\.1:(\d+) and https://localhost:(\d+)", out)
    assert ports, out[:2000]
    with open(raw, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return out, sections.split(text, int(ports.group(1)), int(ports.group(2)))


@pytest.fixture(scope="module")
def demo12(demo, demo_raw):
    """The demo's second tlspeek (--client-tls-max 1.2), split the same way."""
    out, _ = demo
    ports = re.search(r"from http://127\.0\.0\.1:(\d+) and https://localhost:(\d+)", out)
    with open(demo_raw + ".tls12", encoding="utf-8", errors="replace") as f:
        text = f.read()
    return sections.split(text, int(ports.group(1)), int(ports.group(2)))


def test_demo_shows_plain_http_readable(demo):
    out, s = demo
    assert "=== 1. Plain HTTP, as a sniffer on the wire sees it" in out
    lines = [l for b in s["http_wire"] for l in b]
    assert any(re.match(r"^    GET http://127\.0\.0\.1:\d+/app\.js HTTP/1\.1$", l) for l in lines)
    assert "    function greet(name) {" in lines  # the JavaScript, as text


def test_demo_https_records_are_opaque(demo):
    out, s = demo
    js = b"function greet(name)"
    opaque = []
    for b in s["https_wire"]:
        for i, line in enumerate(b):
            if "application_data (23)" in line and "encrypted" in line:
                dump = bytearray()
                for l in b[i + 1:]:
                    if not HEXLINE.match(l):
                        break
                    dump += bytes.fromhex(l[14:53].replace(" ", ""))
                opaque.append(bytes(dump))
    assert opaque, "no hexdumped application_data record in the HTTPS section"
    assert all(len(d) > 0 and js not in d for d in opaque)
    https_text = "\n".join(l for b in s["https_wire"] for l in b)
    assert "function greet" not in https_text  # the plaintext is nowhere on the wire
    assert "CONNECT localhost:" in https_text  # ... but the proxy set-up is


def test_demo_decrypted_body_equals_http_body(demo):
    out, s = demo
    plain = sections.bodies(sections.responses(s["http_wire"], "upstream \u2192 tlspeek"))
    dec = sections.bodies(sections.responses(s["decrypted"], "upstream \u2192 tlspeek"))
    assert len(plain) == 2 and plain == dec
    assert plain[1].startswith(b"\x89PNG")
    assert "is IDENTICAL to the plain-HTTP bodies" in out


def test_demo_dissects_handshake(demo):
    out, s = demo
    hs = "\n".join(l for b in s["handshake"] for l in b)
    assert "server_name (0): localhost" in hs
    assert "JA3 MD5: " in hs and "JA4: t13" in hs
    assert "step 1, ClientHello:" in hs  # --explain


def test_demo_tls12_steps_in_the_clear(demo12):
    """With the client leg at TLS 1.2, steps 1-7 cross the wire as clear
    handshake records; Finished and the HTTP are encrypted."""
    leg = sections.client_leg(demo12["handshake"])
    assert sections.negotiated(leg).startswith("TLSv1.2, TLS_ECDHE_")
    seen = [(step, name, clear) for step, name, _, _, clear in sections.steps(leg)]
    assert [x[:2] for x in seen[:6]] == [
        (1, "ClientHello"), (2, "ServerHello"), (3, "Certificate"), (4, "ServerKeyExchange"),
        (5, "ServerHelloDone"), (6, "ClientKeyExchange")]
    assert all(clear for step, _, clear in seen if step <= 7)
    assert {(7, "ChangeCipherSpec", True), (8, "Finished", False)} <= set(seen)
    wire = "\n".join(l for b in demo12["https_wire"] for l in b
                     if any(d in b[0] for d in sections.CLIENT_LEG))
    # ServerKeyExchange (type 12) and ClientKeyExchange (16) readable in the records
    assert re.search(r"handshake \(22\), TLSv1\.2 \(0x0303\), \d+ bytes \u2014 clear text, "
                     r"readable by anyone\n    00000000: 0c00", wire), wire[:3000]
    assert re.search(r"clear text, readable by anyone\n    00000000: 1000", wire)
    assert "change_cipher_spec (20), TLSv1.2 (0x0303), 1 bytes \u2014 clear text" in wire
    assert sections.app_records(demo12["https_wire"]) > 0


def test_demo_compares_tls12_with_tls13(demo):
    out, s = demo
    assert "=== 5. The client leg at TLS 1.2 next to TLS 1.3: steps 1-9 on the wire" in out
    rows = {int(m.group(1)): m.group(2) for m in re.finditer(r"(?m)^([1-9]) +(.+)$", out)}
    assert rows[3].startswith("Certificate (clear)") and rows[3].endswith("Certificate (encrypted)")
    assert rows[4].startswith("ServerKeyExchange (clear)")
    assert rows[4].endswith("CertificateVerify (encrypted)")
    assert rows[5].startswith("ServerHelloDone (clear)") and rows[5].endswith(" -")
    assert rows[6].startswith("ClientKeyExchange (clear)") and rows[6].endswith(" -")
    assert rows[8].startswith("Finished (encrypted)")
    assert "client leg, TLS 1.3: TLSv1.3, " in out
    assert "=== handshake messages in clear text on the client leg: TLS 1.2 7, TLS 1.3 3" in out


def _check_both_legs(out):
    block = out[out.index("TLS handshake"):]
    block = block[:block.index("\u25b6 fingerprints")]
    leg1, leg2 = block.index("\u25b6 leg 1"), block.index("\u25b6 leg 2")
    assert leg1 < leg2
    one, two = block[leg1:leg2], block[leg2:]
    for leg in (one, two):
        assert re.search(r"  1 ClientHello \xb7 ", leg)
        assert "server_name (0): localhost" in leg
        assert re.search(r"JA3 MD5: [0-9a-f]{32}", leg)
        assert re.search(r"JA4: t1[23]d\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}", leg)
        assert "3 Certificate" in leg and "subject: CN=localhost" in leg
        assert "SHA-256 fingerprint: " in leg
    assert "[encrypted on the wire: a sniffer sees only application_data records here]" in one
    assert "EncryptedExtensions" in two and "CertificateVerify" in two
    assert "upstream certificate verification: ok" in two
    assert "JA3S MD5: " in two


@pytest.mark.parametrize("args", [("--handshake", "--wire"), ("-vvv",)])
def test_proxy_handshake_and_wire(proxy_factory, pki, https_upstream, args):
    p = proxy_factory(*args)
    r = curl("--proxy", p.url, "--cacert", pki.proxy_ca,
             "https://localhost:%d/text" % https_upstream.port)
    assert r.returncode == 0, r.stderr
    out = p.wait_stdout("upstream certificate verification", timeout=15)
    p.wait_stdout("decrypted by tlspeek", timeout=15)
    out = p.stdout()
    _check_both_legs(out)
    assert "on the wire (what a sniffer sees)" in out
    assert re.search(r"record \d+: application_data \(23\), TLSv1\.2 \(0x0303\), \d+ bytes", out)
    # What tlspeek decrypted: the response's block may come after the request's.
    p.wait_stdout("    Hello from the upstream server.", timeout=15)


def test_tshark_agrees_with_fixture_readme():
    """Re-runs tshark on the unit-test fixtures: the JA3 values the C test
    asserts are Wireshark's."""
    require_program("tshark")
    script = os.path.join(ROOT, "tests", "unit", "filters", "tls", "fixtures", "tshark_ref.py")
    r = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_demo_with_web_tells_the_same_story_in_the_browser():
    """run.sh --web PORT: the first tlspeek serves its flow browser; its
    flows are the demo's plain-HTTP and HTTPS fetches, the HTTP one's wire
    is plain bytes, the HTTPS one's is TLS records; Enter ends the demo."""
    import http.client
    import json
    from conftest import free_port
    port = free_port()
    env = clean_env(TLSPEEK_BIN=BIN, DEMO_TSHARK="0")
    demo = subprocess.Popen(["sh", os.path.join(DEMO, "run.sh"), "--web", str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        url = None
        for raw in demo.stdout:  # ends at EOF if the demo fails first
            m = re.search(r"flow browser of the first tlspeek: (http://\S+)", raw.decode())
            if m:
                url = m.group(1)
                break
        assert url, "no web URL; stderr: %s" % demo.stderr.read().decode()[-2000:]
        m = re.match(r"http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]{32})$", url)
        assert m and int(m.group(1)) == port, url
        token = m.group(2)

        def get(path):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", path + ("&" if "?" in path else "?") + "token=" + token)
            r = c.getresponse()
            body = r.read()
            c.close()
            assert r.status == 200, (path, r.status, body[:300])
            return json.loads(body)

        flows = get("/api/flows")["flows"]
        by = {(f["scheme"], f["path"]): f for f in flows}
        assert {("http", "/app.js"), ("http", "/logo.png"), ("https", "/app.js"),
                ("https", "/logo.png")} <= set(by), sorted(by)
        plain = get("/api/flows/%d" % by[("http", "/app.js")]["id"])
        kinds = {w["kind"] for w in plain["conn"]["wire"]}
        assert kinds == {"plain"}, kinds
        # the request line, readable as it crossed the socket
        assert any("/app.js HTTP/1.1" in (w.get("plain") or "") for w in plain["conn"]["wire"])
        tls = get("/api/flows/%d" % by[("https", "/app.js")]["id"])
        kinds = {w["kind"] for w in tls["conn"]["wire"]}
        assert {"Handshake", "ApplicationData"} <= kinds, kinds
        out, err = demo.communicate(b"\n", timeout=60)
        assert demo.returncode == 0, err.decode()[-2000:]
        assert b"=== 1. Plain HTTP" in out
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
