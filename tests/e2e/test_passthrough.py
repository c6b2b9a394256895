"""End-to-end tests for what tlspeek does when a client rejects its
certificate: the untrusted-CA report (always), and --auto-passthrough (off by
default; per client program and host, for --auto-passthrough-ttl seconds,
listed on SIGUSR1).

Real clients (curl, wget, Python ssl) go through the explicit proxy to the
local HTTPS origin of upstream_server.py, everything on 127.0.0.1. A client
"that does not trust tlspeek" is one given only the upstream's CA (as a
pinned app would be): it rejects tlspeek's certificates.

Run from tests/e2e:
  TLSPEEK_BIN=/path/to/tlspeek /usr/bin/python3 -m pytest -q test_passthrough.py
"""
import re
import signal
import subprocess
import time

from conftest import clean_env, curl
from test_modes import cert_der, sha256_hex, tls_through_connect, wait_for
from upstream_server import TEXT

UNTRUSTED = "does not trust tlspeek's CA: it rejected the certificate for localhost"


def curl_untrusting(pki, p, url):
    """curl through the explicit proxy, trusting only the upstream CA."""
    return curl("--cacert", pki.upstream_ca, "-x", p.url, url)


def curl_issuer(pki, p, url):
    """curl trusting only tlspeek's CA; returns (CompletedProcess, the
    issuers of the certificates it was shown)."""
    r = curl("--cacert", pki.proxy_ca, "-x", p.url, "-o", "/dev/null", "-w", "%{certs}", url)
    return r, re.findall(r"^Issuer:(.*)$", r.stdout.decode(), re.M)


def proxy_ca_subject(pki):
    r = subprocess.run(["openssl", "x509", "-in", pki.proxy_ca, "-noout", "-subject",
                        "-nameopt", "oneline"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip().split("=", 1)[1].strip()


def test_default_reports_and_keeps_intercepting(pki, https_upstream, proxy_factory):
    up = https_upstream.port
    p = proxy_factory()
    url = "https://localhost:%d/text" % up
    for _ in range(3):  # a client that retries
        r = curl_untrusting(pki, p, url)
        assert r.returncode in (35, 60), (r.returncode, r.stderr)
    wait_for(lambda: p.stdout().count("client TLS handshake for localhost failed") >= 3,
             "three rejected handshakes on the console")
    # One line naming the cause and the fix, on the console and on stderr,
    # however often the same client retries.
    out, err = p.stdout(), p.stderr()
    lines = [l for l in out.splitlines() if UNTRUSTED in l]
    assert len(lines) == 1, out
    assert re.search(r"client 127\.0\.0\.1 \(JA4 \w+\) " + re.escape(UNTRUSTED) +
                     r" \(alert unknown_ca\); install the CA in that client \(tlspeek ca info\)",
                     lines[0]), lines[0]
    assert len([l for l in err.splitlines() if "warning: " in l and UNTRUSTED in l]) == 1, err
    assert "passing localhost through" not in out + err

    # The same program and host, now trusting tlspeek's CA: intercepted.
    r, issuers = curl_issuer(pki, p, url)
    assert r.returncode == 0, r.stderr.decode()
    assert issuers and issuers[0].strip() == proxy_ca_subject(pki), issuers
    p.wait_stdout("→ GET https://localhost:%d/text → 200" % up)
    assert "passed through" not in p.stdout()


def test_wget_without_the_ca_is_reported(pki, https_upstream, proxy_factory):
    """wget (GnuTLS) checks the certificate after the handshake and closes
    without an alert: that close is reported too."""
    up = https_upstream.port
    p = proxy_factory()
    env = clean_env(https_proxy=p.url)
    r = subprocess.run(["wget", "--no-config", "-q", "-O", "-", "--tries", "1",
                        "--ca-certificate", pki.upstream_ca, "https://localhost:%d/text" % up],
                       capture_output=True, timeout=60, env=env)
    assert r.returncode != 0, r
    out = wait_for(lambda: UNTRUSTED in p.stdout() and p.stdout(), "the untrusted-CA line")
    line = [l for l in out.splitlines() if UNTRUSTED in l]
    assert len(line) == 1, out
    assert re.search(r"\((it closed the connection right after the handshake, before sending "
                     r"any request|alert \w+( after the handshake)?)\); install the CA in that "
                     r"client \(tlspeek ca info\)", line[0]), line[0]
    wait_for(lambda: UNTRUSTED in p.stderr(), "the warning on stderr")


def test_auto_passthrough_per_program_expires(pki, https_upstream, proxy_factory):
    up = https_upstream.port
    leaf = cert_der(pki.leaf)
    p = proxy_factory("--auto-passthrough", "--auto-passthrough-ttl", "2")
    url = "https://localhost:%d/text" % up
    r = curl_untrusting(pki, p, url)
    assert r.returncode in (35, 60), (r.returncode, r.stderr)
    decision = re.compile(r"passing localhost through for 2 s for client 127\.0\.0\.1 \(JA4 \w+\) "
                          r"because it rejected tlspeek's certificate \(alert unknown_ca\); "
                          r"trust the CA \(tlspeek ca info\) — or send SIGUSR1 to list, "
                          r"restart to clear")
    wait_for(lambda: decision.search(p.stdout()), "the decision on the console")
    wait_for(lambda: decision.search(p.stderr()), "the decision on stderr")

    # Within the window: that curl gets the upstream's own certificate.
    r = curl_untrusting(pki, p, url)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == TEXT
    # Another client program (Python's ssl: another JA4) is still intercepted.
    der, body = tls_through_connect(p.port, "localhost:%d" % up, "localhost", pki.proxy_ca)
    assert body == TEXT
    assert sha256_hex(der) != sha256_hex(leaf)
    p.wait_stdout("→ GET https://localhost:%d/text → 200" % up)
    assert p.stdout().count("(TLS passed through, not intercepted)") == 1, p.stdout()

    p.proc.send_signal(signal.SIGUSR1)
    listed = wait_for(lambda: re.search(r"warning: auto-passthrough: localhost for client "
                                        r"127\.0\.0\.1 \(JA4 \w+\), [12] s left "
                                        r"\(alert unknown_ca\)", p.stderr()),
                      "the SIGUSR1 list")
    assert listed

    # After the ttl: intercepted again (curl trusting tlspeek's CA succeeds,
    # shown a certificate issued by tlspeek's CA).
    time.sleep(2.2)
    r, issuers = curl_issuer(pki, p, url)
    assert r.returncode == 0, r.stderr.decode()
    assert issuers and issuers[0].strip() == proxy_ca_subject(pki), issuers
    assert p.stdout().count("(TLS passed through, not intercepted)") == 1, p.stdout()
    p.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: "auto-passthrough: no host is passed through" in p.stderr(),
             "the empty SIGUSR1 list")


def test_no_auto_passthrough_is_deprecated(pki, https_upstream, proxy_factory):
    up = https_upstream.port
    p = proxy_factory("--no-auto-passthrough")
    assert "--no-auto-passthrough is deprecated" in p.stderr(), p.stderr()
    url = "https://localhost:%d/text" % up
    for _ in range(2):
        r = curl_untrusting(pki, p, url)
        assert r.returncode in (35, 60), (r.returncode, r.stderr)
    r = curl("--cacert", pki.proxy_ca, "-x", p.url, url)
    assert r.returncode == 0, r.stderr.decode()
    p.wait_stdout("→ GET https://localhost:%d/text → 200" % up)
    assert "passed through" not in p.stdout()
