"""HTTP/2 through tlspeek (proxy/session_h2.c, proxy/codec/h2.c): curl, nghttp,
h2load and Node against nginx over TLS, with h2 on (HTTP/2 on both legs) and
with an HTTP/1.1-only server (an h2 client translated)."""
import json
import os
import re
import subprocess

import pytest

from conftest import clean_env, curl, free_port, require_program, wait_port


class Nginx:
    """nginx on 127.0.0.1 over TLS: one server with HTTP/2 (`h2`), one with
    HTTP/1.1 only (`h1`); static files in `root`; the access log says which
    protocol each request came with."""

    def __init__(self, d, leaf):
        self.d = d
        self.h2_port, self.h1_port, self.h2c_port = free_port(), free_port(), free_port()
        self.goaway_port = free_port()
        self.root = os.path.join(d, "www")
        os.makedirs(self.root, exist_ok=True)
        self.access_log = os.path.join(d, "access.log")
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
daemon off;
master_process off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 256; }
http {
  log_format proto '$server_port $request_method $request_uri [$http_x_h2_test] $server_protocol $status';
  access_log %(d)s/access.log proto;
  client_body_temp_path %(d)s/body; proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi; uwsgi_temp_path %(d)s/uwsgi; scgi_temp_path %(d)s/scgi;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:%(h2)d ssl http2;
    server_name localhost;
    ssl_certificate %(leaf)s;
    ssl_certificate_key %(leaf)s;
    root %(root)s;
    location /trailer/ { alias %(root)s/; add_trailer x-checksum abc123 always; }
  }
  server {
    listen 127.0.0.1:%(goaway)d ssl http2;
    server_name localhost;
    ssl_certificate %(leaf)s;
    ssl_certificate_key %(leaf)s;
    keepalive_requests 3;
    root %(root)s;
  }
  server {
    listen 127.0.0.1:%(h2c)d http2;
    root %(root)s;
  }
  server {
    listen 127.0.0.1:%(h1)d ssl;
    server_name localhost;
    ssl_certificate %(leaf)s;
    ssl_certificate_key %(leaf)s;
    root %(root)s;
  }
}
""" % {"d": d, "h2": self.h2_port, "h1": self.h1_port, "h2c": self.h2c_port, "goaway": self.goaway_port, "leaf": leaf, "root": self.root})
        self.proc = subprocess.Popen([require_program("nginx"), "-c", conf, "-p", d],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_port(self.h2_port)
        wait_port(self.h1_port)
        wait_port(self.h2c_port)
        wait_port(self.goaway_port)

    def log_lines(self):
        with open(self.access_log) as f:
            return f.read().splitlines()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def nginx(tmp_path_factory, pki):
    d = str(tmp_path_factory.mktemp("nginx-h2"))
    n = Nginx(d, pki.leaf)
    for i in range(8):
        with open(os.path.join(n.root, "f%d.bin" % i), "wb") as f:
            f.write(os.urandom(1000 + i * 70000))
    with open(os.path.join(n.root, "index.html"), "w") as f:
        f.write("<html>hello over h2</html>\n")
    yield n
    n.stop()


def _file(nginx, i):
    with open(os.path.join(nginx.root, "f%d.bin" % i), "rb") as f:
        return f.read()


def _h2_curl(proxy, pki, out_dir, urls, *extra):
    args = ["--http2", "-v", "--cacert", pki.proxy_ca, "-x", proxy.url, "--parallel",
            "--parallel-immediate"] + list(extra)
    for i, u in enumerate(urls):
        args += [u, "-o", os.path.join(out_dir, "out%d" % i)]
    return curl(*args)


def test_curl_h2_both_legs_explicit(proxy_factory, pki, nginx, tmp_path):
    har = str(tmp_path / "flows.har")
    jsonl = str(tmp_path / "flows.jsonl")
    p = proxy_factory("--har", har, "--jsonl", jsonl)
    urls = ["https://localhost:%d/f%d.bin" % (nginx.h2_port, i) for i in range(8)]
    r = _h2_curl(p, pki, str(tmp_path), urls)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "ALPN: server accepted h2" in err or "ALPN, server accepted to use h2" in err, err
    for i in range(8):
        with open(str(tmp_path / ("out%d" % i)), "rb") as f:
            assert f.read() == _file(nginx, i), "f%d.bin differs" % i
    lines = [l for l in nginx.log_lines() if l.startswith("%d GET /f" % nginx.h2_port)]
    assert len(lines) >= 8 and all(l.endswith("HTTP/2.0 200") for l in lines[-8:]), lines
    p.wait_stdout("/f7.bin → 200")
    out = p.stdout()
    for i in range(8):
        assert "GET https://localhost:%d/f%d.bin → 200" % (nginx.h2_port, i) in out, out
    assert p.stop() == 0
    entries = json.load(open(har))["log"]["entries"]
    assert len(entries) == 8
    for e in entries:
        assert e["request"]["httpVersion"] == "HTTP/2.0"
        assert e["response"]["httpVersion"] == "HTTP/2.0"
        names = [h["name"] for h in e["request"]["headers"]]
        assert ":path" in names and ":authority" in names  # listed as Chrome does
    assert "client leg HTTP/2 (ALPN h2), upstream leg HTTP/2 (ALPN h2)" in p.stderr()
    records = [json.loads(l) for l in open(jsonl) if l.strip()]
    flows = [r for r in records if r.get("request")]
    assert len(flows) == 8, records
    assert all(r["request"]["httpVersion"] == "HTTP/2.0" for r in flows)


def test_h1_only_action_gives_an_h2_client_http11(proxy_factory, pki, nginx, tmp_path):
    """--replace changes HTTP/1.1 flows only: a client offering h2 and http/1.1 gets
    http/1.1 (so the rewrite applies), and nginx sees HTTP/1.1 too."""
    p = proxy_factory("--replace", "~u /index.html:/h2/H2-REPLACED/")
    r = _h2_curl(p, pki, str(tmp_path), ["https://localhost:%d/index.html" % nginx.h2_port])
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "ALPN: server accepted http/1.1" in err or "using HTTP/1.1" in err, err
    body = open(str(tmp_path / "out0"), "rb").read()
    with open(os.path.join(nginx.root, "index.html"), "rb") as f:
        original = f.read()
    assert b"h2" in original, original
    assert body == original.replace(b"h2", b"H2-REPLACED"), body
    assert nginx.log_lines()[-1].endswith("HTTP/1.1 200"), nginx.log_lines()[-1:]
    p.wait_stdout("replaced: response body")


def test_curl_h2_reverse(proxy_factory, pki, nginx, tmp_path):
    p = proxy_factory("-m", "reverse:https://localhost:%d" % nginx.h2_port)
    args = ["--http2", "-v", "--cacert", pki.proxy_ca, "--resolve",
            "localhost:%d:127.0.0.1" % p.port, "--parallel"]
    for i in range(4):
        args += ["https://localhost:%d/f%d.bin" % (p.port, i), "-o", str(tmp_path / ("r%d" % i))]
    r = curl(*args)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "server accepted h2" in err or "server accepted to use h2" in err, err
    for i in range(4):
        assert open(str(tmp_path / ("r%d" % i)), "rb").read() == _file(nginx, i)
    assert nginx.log_lines()[-1].endswith("HTTP/2.0 200")


def test_h2_block_and_set_header(proxy_factory, pki, nginx, tmp_path):
    p = proxy_factory("-v", "--block", "~u /f1.bin", "--set-header",
                      "~q & ~u /f0.bin:x-h2-test:yes", "--redact", "x-secret")
    urls = ["https://localhost:%d/f0.bin" % nginx.h2_port,
            "https://localhost:%d/f1.bin" % nginx.h2_port]
    r = _h2_curl(p, pki, str(tmp_path), urls, "-w", "%{http_code}\n", "-H", "x-secret: s3cret")
    assert r.returncode == 0, r.stderr.decode()
    codes = sorted(r.stdout.decode().split())
    assert codes == ["200", "403"], codes
    assert open(str(tmp_path / "out0"), "rb").read() == _file(nginx, 0)
    assert b"blocked by --block" in open(str(tmp_path / "out1"), "rb").read()
    assert nginx.log_lines()[-1].startswith("%d GET /f0.bin [yes] HTTP/2.0 200" % nginx.h2_port)
    assert not any("/f1.bin" in l for l in nginx.log_lines()[-1:])
    view = p.wait_stdout("/f0.bin → 200")
    assert "  > x-secret: <redacted>" in view and "s3cret" not in view, view
    assert "  ~ set: x-h2-test: yes" in view, view
    assert re.search(r"GET https://localhost:\d+/f1\.bin → 403", view), view


def test_h2load_reverse(proxy_factory, pki, nginx):
    h2load = require_program("h2load")
    p = proxy_factory("-q", "-m", "reverse:https://localhost:%d" % nginx.h2_port)
    r = subprocess.run([h2load, "-n", "2000", "-c", "4", "-m", "32",
                        "https://127.0.0.1:%d/index.html" % p.port],
                       capture_output=True, timeout=120, env=clean_env())
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed",
                  out)
    assert m, out
    assert m.group(4) == "2000" and m.group(5) == "0", out
    assert "h2" in re.search(r"Application protocol: (\S+)", out).group(1)


def test_nghttp_h2_only_client_to_http11_upstream(proxy_factory, pki, nginx, tmp_path):
    """nghttp speaks only h2; nginx's second server only HTTP/1.1: the client
    leg is h2, the upstream leg HTTP/1.1, the requests go one after another."""
    nghttp = require_program("nghttp")
    p = proxy_factory("-m", "reverse:https://localhost:%d" % nginx.h1_port)
    before = len(nginx.log_lines())
    r = subprocess.run([nghttp, "-n", "-s", "https://127.0.0.1:%d/f2.bin" % p.port,
                        "https://127.0.0.1:%d/f3.bin" % p.port,
                        "https://127.0.0.1:%d/index.html" % p.port],
                       capture_output=True, timeout=60, env=clean_env(SSL_CERT_FILE=pki.proxy_ca))
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    new = nginx.log_lines()[before:]
    assert len(new) == 3 and all(l.endswith("HTTP/1.1 200") for l in new), new
    # Bodies, byte for byte (nghttp writes them to stdout).
    for i in (2, 3):
        r = subprocess.run([nghttp, "https://127.0.0.1:%d/f%d.bin" % (p.port, i)],
                           capture_output=True, timeout=60, env=clean_env())
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout == _file(nginx, i)
    p.wait_stdout("/index.html → 200")


NODE_H2_CONNECT = r"""
const http = require('http'), http2 = require('http2'), tls = require('tls'), fs = require('fs');
const crypto = require('crypto');
const [proxyPort, host, port, ca, ...paths] = process.argv.slice(2);
const req = http.request({host: '127.0.0.1', port: +proxyPort, method: 'CONNECT',
                          path: `${host}:${port}`});
