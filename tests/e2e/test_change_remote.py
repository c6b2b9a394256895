"""--map-remote and --throttle end to end: curl through tlspeek to real local
servers.

--map-remote: a request to one HTTPS origin lands on a second one that has
its own certificate, signed by another CA (trusted with --upstream-ca, or not:
then the client gets a 502 naming the failed verification); the second
server sees the new Host, path and SNI; http:// maps to https:// and back;
requests that are not mapped go on to the connection's own origin.

--throttle: a 1 MiB download at 512k takes at least 2 s while the same
download from an unthrottled host through the same proxy is several times
faster (the ratio of the two, measured in one run); LATENCY delays the first
byte. Bad values of either option exit 2 with a message.
"""
import http.server
import json
import os
import re
import ssl
import threading
import time

import pytest

from conftest import curl, free_port, run, require_program
from upstream_server import payload


class Origin:
    """An HTTP(S) server on 127.0.0.1 that records each request (path, Host)
    and, with TLS, the SNI of each handshake. Answers "NAME PATH"."""

    def __init__(self, name, cert=None):
        self.name = name
        self.requests = []
        self.snis = []
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                origin.requests.append((self.path, self.headers.get("Host")))
                body = ("%s %s" % (origin.name, self.path)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert)
            ctx.sni_callback = lambda sock, name, c: origin.snis.append(name)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def second_pki(tmp_path_factory):
    """A second CA, unknown to the first, and a leaf of it for localhost;
    `both` trusts the first upstream CA and this one."""
    base = str(tmp_path_factory.mktemp("pki2"))
    ca_dir = os.path.join(base, "ca")
    leaf = os.path.join(base, "leaf.pem")
    ca = os.path.join(base, "ca.pem")
    for cmd in (["--ca-dir", ca_dir, "ca", "mint", "localhost", "127.0.0.1", "--out", leaf],
                ["--ca-dir", ca_dir, "ca", "export", ca]):
        r = run(cmd)
        assert r.returncode == 0, r.stderr.decode()
    return {"leaf": leaf, "ca": ca, "dir": base}


@pytest.fixture(scope="module")
def second(second_pki):
    o = Origin("second", second_pki["leaf"])
    yield o
    o.close()


@pytest.fixture(scope="module")
def plain():
    o = Origin("plain")
    yield o
    o.close()


