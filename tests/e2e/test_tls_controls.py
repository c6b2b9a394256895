"""TLS controls: protocol versions per leg (--client-tls-min/max,
--upstream-tls-min/max, --tls-min/max), --ciphers/--ciphersuites/--groups,
and --client-cert against an nginx upstream that requires one
(proxy/tlsopts.h)."""
import os
import re
import ssl
import subprocess

import pytest

from conftest import TcpServer, clean_env, curl, free_port, require_program, run, wait_port


def test_client_leg_12_shows_key_exchange_messages(proxy_factory, pki, https_upstream):
    p = proxy_factory("--handshake", "-q", "--client-tls-max", "1.2")
    r = curl("--proxy", p.url, "--cacert", pki.proxy_ca, "-w", "%{http_code}", "-o", os.devnull,
             "https://localhost:%d/text" % https_upstream.port)
    assert r.returncode == 0 and r.stdout == b"200", r.stderr
    out = p.wait_stdout("leg 2", timeout=15)
    leg1 = out[out.index("\u25b6 leg 1"):out.index("\u25b6 leg 2")]
    assert re.search(r"negotiated: TLSv1\.2, ", leg1), leg1[:600]
    assert re.search(r"  4 ServerKeyExchange \xb7 tlspeek \u2192 client", leg1), leg1
    assert re.search(r"  6 ClientKeyExchange \xb7 client \u2192 tlspeek", leg1), leg1
    # The upstream leg keeps its own default (TLS 1.3 here).
    assert re.search(r"leg 2 .*\n  negotiated: TLSv1\.3", out)


def test_client_tls_min_13_refuses_a_tls12_client(proxy_factory, pki, https_upstream):
    p = proxy_factory("--client-tls-min", "1.3")
    url = "https://localhost:%d/text" % https_upstream.port
    r = curl("--proxy", p.url, "--cacert", pki.proxy_ca, "--tls-max", "1.2", url)
    assert r.returncode == 35, (r.returncode, r.stderr)  # CURLE_SSL_CONNECT_ERROR
    r = curl("--proxy", p.url, "--cacert", pki.proxy_ca, url)
    assert r.returncode == 0 and r.stdout.startswith(b"Hello from the upstream"), r.stderr


def _s_client_tls10(proxy, pki, port):
    """A TLS 1.0 client through the explicit proxy (CONNECT), asking /text."""
    openssl = require_program("openssl")
    cmd = [openssl, "s_client", "-proxy", "127.0.0.1:%d" % proxy.port,
           "-connect", "localhost:%d" % port, "-servername", "localhost",
           "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", pki.proxy_ca, "-ign_eof"]
    req = b"GET /text HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    return subprocess.run(cmd, input=req, capture_output=True, timeout=30, env=clean_env())


def test_tls10_client_only_with_client_tls_min_10(proxy_factory, pki, https_upstream):
    p = proxy_factory()
    r = _s_client_tls10(p, pki, https_upstream.port)
    assert b"Hello from the upstream" not in r.stdout
    assert "security level" not in p.stderr()

    p10 = proxy_factory("--client-tls-min", "1.0")
    assert re.search(r"warning: client leg: TLS 1\.0 allowed, so OpenSSL's security level is "
                     r"lowered to 0 on that leg", p10.stderr()), p10.stderr()
    assert "upstream leg: TLS" not in p10.stderr()
    r = _s_client_tls10(p10, pki, https_upstream.port)
    out = r.stdout.decode("utf-8", "replace")
    assert re.search(r"Protocol\s*: TLSv1\n", out), out[-2000:]
    assert "Hello from the upstream server." in out, out[-2000:]


