"""End-to-end tests of --replace (PCRE2 substitution in bodies) and of filter
ABI 2 (plugins that edit heads, replace bodies, answer requests and pass
connections through), with real clients (python http.client, curl) against a
real local server.

What each test proves:
- a gzip JSON response rewritten by --replace reaches the client as valid
  JSON, identity-encoded, with a Content-Length that fits and no ETag; the
  console's action line says what changed (deflate too);
- with ~q the request body is rewritten, a chunked request arriving at the
  server with a correct Content-Length;
- a chunked response is sent with a length instead;
- a body over --body-cap, or one that does not decode, goes through untouched
  with a warning and an action line; a rule that matches nothing changes
  nothing;
- bad --replace arguments exit 2 naming the problem (PCRE2's message and
  offset for the regex);
- the json_field example (ABI 2) rewrites a field; the v1 examples, built
  against the ABI 1 header, still load and work;
- a test plugin uses every ABI 2 call: header edits both ways, a local answer,
  a passthrough.
"""
import gzip
import hashlib
import http.client
import http.server
import json
import os
import ssl
import subprocess
import threading
import time
import zlib

import pytest

from conftest import ROOT, clean_env, curl, free_port, require_program, run

EXAMPLES = os.path.join(ROOT, "build", "examples")
JSON_FIELD = os.path.join(EXAMPLES, "json_field.so")
TAG_MARKER_V1 = os.path.join(EXAMPLES, "v1", "tag_marker.so")

USER = {"name": "ann", "admin": False, "roles": ["reader"], "note": "x" * 300}
ENCODED = {}  # Content-Encoding -> the document so encoded (by the brotli and zstd programs)


def compress_with(program, data):
    """`brotli -c` or `zstd -c` (Python's standard library has neither)."""
    r = subprocess.run([program, "-c"], input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout
BIG = b"".join(hashlib.sha256(b"%d" % i).hexdigest().encode() for i in range(4096))  # 256 KiB


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, body, headers=(), status=200):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def chunked(self, parts, headers=()):
        self.send_response(200)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Trailer", "X-Check")
        self.end_headers()
        for p in parts:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
        self.wfile.write(b"0\r\nX-Check: done\r\n\r\n")

    def do_GET(self):
        doc = json.dumps(USER).encode()
        jtype = ("Content-Type", "application/json")
        if self.path == "/user.gz":
            self.reply(gzip.compress(doc), [jtype, ("Content-Encoding", "gzip"),
                                            ("ETag", '"v1"'), ("Content-MD5", "x")])
        elif self.path == "/user.deflate":
            self.reply(zlib.compress(doc), [jtype, ("Content-Encoding", "deflate")])
        elif self.path in ("/user.br", "/user.zstd"):
            coding = self.path.split(".")[1]
            self.reply(ENCODED[coding], [jtype, ("Content-Encoding", coding)])
        elif self.path == "/user.chunked":
            self.chunked([doc[:50], doc[50:]], [jtype])
        elif self.path == "/big":
            self.reply(BIG, [("Content-Type", "text/plain")])
        elif self.path == "/big.chunked":
            self.chunked([BIG[i:i + 10000] for i in range(0, len(BIG), 10000)])
        elif self.path == "/broken.gz":
            self.reply(b"this is not gzip at all", [jtype, ("Content-Encoding", "gzip")])
        elif self.path == "/badchunks":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n")
            self.wfile.flush()
            time.sleep(0.2)  # a read of its own, after the head
            self.wfile.write(b"zz\r\nnot a chunk size\r\n")
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/plain":
            self.reply(b"MARK in an identity body\n", [("Content-Type", "text/plain"),
                                                      ("Server", "origin")])
        else:
            self.reply(json.dumps({"path": self.path,
                                   "headers": dict(self.headers.items())}).encode(), [jtype])

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen = {"body": body.decode("latin-1"), "content_length": self.headers.get("Content-Length"),
                "transfer_encoding": self.headers.get("Transfer-Encoding"),
                "content_encoding": self.headers.get("Content-Encoding")}
        self.reply(json.dumps(seen).encode(), [("Content-Type", "application/json")])


@pytest.fixture(scope="module")
def origin():
    doc = json.dumps(USER).encode()
    ENCODED["br"] = compress_with(require_program("brotli"), doc)
    ENCODED["zstd"] = compress_with(require_program("zstd"), doc)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


@pytest.fixture(scope="module")
def tls_origin(pki):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.leaf)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