req.on('connect', (res, socket) => {
  const client = http2.connect(`https://${host}:${port}`, {createConnection: () =>
    tls.connect({socket, servername: host, ALPNProtocols: ['h2'], ca: fs.readFileSync(ca)})});
  client.on('error', e => { console.error('ERR', e.message); process.exit(2); });
  let left = paths.length; const out = {};
  for (const p of paths) {
    const s = client.request({':path': p});
    const chunks = [];
    s.on('response', h => { out[p] = {status: h[':status']}; });
    s.on('data', c => chunks.push(c));
    s.on('end', () => {
      out[p].sha = crypto.createHash('sha256').update(Buffer.concat(chunks)).digest('hex');
      out[p].alpn = client.alpnProtocol;
      if (--left === 0) { console.log(JSON.stringify(out)); client.close(); }
    });
  }
});
req.end();
"""


@pytest.mark.parametrize("upstream", ["h2", "h1"])
def test_node_h2_only_client_through_connect(proxy_factory, pki, nginx, tmp_path, upstream):
    """Node's http2.connect (h2 only) through a CONNECT tunnel: against nginx
    with h2 (h2 on both legs) and against HTTP/1.1-only nginx (translated)."""
    import hashlib
    node = require_program("node")
    script = tmp_path / "h2connect.js"
    script.write_text(NODE_H2_CONNECT)
    port = nginx.h2_port if upstream == "h2" else nginx.h1_port
    p = proxy_factory()
    before = len(nginx.log_lines())
    paths = ["/f1.bin", "/f4.bin", "/index.html"]
    r = subprocess.run([node, str(script), str(p.port), "localhost", str(port), pki.proxy_ca]
                       + paths, capture_output=True, timeout=60, env=clean_env())
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    out = json.loads(r.stdout.decode())
    for i in (1, 4):
        assert out["/f%d.bin" % i] == {"status": 200, "alpn": "h2",
                                       "sha": hashlib.sha256(_file(nginx, i)).hexdigest()}
    new = nginx.log_lines()[before:]
    proto = "HTTP/2.0" if upstream == "h2" else "HTTP/1.1"
    assert len(new) == 3 and all(l.endswith(proto + " 200") for l in new), new
    want = ("client leg HTTP/2 (ALPN h2), upstream leg %s" %
            ("HTTP/2 (ALPN h2)" if upstream == "h2" else "HTTP/1.1 (ALPN http/1.1)"))
    assert want in p.stderr(), p.stderr()


def test_handshake_says_each_legs_protocol(proxy_factory, pki, nginx):
    p = proxy_factory("--handshake")
    r = curl("--http2", "--cacert", pki.proxy_ca, "-x", p.url, "-o", os.devnull,
             "https://localhost:%d/index.html" % nginx.h2_port)
    assert r.returncode == 0, r.stderr.decode()
    p.wait_stdout("protocol (ALPN): client leg h2, upstream leg h2 (the upstream chose h2, "
                  "so the client got h2)")
    r = curl("--http1.1", "--cacert", pki.proxy_ca, "-x", p.url, "-o", os.devnull,
             "https://localhost:%d/index.html" % nginx.h2_port)
    assert r.returncode == 0, r.stderr.decode()
    p.wait_stdout("protocol (ALPN): client leg http/1.1, upstream leg http/1.1")


def _h2_tls_socket(port, ca):
    import socket
    import ssl
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                        server_hostname="localhost")
    assert s.selected_alpn_protocol() == "h2"
    return s


def _frames(data):
    """(type, flags, stream, payload) of each complete frame in `data`."""
    out = []
    while len(data) >= 9:
        n = int.from_bytes(data[:3], "big")
        if len(data) < 9 + n:
            break
        out.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7fffffff,
                    data[9:9 + n]))
        data = data[9 + n:]
    return out


def _read_all(s):
    buf = b""
    while True:
        try:
            chunk = s.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def test_malformed_frame_ends_connection_with_goaway(proxy_factory, pki, nginx, tmp_path):
    p = proxy_factory("-m", "reverse:https://localhost:%d" % nginx.h2_port)
    s = _h2_tls_socket(p.port, pki.proxy_ca)
    # The preface, SETTINGS, then a SETTINGS frame on stream 1 (RFC 9113
    # §6.5: a connection error of type PROTOCOL_ERROR).
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
              + b"\x00\x00\x00\x04\x00\x00\x00\x00\x01")
    frames = _frames(_read_all(s))
    goaway = [f for f in frames if f[0] == 7]
    assert goaway, frames
    assert int.from_bytes(goaway[0][3][4:8], "big") == 1  # PROTOCOL_ERROR
    err = p.stderr()
    lines = [l for l in err.splitlines() if "client sent malformed HTTP/2" in l]
    assert len(lines) == 1, err
    assert re.search(r"session \d+: 127\.0\.0\.1:\d+: client sent malformed HTTP/2: ", lines[0])
    # Everyone else is served.
    r = curl("--http2", "--cacert", pki.proxy_ca, "--resolve", "localhost:%d:127.0.0.1" % p.port,
             "https://localhost:%d/index.html" % p.port)
    assert r.returncode == 0 and b"hello over h2" in r.stdout, r.stderr


def test_trailers_relayed(proxy_factory, pki, nginx, tmp_path):
    nghttp = require_program("nghttp")
    har, jsonl = str(tmp_path / "t.har"), str(tmp_path / "t.jsonl")
    p = proxy_factory("-v", "--har", har, "--jsonl", jsonl,
                      "-m", "reverse:https://localhost:%d" % nginx.h2_port)
    r = subprocess.run([nghttp, "-v", "https://127.0.0.1:%d/trailer/index.html" % p.port],
                       capture_output=True, timeout=60, env=clean_env())
    out = r.stdout.decode()
    assert r.returncode == 0, out
    assert re.search(r"recv \(stream_id=\d+\) x-checksum: abc123", out), out
    p.wait_stdout("  < trailer x-checksum: abc123")
    assert p.stop() == 0
    entry = json.load(open(har))["log"]["entries"][0]
    assert entry["response"]["_trailers"] == [{"name": "x-checksum", "value": "abc123"}]
    rec = [json.loads(l) for l in open(jsonl) if l.strip()][-1]
    assert rec["trailers"] == [{"name": "x-checksum", "value": "abc123"}]


def test_h2c_prior_knowledge_connect_tunnel(proxy_factory, pki, nginx, tmp_path):
    """curl --http2-prior-knowledge through a CONNECT tunnel (-p) to nginx's
    h2c server: the preface is recognised, both legs speak h2c."""
    har = str(tmp_path / "h2c.har")
    p = proxy_factory("--har", har)
    before = len(nginx.log_lines())
    r = curl("--http2-prior-knowledge", "-v", "-p", "-x", p.url,
             "http://127.0.0.1:%d/f5.bin" % nginx.h2c_port, "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr.decode()
    assert open(str(tmp_path / "out"), "rb").read() == _file(nginx, 5)
    new = nginx.log_lines()[before:]
    assert len(new) == 1 and new[0].endswith("HTTP/2.0 200"), new
    p.wait_stdout("GET http://127.0.0.1:%d/f5.bin → 200" % nginx.h2c_port)
    assert "client leg HTTP/2 in clear (h2c, prior knowledge), upstream leg h2c" in p.stderr()
    assert p.stop() == 0
    e = json.load(open(har))["log"]["entries"][0]
    assert e["request"]["httpVersion"] == "HTTP/2.0"


def test_h2c_prior_knowledge_reverse(proxy_factory, pki, nginx):
    """nghttp (h2c with prior knowledge for http:// URLs) to a reverse
    listener: the upstream is asked in HTTP/1.1 over TLS."""
    nghttp = require_program("nghttp")
    p = proxy_factory("-m", "reverse:https://localhost:%d" % nginx.h1_port)
    before = len(nginx.log_lines())
    r = subprocess.run([nghttp, "http://127.0.0.1:%d/f6.bin" % p.port], capture_output=True,
                       timeout=60, env=clean_env())
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == _file(nginx, 6)
    new = nginx.log_lines()[before:]
    assert len(new) == 1 and new[0].endswith("HTTP/1.1 200"), new


def test_pcap_h2_dissected_by_tshark(proxy_factory, pki, nginx, tmp_path):
    """--pcap carries the client leg's decrypted HTTP/2 bytes as one TCP
    stream: tshark (decode-as http2 on the server port) reads the paths."""
    tshark = require_program("tshark")
    pcap = str(tmp_path / "h2.pcap")
    p = proxy_factory("--pcap", pcap)
    r = _h2_curl(p, pki, str(tmp_path), ["https://localhost:%d/index.html" % nginx.h2_port,
                                         "https://localhost:%d/f2.bin" % nginx.h2_port])
    assert r.returncode == 0, r.stderr.decode()
    assert p.stop() == 0
    out = subprocess.run([tshark, "-r", pcap, "-d", "tcp.port==%d,http2" % nginx.h2_port,
                          "-Y", "http2.headers.path", "-T", "fields", "-e",
                          "http2.headers.path", "-e", "http2.header.name"],
                         capture_output=True, timeout=60, env=clean_env())
    text = out.stdout.decode()
    assert out.returncode == 0, out.stderr.decode()
    paths = sorted(l.split("\t")[0] for l in text.splitlines() if l.strip())
    assert paths == ["/f2.bin", "/index.html"], text
    assert ":authority" in text and "user-agent" in text, text


GRPC_CLIENT = r"""
import sys, grpc
port, ca = int(sys.argv[1]), open(sys.argv[2], "rb").read()
creds = grpc.ssl_channel_credentials(root_certificates=ca)
ch = grpc.secure_channel("127.0.0.1:%d" % port, creds,
                         options=(("grpc.ssl_target_name_override", "localhost"),))
ident = lambda b: b
unary = ch.unary_unary("/test.Echo/Unary", request_serializer=ident, response_deserializer=ident)
stream = ch.unary_stream("/test.Echo/Stream", request_serializer=ident, response_deserializer=ident)
r, call = unary.with_call(b"\x08\x96\x01\x12\x05hello", timeout=20)
print("unary", r.hex(), dict(call.trailing_metadata()).get("x-served-by"))
print("stream", " ".join(m.hex() for m in stream(b"\x08\x01", timeout=20)))
"""


def test_grpc_unary_and_server_streaming(proxy_factory, pki, tmp_path):
    """A gRPC unary and a server-streaming call (python3-grpcio) through
    reverse mode: both succeed, and -vv shows each message's protobuf
    fields and the grpc-status trailer."""
    import sys
    pytest.importorskip("grpc")
    server = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__),
                                                            "grpc_server.py"), pki.leaf],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        port = int(re.match(r"READY (\d+)", server.stdout.readline().decode()).group(1))
        p = proxy_factory("-vv", "-m", "reverse:https://localhost:%d" % port)
        script = tmp_path / "client.py"
        script.write_text(GRPC_CLIENT)
        r = subprocess.run([sys.executable, str(script), str(p.port), pki.proxy_ca],
                           capture_output=True, timeout=60, env=clean_env())
        out = r.stdout.decode()
        assert r.returncode == 0, out + r.stderr.decode()
        assert "unary 0a05776f726c64102a grpc-test" in out, out
        assert "stream 080112036e3d31 080212036e3d32 080312036e3d33" in out, out
        view = p.wait_stdout("/test.Echo/Stream → 200 application/grpc")
        assert "POST https://localhost/test.Echo/Unary → 200 application/grpc" in view
        for line in ("    gRPC message 1: 9 bytes", '      1: 150 (varint)',
                     '      2: "hello"', '      1: "world"', '      2: 42 (varint)',
                     "    gRPC message 3: 7 bytes", '      2: "n=3"',
                     "  < trailer grpc-status: 0", "  < trailer x-served-by: grpc-test"):
            assert line in view, view
    finally:
        server.kill()
        server.wait()


NODE_SLOW_AND_RESET = r"""
const http = require('http'), http2 = require('http2'), tls = require('tls'), fs = require('fs');
const crypto = require('crypto');
const [proxyPort, host, port, ca] = process.argv.slice(2);
const sha = b => crypto.createHash('sha256').update(b).digest('hex');
const req = http.request({host: '127.0.0.1', port: +proxyPort, method: 'CONNECT',
                          path: `${host}:${port}`});
req.on('connect', (res, socket) => {
  const client = http2.connect(`https://${host}:${port}`, {createConnection: () =>
    tls.connect({socket, servername: host, ALPNProtocols: ['h2'], ca: fs.readFileSync(ca)})});
  client.on('error', e => { console.error('ERR', e.message); process.exit(2); });
  const out = {};
  // A stream nobody reads yet: it must not stall the others.
  const slow = client.request({':path': '/f7.bin'});
  slow.pause();
  const slowChunks = [];
  // A stream the client resets once its response began.
  const cut = client.request({':path': '/f6.bin'});
  cut.on('response', () => cut.close(http2.constants.NGHTTP2_CANCEL));
  cut.on('data', () => {});
  cut.on('error', () => {});
  let left = 3;
  for (const p of ['/f0.bin', '/f1.bin', '/f2.bin']) {
    const s = client.request({':path': p});
    const chunks = [];
    s.on('data', c => chunks.push(c));
    s.on('end', () => {
      out[p] = sha(Buffer.concat(chunks));
      if (--left === 0) {
        out.others_done_while_slow_unread = slowChunks.length === 0;
        slow.on('data', c => slowChunks.push(c));
        slow.on('end', () => {
          out['/f7.bin'] = sha(Buffer.concat(slowChunks));
          console.log(JSON.stringify(out));
          client.close();
        });
        slow.resume();
      }
    });
  }
});
req.end();
"""


def test_slow_stream_and_reset_stream(proxy_factory, pki, nginx, tmp_path):
    """One stream left unread does not stall the others; a stream the client
    resets ends its flow with the reset, and the connection goes on."""
    import hashlib
    node = require_program("node")
    script = tmp_path / "slow.js"
    script.write_text(NODE_SLOW_AND_RESET)
    p = proxy_factory()
    r = subprocess.run([node, str(script), str(p.port), "localhost", str(nginx.h2_port),
                        pki.proxy_ca], capture_output=True, timeout=60, env=clean_env())
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    out = json.loads(r.stdout.decode())
    assert out.pop("others_done_while_slow_unread") is True
    for i in (0, 1, 2, 7):
        assert out["/f%d.bin" % i] == hashlib.sha256(_file(nginx, i)).hexdigest()
    view = p.wait_stdout("/f7.bin → 200")
    # f6.bin (420 kB) cannot complete inside the stream's 64 KiB window
    # before the client's RST_STREAM.
    assert ("GET https://localhost:%d/f6.bin → ERROR the client reset the HTTP/2 stream "
            "(CANCEL)" % nginx.h2_port) in view, view


def test_upstream_goaway_mid_connection(proxy_factory, pki, nginx, tmp_path):
    """nginx ends each HTTP/2 connection with GOAWAY after 3 requests: the
    client's connection through tlspeek is ended the same way, and curl's
    next requests go on a new one; every body arrives."""
    p = proxy_factory()
    args = ["--http2", "--cacert", pki.proxy_ca, "-x", p.url]
    for i in range(8):
        args += ["https://localhost:%d/f%d.bin" % (nginx.goaway_port, i % 4),
                 "-o", str(tmp_path / ("g%d" % i))]
    r = curl("-v", *args)
    assert r.returncode == 0, r.stderr.decode()
    for i in range(8):
        assert os.path.exists(str(tmp_path / ("g%d" % i))), r.stderr.decode()
        assert open(str(tmp_path / ("g%d" % i)), "rb").read() == _file(nginx, i % 4)
    sessions = p.stderr().count("client leg HTTP/2 (ALPN h2), upstream leg HTTP/2")
    assert sessions >= 3, p.stderr()  # 3 + 3 + 2 requests: three connections


def _frame(ftype, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + \
        stream.to_bytes(4, "big") + payload


def _hpack_literal(name, value):
    """A literal header field without indexing, new name, no Huffman
    (RFC 7541 §6.2.2), for lengths below 2^14."""
    def length(n):
        if n < 127:
            return bytes([n])
        n -= 127
        out = [127]
        while n >= 128:
            out.append((n & 0x7f) | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out)
    return b"\x00" + length(len(name)) + name + length(len(value)) + value


def _request_block(path, authority, extra=()):
    block = b"\x82\x87" + _hpack_literal(b":path", path) + \
        _hpack_literal(b":authority", authority)
    for name, value in extra:
        block += _hpack_literal(name, value)
    return block


def _headers_frames(stream, block, end_stream=True):
    """HEADERS then CONTINUATION frames of at most 16384 bytes."""
    chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)] or [b""]
    out = b""
    for i, c in enumerate(chunks):
        flags = (0x4 if i == len(chunks) - 1 else 0) | (0x1 if i == 0 and end_stream else 0)
        out += _frame(1 if i == 0 else 9, flags, stream, c)
    return out


def test_header_list_cap_resets_one_stream(proxy_factory, pki, nginx):
    """A request whose header list passes 64 KiB (40 fields of 2000 bytes,
    sent over HEADERS and CONTINUATION) resets that stream with one line on
    stderr; the next stream on the same connection is answered."""
    p = proxy_factory("-m", "reverse:https://localhost:%d" % nginx.h2_port)
    s = _h2_tls_socket(p.port, pki.proxy_ca)
    auth = b"localhost:%d" % p.port
    big = [(b"x-h%d" % i, b"b" * 2000) for i in range(40)]
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b"")
              + _headers_frames(1, _request_block(b"/index.html", auth, big))
              + _headers_frames(3, _request_block(b"/index.html", auth)))
    s.settimeout(5)
    buf, frames = b"", []
    while not any(f[0] == 0 and f[2] == 3 and f[1] & 1 for f in frames):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        frames = _frames(buf)
    rst = [f for f in frames if f[0] == 3 and f[2] == 1]
    assert rst, frames
    body = b"".join(f[3] for f in frames if f[0] == 0 and f[2] == 3)
    assert body == b"<html>hello over h2</html>\n", frames
    s.close()
    err = p.stderr()
    assert re.search(r"session \d+: 127\.0\.0\.1:\d+: HTTP/2 stream 1 reset: its header list is "
                     r"over 64 KiB \(SETTINGS_MAX_HEADER_LIST_SIZE\)", err), err
    assert len([l for l in err.splitlines() if "stream 1 " in l]) == 1, err


def test_client_offering_both_gets_http11_from_http11_upstream(proxy_factory, pki, nginx,
                                                                tmp_path):
    """curl offers h2 and http/1.1; the upstream speaks only HTTP/1.1: the
    client leg mirrors it (no translation needed)."""
    p = proxy_factory()
    r = curl("--http2", "-v", "--cacert", pki.proxy_ca, "-x", p.url,
             "https://localhost:%d/f2.bin" % nginx.h1_port, "-o", str(tmp_path / "o"))
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "server accepted http/1.1" in err or "server accepted to use http/1.1" in err, err
    assert open(str(tmp_path / "o"), "rb").read() == _file(nginx, 2)
    assert "client leg HTTP/2" not in p.stderr()