@pytest.mark.parametrize("args,message", [
    (["--tls-min", "1.4"], "bad --tls-min '1.4' (use 1.0, 1.1, 1.2 or 1.3)"),
    (["--upstream-tls-max", "TLSv1.2"], "bad --upstream-tls-max 'TLSv1.2'"),
    (["--client-tls-min", "1.3", "--client-tls-max", "1.2"],
     "the client leg's TLS minimum 1.3 is above its maximum 1.2"),
    (["--tls-min", "1.3", "--upstream-tls-max", "1.2"],
     "the upstream leg's TLS minimum 1.3 is above its maximum 1.2"),
    (["--ciphers", "NO-SUCH-CIPHER"], "bad --ciphers 'NO-SUCH-CIPHER': no cipher match"),
    (["--ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_NOPE"],
     "unknown TLS 1.3 ciphersuite 'TLS_NOPE'"),
    (["--groups", "X25519:P-999"], "bad --groups 'X25519:P-999': unknown group 'P-999'"),
    (["--client-cert", "/nonexistent/client.pem"],
     "cannot read --client-cert file '/nonexistent/client.pem'"),
])
def test_bad_tls_options_exit_2(tmp_path, args, message):
    r = run(["--ca-dir", str(tmp_path / "ca"), "-l", "127.0.0.1:0"] + args)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert message in err, err


def test_good_lists_are_used(proxy_factory, pki, https_upstream):
    p = proxy_factory("--handshake", "-q", "--client-tls-max", "1.2",
                      "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256", "--groups", "P-384")
    r = curl("--proxy", p.url, "--cacert", pki.proxy_ca, "-o", os.devnull,
             "https://localhost:%d/text" % https_upstream.port)
    assert r.returncode == 0, r.stderr
    out = p.wait_stdout("leg 2", timeout=15)
    assert re.search(r"negotiated: TLSv1\.2, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "
                     r"key exchange (secp384r1|P-384)", out), out[:1500]


# ---- --client-cert against nginx with ssl_verify_client on -----------------------