def trust_both(pki, second_pki):
    path = os.path.join(second_pki["dir"], "both.pem")
    with open(path, "wb") as out:
        for f in (pki.upstream_ca, second_pki["ca"]):
            with open(f, "rb") as i:
                out.write(i.read())
    return path


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_jsonl(path, n, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            recs = load_jsonl(path)
            if len(recs) >= n:
                return recs
        time.sleep(0.05)
    raise AssertionError("fewer than %d records in %s" % (n, path))


# ---- --map-remote ---------------------------------------------------------------


def test_map_remote_https_lands_on_second_origin(pki, second_pki, second, https_upstream,
                                                 proxy_factory):
    require_program("curl")
    jsonl = os.path.join(second_pki["dir"], "map.jsonl")
    p = proxy_factory("--upstream-ca", trust_both(pki, second_pki), "--jsonl", jsonl,
                      "--map-remote", "~u /mapped/:https://localhost:%d/v2/" % second.port)
    before = len(second.requests)
    a = "https://localhost:%d" % https_upstream.port
    # One client connection: mapped, then not mapped (back to its own
    # origin), then mapped again.
    r = curl("-x", p.url, "--cacert", pki.proxy_ca, a + "/mapped/x?q=1", "-o", "/dev/stdout",
             a + "/text", "-o", "/dev/stdout", a + "/mapped/y", "-w", "[%{num_connects}]")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert "second /v2/mapped/x?q=1" in out, out
    assert "Hello from the upstream server" in out, out
    assert "second /v2/mapped/y" in out, out
    # -w after each transfer: the connections curl opened for it.
    assert re.findall(r"\[(\d+)\]", out) == ["1", "0", "0"], "one connection to the proxy: " + out
    got = second.requests[before:]
    assert got == [("/v2/mapped/x?q=1", "localhost:%d" % second.port),
                   ("/v2/mapped/y", "localhost:%d" % second.port)], got
    assert second.snis and set(second.snis) == {"localhost"}, second.snis
    line = "map-remote: %s/mapped/x?q=1 -> https://localhost:%d/v2/mapped/x?q=1" % (a, second.port)
    p.wait_stdout(line)
    recs = wait_jsonl(jsonl, 3)
    mapped = [x for x in recs if x.get("actions")]
    assert len(mapped) == 2, recs
    # The record says what was fetched; the action line says from what.
    assert mapped[0]["url"] == "https://localhost:%d/v2/mapped/x?q=1" % second.port, mapped[0]
    assert mapped[0]["actions"] == [line], mapped[0]
    # The head as sent has the new Host; the head as received is kept too.
    host = lambda head: [h["value"] for h in head["headers"] if h["name"] == "Host"]
    assert host(mapped[0]["request"]) == ["localhost:%d" % second.port], mapped[0]
    assert host(mapped[0]["requestReceived"]) == ["localhost:%d" % https_upstream.port]


def test_map_remote_when_the_connections_own_origin_is_down(pki, second_pki, second,
                                                            proxy_factory):
    # Nothing listens at the tunnel's target: tlspeek's connect there (at
    # the ClientHello) fails, yet the mapped request is served; one that is
    # not mapped gets the 502 that names the failure.
    closed = free_port()
    p = proxy_factory("--upstream-ca", trust_both(pki, second_pki),
                      "--map-remote", "~u /a:https://localhost:%d" % second.port)
    before = len(second.requests)
    a = "https://localhost:%d" % closed
    r = curl("-x", p.url, "--cacert", pki.proxy_ca, a + "/a", "-o", "/dev/stdout",
             a + "/b", "-w", "[%{http_code}]")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert "second /a" in out, out
    assert "cannot connect to localhost:%d" % closed in out and out.endswith("[502]"), out
    assert second.requests[before:] == [("/a", "localhost:%d" % second.port)]


def test_map_remote_unverified_second_origin_is_502(pki, second, https_upstream, proxy_factory):
    p = proxy_factory("--map-remote", "~d localhost:https://localhost:%d" % second.port)
    before = len(second.requests)
    r = curl("-x", p.url, "--cacert", pki.proxy_ca, "-w", "\n%{http_code}",
             "https://localhost:%d/text" % https_upstream.port)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert out.endswith("\n502"), out
    assert "certificate for localhost failed verification" in out, out
    assert len(second.requests) == before


def test_map_remote_http_to_https_and_back(pki, second_pki, second, plain, proxy_factory):
    # Nothing listens on the original origins: plain http:// connects only
    # once it knows where to, and that is the mapped origin.
    p = proxy_factory("--upstream-ca", trust_both(pki, second_pki),
                      "--map-remote", "~d nowhere.test:https://localhost:%d/api" % second.port,
                      "--map-remote", "~d elsewhere.test:http://127.0.0.1:%d" % plain.port)
    before, before_plain = len(second.requests), len(plain.requests)
    r = curl("-x", p.url, "http://nowhere.test/users/1", "-o", "/dev/stdout",
             "http://elsewhere.test:8000/a?b", "-o", "/dev/stdout",
             "http://nowhere.test/users/2")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert out == "second /api/users/1plain /a?bsecond /api/users/2", out
    assert second.requests[before:] == [("/api/users/1", "localhost:%d" % second.port),
                                        ("/api/users/2", "localhost:%d" % second.port)]
    assert plain.requests[before_plain:] == [("/a?b", "127.0.0.1:%d" % plain.port)]
    assert "localhost" in second.snis
    p.wait_stdout("map-remote: http://nowhere.test/users/1 -> https://localhost:%d/api/users/1"
                  % second.port)


def test_map_remote_https_to_http_rules_do_not_chain(pki, plain, https_upstream, proxy_factory):
    # The first rule would match the mapped request's new origin (127.0.0.1)
    # if rules were judged on where the last request went: they are judged
    # on the connection's own origin, so /text goes back there.
    p = proxy_factory("--map-remote", "~d 127.0.0.1:http://127.0.0.1:%d/wrong" % plain.port,
                      "--map-remote", "~u /z:http://127.0.0.1:%d/p" % plain.port)
    before = len(plain.requests)
    a = "https://localhost:%d" % https_upstream.port
    r = curl("-x", p.url, "--cacert", pki.proxy_ca, a + "/z", "-o", "/dev/stdout", a + "/text")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert out.startswith("plain /p/z"), out
    assert "Hello from the upstream server" in out, out
    assert plain.requests[before:] == [("/p/z", "127.0.0.1:%d" % plain.port)]


@pytest.mark.parametrize("value, message", [
    ("~d api", "no ':http://' or ':https://' after EXPR"),
    ("~d api:ftp://x", "no ':http://' or ':https://' after EXPR"),
    ("~d api:https://", "no host in the URL"),
    ("~d api:https://h:0", "the port must be a number from 1 to 65535"),
    ("~d api:https://h:70000", "the port must be a number from 1 to 65535"),
    ("~d api:https://h/p?q=1", "may not hold spaces, controls, '?' or '#'"),
    (":https://h", "EXPR is empty"),
    ("~d (:https://h", "bad expression"),
])
def test_map_remote_bad_values_exit_2(value, message):
    r = run(["--map-remote", value])
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "--map-remote" in err and message in err, err


# ---- --throttle -------------------------------------------------------------------


def timed_download(proxy, pki, url):
    """Seconds for the whole body and to its first byte, and its size."""
    r = curl("-x", proxy.url, "--cacert", pki.proxy_ca, "-o", "/dev/null",
             "-w", "%{time_total} %{time_starttransfer} %{size_download}", url)
    assert r.returncode == 0, r.stderr.decode()
    total, first, size = r.stdout.decode().split()
    return float(total), float(first), int(size)


def test_throttle_rate_against_unthrottled_host(pki, https_upstream, proxy_factory):
    # Two names of the one server: "localhost" is throttled, 127.0.0.1 not.
    p = proxy_factory("--throttle", "~d localhost:512k")
    mib = 1024 * 1024
    slow, _, n1 = timed_download(p, pki, "https://localhost:%d/bin/%d" % (https_upstream.port, mib))
    fast, _, n2 = timed_download(p, pki, "https://127.0.0.1:%d/bin/%d" % (https_upstream.port, mib))
    assert n1 == n2 == mib
    print("throttled %.2f s, unthrottled %.3f s, ratio %.1f" % (slow, fast, slow / fast))
    assert slow >= 2.0, "1 MiB at 512 KiB/s cannot take less than 2 s: %.2f" % slow
    assert slow / fast >= 4, (slow, fast)
    p.wait_stdout("throttled: request and response at 512 KiB/s")


def test_throttle_ends_with_its_flow_on_a_keepalive_connection(pki, https_upstream,
                                                               proxy_factory):
    # One connection: a throttled download, then the same size unthrottled.
    p = proxy_factory("--throttle", "~u slow:256k")
    base = "https://localhost:%d/bin/524288" % https_upstream.port
    r = curl("-x", p.url, "--cacert", pki.proxy_ca, base + "?slow", "-o", "/dev/null", base,
             "-o", "/dev/null", "-w", "[%{num_connects} %{time_total} %{size_download}]")
    assert r.returncode == 0, r.stderr.decode()
    got = re.findall(r"\[(\d+) ([\d.]+) (\d+)\]", r.stdout.decode())
    assert [(c, n) for c, _, n in got] == [("1", "524288"), ("0", "524288")], got
    slow, fast = float(got[0][1]), float(got[1][1])
    print("same connection: throttled %.2f s, then %.3f s" % (slow, fast))
    assert slow >= 2.0, slow
    assert slow / fast >= 4, (slow, fast)


def test_throttle_request_body(pki, https_upstream, proxy_factory, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(payload(200000))
    p = proxy_factory("--throttle", "~m POST & ~d localhost:100k")
    times = []
    for host in ("localhost", "127.0.0.1"):
        r = curl("-x", p.url, "--cacert", pki.proxy_ca, "-H", "Expect:", "--data-binary",
                 "@%s" % body, "-w", "[%{time_total}]",
                 "https://%s:%d/upload" % (host, https_upstream.port))
        assert r.returncode == 0, r.stderr.decode()
        out = r.stdout.decode()
        assert out.startswith("got 200000 bytes"), out
        times.append(float(re.search(r"\[([\d.]+)\]", out).group(1)))
    print("upload: throttled %.2f s, unthrottled %.3f s" % tuple(times))
    # The first read may carry up to 64 KiB of the body with the head.
    assert times[0] >= (200000 - 65536) / 102400.0, times
    assert times[0] / times[1] >= 4, times


def test_throttled_client_leaving_early(pki, https_upstream, proxy_factory):
    p = proxy_factory("--throttle", "~d localhost:64k")
    r = curl("-x", p.url, "--cacert", pki.proxy_ca, "-o", "/dev/null",
             "https://localhost:%d/bin/1048576" % https_upstream.port, timeout=1)
    assert r.returncode == 28, r.stderr.decode()  # curl's timeout: it left
    # Everyone else is served as before, throttled or not.
    r = curl("-x", p.url, "--cacert", pki.proxy_ca,
             "https://127.0.0.1:%d/text" % https_upstream.port)
    assert r.returncode == 0 and b"Hello from the upstream server" in r.stdout
    r = curl("-x", p.url, "--cacert", pki.proxy_ca,
             "https://localhost:%d/text" % https_upstream.port)
    assert r.returncode == 0 and b"Hello from the upstream server" in r.stdout


def test_throttle_keeps_bytes_intact(pki, https_upstream, proxy_factory):
    p = proxy_factory("--throttle", "~u /bin/:200k")
    r = curl("-x", p.url, "--cacert", pki.proxy_ca,
             "https://localhost:%d/bin/300000" % https_upstream.port)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == payload(300000)


def test_throttle_latency_delays_first_byte(pki, https_upstream, proxy_factory):
    p = proxy_factory("--throttle", "~d localhost:10m:800ms")
    base = "https://%s:" + str(https_upstream.port) + "/text"
    _, first_slow, _ = timed_download(p, pki, base % "localhost")
    _, first_fast, _ = timed_download(p, pki, base % "127.0.0.1")
    print("first byte: throttled %.3f s, unthrottled %.3f s" % (first_slow, first_fast))
    assert first_slow >= 0.8, first_slow
    assert first_slow / first_fast >= 2, (first_slow, first_fast)
    p.wait_stdout("throttled: request and response at 10 MiB/s + 800 ms latency")


@pytest.mark.parametrize("value, message", [
    ("~d api", "no ':' in it"),
    ("~d api:0", "is neither a RATE"),
    ("~d api:fast", "is neither a RATE"),
    ("~d api:64k:300", "has no unit"),
    ("~d api:64x:300ms", "is not a RATE"),
    (":64k", "EXPR is empty"),
    ("~d (:64k", "bad expression"),
])
def test_throttle_bad_values_exit_2(value, message):
    r = run(["--throttle", value])
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "--throttle" in err and message in err, err
