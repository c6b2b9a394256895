#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_session (tests/fuzz/corpus/session/).

Format (see fuzz_session.c): one options byte, then chunks of a header byte
(top bit: 0 client, 1 origin; low 7 bits: length, 0 = EOF) and the bytes.
Run from the repository root: python3 tests/fuzz/session_seeds.py"""
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "session")
CLIENT, ORIGIN = 0, 1


def chunks(side, data, size=127):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += bytes([(side << 7) | len(part)]) + part
    return out


def eof(side):
    return bytes([side << 7])


def seed(name, opts, *parts):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([opts]) + b"".join(parts))


GET = b"GET /index.html HTTP/1.1\r\nHost: origin.test\r\nUser-Agent: curl/7.88\r\nAccept: */*\r\n\r\n"
OK = (b"HTTP/1.1 200 OK\r\nServer: fuzz\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n"
      b"<p>hello</p>\n")
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
           b"Set-Cookie: s=1\r\n\r\n5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n")
POST = (b"POST /api?x=1 HTTP/1.1\r\nHost: origin.test\r\nAuthorization: Bearer t0k3n\r\n"
        b"Cookie: a=b\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 11\r\n\r\nuser=secret")

os.makedirs(OUT, exist_ok=True)
seed("get-200", 0, chunks(CLIENT, GET), chunks(ORIGIN, OK))
seed("get-200-bytewise", 6, chunks(CLIENT, GET, 7), chunks(ORIGIN, OK, 5))
seed("post-chunked", 1, chunks(CLIENT, POST), chunks(ORIGIN, CHUNKED))
seed("pipelined", 0, chunks(CLIENT, GET + GET.replace(b"GET", b"HEAD")),
     chunks(ORIGIN, OK), chunks(ORIGIN, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"))
seed("blocked", 0, chunks(CLIENT, b"GET /blocked HTTP/1.1\r\nHost: a\r\n\r\n"))
seed("blocked-451", 2, chunks(CLIENT, b"DELETE /x HTTP/1.1\r\nX-Deny: 1\r\nHost: a\r\n\r\n"))
seed("continue", 0,
     chunks(CLIENT, b"PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
     chunks(ORIGIN, b"HTTP/1.1 100 Continue\r\n\r\n"), chunks(CLIENT, b"data"),
     chunks(ORIGIN, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
seed("close-delimited", 4, chunks(CLIENT, GET),
     chunks(ORIGIN, b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"), eof(ORIGIN))
seed("upgrade", 0,
     chunks(CLIENT, b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
     chunks(ORIGIN, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
     chunks(CLIENT, b"\x81\x05hello"), chunks(ORIGIN, b"\x81\x02hi"), eof(CLIENT))
seed("gzip", 0, chunks(CLIENT, GET),
     chunks(ORIGIN, b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 23\r\n\r\n"
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcbH\xcd\xc9\xc9\x07\x00\x86\xa6\x106\x05\x00"))
seed("raw", 0, chunks(CLIENT, b"SSH-2.0-OpenSSH_9.2\r\n"), chunks(ORIGIN, b"SSH-2.0-srv\r\n"), eof(CLIENT))
seed("bad-request", 0, chunks(CLIENT, b"GET / HTTP/1.1\r\nHost a\r\n\r\n"))
seed("bad-response", 0, chunks(CLIENT, GET), chunks(ORIGIN, b"HTTP/1.1 abc\r\n\r\n"))
seed("no-response", 4, chunks(CLIENT, GET), eof(ORIGIN))
seed("server-first", 0, chunks(ORIGIN, OK), chunks(CLIENT, GET))
SOCKS, SOCKS_AUTH = 8, 8 | 16
GREET = b"\x05\x01\x00"
CONNECT = b"\x05\x01\x00\x03\x0borigin.test\x00\x50"
seed("socks-get", SOCKS, chunks(CLIENT, GREET), chunks(CLIENT, CONNECT), chunks(CLIENT, GET),
     chunks(ORIGIN, OK))
seed("socks-one-read", SOCKS, chunks(CLIENT, GREET + CONNECT + GET), chunks(ORIGIN, OK))
seed("socks-auth", SOCKS_AUTH, chunks(CLIENT, b"\x05\x02\x00\x02"),
     chunks(CLIENT, b"\x01\x05alice\x06s3cret"),
     chunks(CLIENT, b"\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90"), chunks(CLIENT, GET),
     chunks(ORIGIN, OK))
seed("socks-auth-wrong", SOCKS_AUTH, chunks(CLIENT, b"\x05\x01\x02\x01\x05alice\x05wrong"))
seed("socks-ipv6-raw", SOCKS,
     chunks(CLIENT, GREET + b"\x05\x01\x00\x04" + bytes(15) + b"\x01\x00\x16"),
     chunks(CLIENT, b"SSH-2.0-x\r\n"), chunks(ORIGIN, b"SSH-2.0-y\r\n"))
seed("socks-bind", SOCKS, chunks(CLIENT, GREET + b"\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50"))
seed("tls", 0, chunks(CLIENT, b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"))