def _openssl(*args):
    r = subprocess.run([require_program("openssl")] + list(args), capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def _client_cert(d, ca_dir, name, cn):
    """A client certificate (clientAuth) signed by the CA in ca_dir (made by
    tlspeek), with its key, in one PEM file."""
    key, csr, crt = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".crt"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-subj", "/CN=" + cn, "-out", csr)
    _openssl("x509", "-req", "-in", csr, "-CA", os.path.join(ca_dir, "tlspeek-ca-cert.pem"),
             "-CAkey", os.path.join(ca_dir, "tlspeek-ca.pem"), "-set_serial", "7", "-days", "2",
             "-extfile", ext, "-out", crt)
    pem = os.path.join(d, name + ".pem")
    with open(pem, "w") as out:
        out.write(open(crt).read() + open(key).read())
    return pem, crt, key


class Nginx:
    """nginx on 127.0.0.1 with TLS that requires a client certificate from
    client_ca (ssl_verify_client on); answers 200 naming the certificate."""

    def __init__(self, d, leaf, client_ca):
        self.port = free_port()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
daemon off;
master_process off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %(d)s/body; proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi; uwsgi_temp_path %(d)s/uwsgi; scgi_temp_path %(d)s/scgi;
  server {
    listen 127.0.0.1:%(port)d ssl;
    server_name localhost;
    ssl_certificate %(leaf)s;
    ssl_certificate_key %(leaf)s;
    ssl_client_certificate %(ca)s;
    ssl_verify_client on;
    location / { default_type text/plain; return 200 "client certificate: $ssl_client_s_dn\\n"; }
  }
}
""" % {"d": d, "port": self.port, "leaf": leaf, "ca": client_ca})
        self.proc = subprocess.Popen([require_program("nginx"), "-c", conf, "-p", d],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_port(self.port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def mtls(tmp_path_factory, pki):
    d = str(tmp_path_factory.mktemp("mtls"))
    ca_dir = os.path.join(d, "client-ca")
    r = run(["--ca-dir", ca_dir, "ca", "export", os.path.join(d, "client-ca.pem")])
    assert r.returncode == 0, r.stderr.decode()
    good, crt, key = _client_cert(d, ca_dir, "client", "tlspeek-test-client")
    _, _, other_key = _client_cert(d, ca_dir, "other", "other")
    mismatched = os.path.join(d, "mismatched.pem")
    with open(mismatched, "w") as f:
        f.write(open(crt).read() + open(other_key).read())
    server = Nginx(d, pki.leaf, os.path.join(d, "client-ca.pem"))
    yield {"good": good, "mismatched": mismatched, "port": server.port,
           "client_ca": os.path.join(d, "client-ca.pem")}
    server.stop()


def _get(proxy, pki, port):
    return curl("--proxy", proxy.url, "--cacert", pki.proxy_ca, "-w", "\n%{http_code}",
                "https://localhost:%d/" % port)


@pytest.mark.parametrize("spec", ["{good}", "localhost={good}"])
def test_client_cert_reaches_nginx(proxy_factory, pki, mtls, spec):
    p = proxy_factory("--client-cert", spec.format(**mtls))
    r = _get(p, pki, mtls["port"])
    body = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    assert body.endswith("\n200"), body
    assert "client certificate: CN=tlspeek-test-client" in body


@pytest.mark.parametrize("args", [[], ["--client-cert", "other.test={good}"],
                                  ["--upstream-tls-max", "1.2"]])
def test_without_client_cert_nginx_gives_502_naming_the_cause(proxy_factory, pki, mtls, args):
    p = proxy_factory(*[a.format(**mtls) for a in args])
    r = _get(p, pki, mtls["port"])
    body = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    assert body.endswith("\n502"), body
    assert ("the server localhost:%d requested a client certificate and tlspeek has none for "
            "it: use --client-cert [localhost=]FILE" % mtls["port"]) in body, body
    assert "requested a client certificate" in p.stderr()


def test_client_cert_key_mismatch_exits_2(tmp_path, mtls):
    r = run(["--ca-dir", str(tmp_path / "ca"), "--client-cert", mtls["mismatched"]])
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert "--client-cert %s: the key does not match the certificate" % mtls["mismatched"] in err


class StrictTlsServer(TcpServer):
    """Python's ssl server requiring a client certificate from `ca`: unlike
    nginx it refuses a bad one with a TLS alert (TLS 1.2: in the handshake;
    TLS 1.3: after it, when tlspeek reads the answer to its request)."""

    def __init__(self, pki, ca, tls_max):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.leaf)
        self.ctx.load_verify_locations(cafile=ca)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.maximum_version = tls_max
        super().__init__()

    def handle(self, conn):
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as t:
                t.recv(4096)
                body = b"client certificate accepted\n"
                t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                          % len(body) + body)
        except (ssl.SSLError, OSError):
            pass
        finally:
            conn.close()


@pytest.mark.parametrize("tls_max", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_rejected_client_cert_gives_502_naming_it(proxy_factory, pki, mtls, tls_max):
    # The server trusts the upstream CA, not the one that signed mtls["good"].
    strict = StrictTlsServer(pki, pki.upstream_ca, tls_max)
    try:
        p = proxy_factory("--client-cert", mtls["good"])
        r = _get(p, pki, strict.port)
        body = r.stdout.decode()
        assert r.returncode == 0, r.stderr
        assert body.endswith("\n502"), body
        assert ("the server localhost:%d rejected the client certificate from --client-cert %s "
                "(alert unknown CA)" % (strict.port, mtls["good"])) in body, body
    finally:
        strict.close()


@pytest.mark.parametrize("tls_max", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_accepted_client_cert_strict_server(proxy_factory, pki, mtls, tls_max):
    strict = StrictTlsServer(pki, mtls["client_ca"], tls_max)
    try:
        p = proxy_factory("--client-cert", mtls["good"])
        r = _get(p, pki, strict.port)
        assert r.stdout.decode() == "client certificate accepted\n\n200", r.stderr
    finally:
        strict.close()
