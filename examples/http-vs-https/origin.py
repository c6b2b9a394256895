#!/usr/bin/env python3
"""The demo's origin server: serves one directory over HTTP, or over HTTPS
with --tls CERT_AND_KEY_PEM, on 127.0.0.1. Prints "PORT n" when ready.
Keep-alive (HTTP/1.1), so that curl fetches both files over one
connection — one TLS handshake to look at."""
import argparse
import functools
import http.server
import ssl


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # the demo prints what matters itself
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--tls")
    args = ap.parse_args()
    handler = functools.partial(Handler, directory=args.dir)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