@pytest.fixture(scope="module")
def examples():
    r = subprocess.run(["make", "-C", ROOT, "examples"], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    for so in (JSON_FIELD, TAG_MARKER_V1):
        assert os.path.exists(so), so


def get(proxy, port, path, method="GET", body=None, headers=None, chunked=False):
    """One request through the proxy (absolute-form); returns (response, body)."""
    c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    c.request(method, "http://127.0.0.1:%d%s" % (port, path), body=body, headers=headers or {},
              encode_chunked=chunked)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def action_lines(out):
    return [l.strip()[2:].strip() for l in out.splitlines() if l.strip().startswith("↳")]


# ---- --replace on responses -------------------------------------------------------------

@pytest.mark.parametrize("path,coding,wire", [
    ("/user.gz", "gzip", lambda d: gzip.compress(d)),
    ("/user.deflate", "deflate", lambda d: zlib.compress(d)),
    ("/user.br", "br", lambda d: ENCODED["br"]),
    ("/user.zstd", "zstd", lambda d: ENCODED["zstd"]),
])
def test_replace_encoded_json_response(path, coding, wire, origin, proxy_factory, tmp_path):
    jsonl = str(tmp_path / "flows.jsonl")
    p = proxy_factory("--replace", '~u /user:/"admin": false/"admin": true/', "--jsonl", jsonl)
    r, body = get(p, origin, path)
    assert r.status == 200
    assert r.getheader("Content-Encoding") is None, r.getheaders()
    assert r.getheader("ETag") is None and r.getheader("Content-MD5") is None, r.getheaders()
    assert int(r.getheader("Content-Length")) == len(body)
    doc = json.loads(body)
    assert doc == dict(USER, admin=True)
    received = len(wire(json.dumps(USER).encode()))
    line = "replaced: response body, 1 match of /\"admin\": false/ (%s decoded, sent identity, " \
           "%d -> %d bytes)" % (coding, received, len(body))
    out = p.wait_stdout(line)
    assert "[replaced]" in out, out
    assert p.stop() == 0
    with open(jsonl) as f:
        rec = json.loads(f.readline())
    assert rec["actions"] == [line], rec.get("actions")


def test_replace_chunked_response_gets_a_length(origin, proxy_factory):
    p = proxy_factory("--replace", '~u /user:|"(name)": "ann"|"$1": "bob"|')
    r, body = get(p, origin, "/user.chunked")
    assert r.getheader("Transfer-Encoding") is None, r.getheaders()
    assert r.getheader("Trailer") is None, r.getheaders()
    assert int(r.getheader("Content-Length")) == len(body)
    assert json.loads(body) == dict(USER, name="bob")
    p.wait_stdout('replaced: response body, 1 match of |"(name)": "ann"| (identity, ')


def test_replace_inside_tls_with_curl(tls_origin, proxy_factory, pki):
    """An intercepted HTTPS response, every match (two rules in order)."""
    p = proxy_factory("--replace", "~d localhost:/r(ea)der/wr$1ter/",
                      "--replace", "~d localhost:/x/y/")
    r = curl("--cacert", pki.proxy_ca, "-x", p.url, "-D", "-",
             "https://localhost:%d/user.gz" % tls_origin)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.rpartition(b"\r\n\r\n")  # after the CONNECT answer
    assert b"content-encoding" not in head.lower(), head
    assert b"content-length: %d" % len(body) in head.lower(), head
    assert json.loads(body) == dict(USER, roles=["wreater"], note="y" * 300)
    p.wait_stdout("1 match of /r(ea)der/; 300 matches of /x/ (gzip decoded, sent identity")


def test_no_match_leaves_the_response_untouched(origin, proxy_factory):
    p = proxy_factory("--replace", "~u /user:/nothing-like-this/x/")
    r, body = get(p, origin, "/user.gz")
    assert r.getheader("Content-Encoding") == "gzip" and r.getheader("ETag") == '"v1"'
    assert json.loads(gzip.decompress(body)) == USER
    out = p.wait_stdout("/user.gz → 200")
    assert "replaced" not in out, out


# ---- --replace on requests ---------------------------------------------------------------

@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_replace_request_body_with_q(chunked, origin, proxy_factory):
    p = proxy_factory("--replace", "~q & ~m POST:/secret-(\\d+)/public-${1}0/")
    sent = b"token=secret-1&again=secret-22"
    body = iter([sent[:10], sent[10:]]) if chunked else sent
    r, data = get(p, origin, "/echo", "POST", body,
                  {"Content-Type": "application/x-www-form-urlencoded"}, chunked=chunked)
    seen = json.loads(data)
    assert seen["body"] == "token=public-10&again=public-220", seen
    assert seen["content_length"] == str(len("token=public-10&again=public-220")), seen
    assert seen["transfer_encoding"] is None, seen
    p.wait_stdout("replaced: request body, 2 matches of /secret-(\\d+)/ (identity, %d -> 32 bytes)"
                  % len(sent))


def test_request_rule_leaves_responses_alone(origin, proxy_factory):
    p = proxy_factory("--replace", "~q:/admin/ADMIN/")
    r, body = get(p, origin, "/user.gz")
    assert r.getheader("Content-Encoding") == "gzip"
    assert json.loads(gzip.decompress(body)) == USER


# ---- untouched: over the cap, undecodable -------------------------------------------------

@pytest.mark.parametrize("path", ["/big", "/big.chunked"])
def test_over_cap_passes_through_with_a_warning(path, origin, proxy_factory):
    p = proxy_factory("--body-cap", "64k", "--replace", "~u /big:/a/A/")
    r, body = get(p, origin, path)
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(BIG).hexdigest()
    out = p.wait_stdout("replaced: not applied: response body over --body-cap (64 KiB), "
                        "passed on untouched")
    assert "replaced: response body," not in out
    assert "body over --body-cap (64 KiB), passed on untouched" in p.stderr(), p.stderr()
    assert "warn" in p.stderr()


def test_undecodable_body_passes_through_with_a_warning(origin, proxy_factory):
    p = proxy_factory("--replace", "~u /broken:/not/NOT/")
    r, body = get(p, origin, "/broken.gz")
    assert body == b"this is not gzip at all"
    assert r.getheader("Content-Encoding") == "gzip"
    p.wait_stdout("replaced: not applied: response body does not decode as gzip")
    assert "does not decode as gzip" in p.stderr(), p.stderr()


def test_broken_held_response_gets_a_502(origin, proxy_factory):
    """The upstream breaks while its response is held: nothing of it reached
    the client, which gets a 502 naming the cause instead of a cut answer."""
    p = proxy_factory("--replace", "~u /badchunks:/a/b/")
    r, body = get(p, origin, "/badchunks")
    assert r.status == 502, (r.status, body)
    assert b"malformed HTTP response" in body, body


# ---- bad arguments ------------------------------------------------------------------------

@pytest.mark.parametrize("arg,needles", [
    ("~d x:/a(/b/", ["missing closing parenthesis", "offset 2"]),
    ("~d x:/a/$2/", ["no group 2"]),
    ("~d x:/a/b/z", ["unknown flag in 'z'"]),
    ("~d x:/a/b", ["EXPR:/REGEX/REPLACEMENT/"]),
    ("~nosuchterm:/a/b/", ["EXPR:/REGEX/REPLACEMENT/"]),
    ("~bs admin:/a/b/", ["body term"]),
])
def test_bad_replace_exits_2(arg, needles, pki):
    r = run(["--ca-dir", pki.proxy_ca_dir, "-l", "127.0.0.1:%d" % free_port(), "--replace", arg],
            env=clean_env(), timeout=30)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert "bad --replace '%s'" % arg in err, err
    for n in needles:
        assert n in err, err
    assert "listening on" not in err


# ---- plugins ------------------------------------------------------------------------------

def test_json_field_plugin_rewrites_a_field(examples, origin, proxy_factory):
    p = proxy_factory("--load", JSON_FIELD + ":admin=true")
    assert "loaded plugin json_field (%s, filter ABI 2)" % JSON_FIELD in p.stderr()
    r, body = get(p, origin, "/user.gz")
    assert r.getheader("Content-Encoding") is None
    assert int(r.getheader("Content-Length")) == len(body)
    assert json.loads(body) == dict(USER, admin=True)
    out = p.wait_stdout('json-field: "admin" set to true (1 place)')
    assert "replaced: response body by a plugin (gzip decoded, sent identity" in out, out
    # Not JSON: not asked for, passed as it came.
    r, body = get(p, origin, "/plain")
    assert body == b"MARK in an identity body\n"


def test_v1_plugin_still_loads_and_works(examples, origin, proxy_factory):
    p = proxy_factory("--load", TAG_MARKER_V1 + ":MARK", "--replace", "~u /plain:/MARK/SIGN/")
    assert "loaded plugin tag_marker (%s, filter ABI 1)" % TAG_MARKER_V1 in p.stderr()
    r, body = get(p, origin, "/plain")
    assert body == b"SIGN in an identity body\n"  # the replace ran; the v1 plugin saw the original
    out = p.wait_stdout("/plain → 200")
    line = [l for l in out.splitlines() if "/plain → 200" in l][0]
    assert "marker:MARK" in line and "replaced" in line, line


TEST_PLUGIN = r"""
#include <string.h>
#include "filters/filter.h"

static void on_request_head(void *self, flt_flow_t *f) {
  (void)self;
  if (strstr(f->req.url, "/answer")) {
    flt_flow_answer(f, 201, "text/plain", (const uint8_t *)"answered locally\n", 17);
    return;
  }
  flt_flow_set_header(f, FLT_DIR_REQUEST, "X-Plugin", "v2");
  flt_flow_remove_header(f, FLT_DIR_REQUEST, "X-Drop-Me");
}

static void on_response_head(void *self, flt_flow_t *f) {
  (void)self;
  flt_flow_set_header(f, FLT_DIR_RESPONSE, "X-Seen-By", "plugin");
  flt_flow_remove_header(f, FLT_DIR_RESPONSE, "Server");
  /* Too late for the request's head: refused. */
  if (flt_flow_set_header(f, FLT_DIR_REQUEST, "X-Late", "1") == 0)
    flt_flow_tag(f, "late-edit-accepted");
}

static void on_client_hello(void *self, flt_conn_t *c) {
  (void)self;
  if (strcmp(c->sni, "localhost") == 0) flt_conn_passthrough(c);
}

static const flt_ops_t ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "act",
    .on_request_head = on_request_head,
    .on_response_head = on_response_head,
    .on_client_hello = on_client_hello,
};

static void *create(const char *arg, int slot, char *err, size_t errlen) {
  (void)arg; (void)slot; (void)err; (void)errlen;
  return (void *)&ops;
}

const flt_plugin_t tlspeek_plugin = {FLT_ABI_VERSION, "act", "uses every ABI 2 call", &ops,
                                     create, NULL};
"""


@pytest.fixture(scope="module")
def act_plugin(tmp_path_factory):
    gcc = require_program("gcc")
    d = tmp_path_factory.mktemp("act")
    src, so = d / "act.c", str(d / "act.so")
    src.write_text(TEST_PLUGIN)
    r = subprocess.run([gcc, "-shared", "-fPIC", "-I", ROOT, "-o", so, str(src)],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return so


def test_plugin_edits_heads_both_ways(act_plugin, origin, proxy_factory):
    p = proxy_factory("--load", act_plugin)
    r, body = get(p, origin, "/headers", headers={"X-Drop-Me": "1", "X-Keep": "2"})
    seen = json.loads(body)["headers"]
    assert seen.get("X-Plugin") == "v2" and "X-Drop-Me" not in seen and seen["X-Keep"] == "2", seen
    assert "X-Late" not in seen
    assert r.getheader("X-Seen-By") == "plugin" and r.getheader("Server") is None, r.getheaders()
    out = p.wait_stdout("/headers → 200")
    assert "late-edit-accepted" not in out


def test_plugin_answers_a_request_itself(act_plugin, origin, proxy_factory):
    p = proxy_factory("--load", act_plugin)
    r, body = get(p, origin, "/answer/me")
    assert r.status == 201 and body == b"answered locally\n"
    assert r.getheader("Content-Type") == "text/plain"
    p.wait_stdout("answered: 201 by a plugin (17 bytes), not sent upstream")


def test_plugin_passes_a_connection_through(act_plugin, tls_origin, proxy_factory, pki):
    """SNI localhost is passed through: the client sees the origin's own
    certificate (its CA verifies), not one of tlspeek's."""
    p = proxy_factory("--load", act_plugin)
    r = curl("--cacert", pki.upstream_ca, "-x", p.url,
             "https://localhost:%d/plain" % tls_origin)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"MARK in an identity body\n"
    assert "a plugin asked for it (flt_conn_passthrough)" in p.stderr(), p.stderr()
    # By IP (no SNI "localhost") it is intercepted: tlspeek's CA verifies.
    r = curl("--cacert", pki.proxy_ca, "-x", p.url, "https://127.0.0.1:%d/plain" % tls_origin)
    assert r.returncode == 0, r.stderr
