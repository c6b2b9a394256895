"""A local HTTP/HTTPS origin server for the end-to-end tests.

Run as a subprocess:  upstream_server.py --port N [--tls CERT_AND_KEY_PEM]
Prints "READY <port>" on stdout once it accepts connections.

Endpoints (all deterministic, so tests can compute the expected bytes):
  /text                 a short UTF-8 text body
  /json                 a small JSON document
  /bin/N                N bytes from payload(N) (see below), application/octet-stream
  /png                  a tiny PNG image
  /gzip                 /text's body, gzip-encoded (Content-Encoding: gzip)
  /chunked/N            payload(N) sent with Transfer-Encoding: chunked (+ a trailer)
  /close/N              payload(N) delimited by closing the connection (no length)
  /empty                200 with Content-Length: 0
  /status/CODE          an empty response with that status
  /echo                 echoes the request body back (POST/PUT)
  /headers              the request head as the server received it, as text
  /redirect             302 to /text
  /slow/MS              waits MS milliseconds, then /text
  /pause/N/MS           /bin/N, but its last 1000 bytes only after MS milliseconds
  /count                how many requests this server has seen, as text
  /peer                 the connection's client address as the server sees it
                        ("ip:port"): tells whether two requests shared one
                        connection
  /late-close/MS        /text (with its length), then closes the connection MS
                        milliseconds later
  /tls                  "TLSv1.3 resumed" / "TLSv1.2 full": this connection's TLS version
                        and whether its handshake resumed a session (TLS only)
  /setcookie            /text's body with Set-Cookie: id=setc00kie-SECRET
HEAD works for every GET endpoint.
"""
import argparse
import gzip
import hashlib
import http.server
import json
import socketserver
import ssl
import sys
import threading
import time

TEXT = "Hello from the upstream server. Grüße! 🙂\nSecond line of text.\n".encode()
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f1d0"
    "b10000000049454e44ae426082"
)

_count = 0
_count_lock = threading.Lock()


def payload(n):
    """n deterministic pseudo-random bytes (SHA-256 in counter mode)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"tlspeek-%d" % i).digest()
        i += 1
    return bytes(out[:n])


def payload_stream(n, chunk=1 << 16):
    """payload(n) in pieces, without holding it all in memory."""
    done = 0
    i = 0
    buf = bytearray()
    while done < n:
        while len(buf) < chunk and done + len(buf) < n:
            buf += hashlib.sha256(b"tlspeek-%d" % i).digest()
            i += 1
        piece = bytes(buf[: min(chunk, n - done)])
        del buf[: len(piece)]
        done += len(piece)
        yield piece


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tlspeek-test-upstream"
    disable_nagle_algorithm = True  # headers and body are separate writes

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _send(self, code, body=b"", ctype="text/plain; charset=utf-8", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(n) if n else b""

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        global _count
        with _count_lock:
            _count += 1
        body = self._body()
        if self.path.startswith("/echo"):
            ctype = self.headers.get("Content-Type", "application/octet-stream")
            self._send(200, body, ctype)
        else:
            self._send(200, b"got %d bytes\n" % len(body))

    do_PUT = do_POST

    def do_GET(self):
        global _count
        with _count_lock:
            _count += 1
        p = self.path.split("?")[0]
        parts = p.strip("/").split("/")
        head = self.command == "HEAD"
        if p == "/text":
            self._send(200, TEXT)
        elif p == "/peer":
            self._send(200, ("%s:%d" % self.client_address[:2]).encode())
        elif p == "/json":
            body = json.dumps({"name": "tlspeek", "list": [1, 2, 3], "nested": {"ok": True}}).encode()
            self._send(200, body, "application/json")
        elif parts[0] == "bin" and len(parts) == 2:
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            if not head:
                for piece in payload_stream(n):
                    self.wfile.write(piece)
        elif parts[0] == "pause" and len(parts) == 3:
            n, ms = int(parts[1]), int(parts[2])
            body = payload(n)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            if not head:
                self.wfile.write(body[:-1000])
                self.wfile.flush()
                time.sleep(ms / 1000.0)
                self.wfile.write(body[-1000:])
        elif p == "/png":
            self._send(200, PNG, "image/png")
        elif p == "/gzip":
            self._send(200, gzip.compress(TEXT), "text/plain; charset=utf-8",
                       [("Content-Encoding", "gzip")])
        elif parts[0] == "chunked" and len(parts) == 2:
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum")
            self.end_headers()
            if not head:
                h = hashlib.sha256()
                for piece in payload_stream(n, 10000):
                    h.update(piece)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\nX-Checksum: %s\r\n\r\n" % h.hexdigest().encode())
        elif parts[0] == "close" and len(parts) == 2:
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                for piece in payload_stream(n):
                    self.wfile.write(piece)
            self.close_connection = True
        elif p == "/empty":
            self._send(200, b"")
        elif parts[0] == "status" and len(parts) == 2:
            code = int(parts[1])
            self.send_response(code)
            if code not in (204, 304):
                self.send_header("Content-Length", "0")
            self.end_headers()
        elif p == "/headers":
            self._send(200, (self.requestline + "\r\n" + str(self.headers)).encode())
        elif p == "/redirect":
            self._send(302, b"", extra=[("Location", "/text")])
        elif parts[0] == "slow" and len(parts) == 2:
            time.sleep(int(parts[1]) / 1000.0)
            self._send(200, TEXT)
        elif parts[0] == "late-close" and len(parts) == 2:
            self._send(200, TEXT)
            self.wfile.flush()
            time.sleep(int(parts[1]) / 1000.0)
            self.close_connection = True
        elif p == "/setcookie":
            self._send(200, TEXT, extra=[("Set-Cookie", "id=setc00kie-SECRET; Path=/")])
        elif p == "/count":
            self._send(200, b"%d" % _count)
        elif p == "/tls" and isinstance(self.connection, ssl.SSLSocket):
            c = self.connection
            self._send(200, ("%s %s" % (c.version(), "resumed" if c.session_reused
                                        else "full")).encode())
        else:
            self._send(404, b"not found\n")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls", help="PEM file with certificate and key")
    ap.add_argument("--tls-max", choices=["1.2", "1.3"])
    args = ap.parse_args()
    if ":" in args.host:
        Server.address_family = __import__("socket").AF_INET6
    srv = Server((args.host, args.port), Handler)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls)
        if args.tls_max == "1.2":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    print("READY %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
