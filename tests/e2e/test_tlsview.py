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
def demo(tmp_path_factory):
    raw = str(tmp_path_factory.mktemp("demo") / "tlspeek.out")
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
