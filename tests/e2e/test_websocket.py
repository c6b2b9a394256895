"""End-to-end tests of WebSocket messages through tlspeek: a real client and
a real server from Debian's python3-websockets (permessage-deflate on, as it
is by default), the client through a CONNECT tunnel to tlspeek in explicit
mode, the server over TLS with a certificate of the test PKI (tlspeek trusts
it through --upstream-ca, the Proxy fixture passes it).

Checked: the echoed messages are what was sent; the console (-vv) shows each
text message as text, a binary one as a hexdump, the close code; the HAR's
_webSocketMessages lists them in order with their direction; JSONL has them
too; ~websocket and ~bq select the flow; a malformed frame after a real
upgrade closes that connection with one clear line, and the proxy goes on
serving another client.

Run from tests/e2e:
  TLSPEEK_BIN=/path/to/tlspeek /usr/bin/python3 -m pytest -q test_websocket.py
"""
import asyncio
import base64
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest
import websockets

from conftest import BIN

TEXTS = ["hello through tlspeek", "ünïcode ✓ text", "hello through tlspeek " * 20]
BINARY = bytes(range(0, 40))


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"tlspeek binary not found at {BIN} (build it or set TLSPEEK_BIN)")


class EchoServer:
    """A websockets server over TLS on its own event loop thread: echoes
    every message; "close please" is answered by a close with code 4001."""

    def __init__(self, pki):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.leaf)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.extensions = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "websocket server did not start"

    async def _echo(self, ws, path=None):
        self.extensions.append([e.name for e in ws.extensions])
        async for msg in ws:
            if msg == "close please":
                await ws.close(4001, "asked to")
                return
            await ws.send(msg)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            websockets.serve(self._echo, "127.0.0.1", 0, ssl=self.ctx))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _stop(self):
        self.server.close()
        await self.server.wait_closed()

    def stop(self):
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def echo_server(pki):
    s = EchoServer(pki)
    yield s
    s.stop()


def tunnel(proxy, port):
    """A socket to tlspeek with a CONNECT tunnel to 127.0.0.1:port open."""
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port))
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = s.recv(1)
        assert b, "tlspeek closed the tunnel: %r" % head
        head += b
    assert head.startswith(b"HTTP/1.1 200"), head
    return s


def client_ctx(pki):
    ctx = ssl.create_default_context(cafile=pki.proxy_ca)
    return ctx


async def echo_session(proxy, pki, port, binary=True, close_code=1000, extra=False):
    """Sends the texts (and the binary message), returns what came back and
    the extensions the client agreed."""
    sock = tunnel(proxy, port)
    sock.setblocking(False)
    got = []
    async with websockets.connect("wss://127.0.0.1:%d/echo" % port, sock=sock,
                                  ssl=client_ctx(pki), server_hostname="127.0.0.1",
                                  compression="deflate") as ws:
        ext = [e.name for e in ws.extensions]
        for t in TEXTS:
            await ws.send(t)
            got.append(await ws.recv())
        if binary:
            await ws.send(BINARY)
            got.append(await ws.recv())
        if extra:
            # Fragments (compressed as one message), and a ping answered by a pong.
            await ws.send(["part one, ", "part two"])
            got.append(await ws.recv())
            await (await ws.ping(b"pingdata"))
        if close_code != 1000:
            await ws.send("close please")
            try:
                await ws.recv()
            except websockets.ConnectionClosed as e:
                got.append(("closed", e.code, e.reason))
        else:
            await ws.close(1000, "done")
    return got, ext


def test_echo_with_permessage_deflate(proxy_factory, pki, echo_server, tmp_path):
    har_path = str(tmp_path / "ws.har")
    jsonl_path = str(tmp_path / "ws.jsonl")
    p = proxy_factory("-vv", "--har", har_path, "--jsonl", jsonl_path)
    got, ext = asyncio.run(echo_session(p, pki, echo_server.port, extra=True))
    assert ext == ["permessage-deflate"], ext
    assert echo_server.extensions[-1] == ["permessage-deflate"]
    assert got == TEXTS + [BINARY, "part one, part two"]

    out = p.wait_stdout("→ 101")
    # Each text message as text, both ways; the binary one as a hexdump.
    for t in TEXTS[:2]:
        assert "    %s\n" % t in out, out
    assert out.count("/echo > text %d B" % len(TEXTS[0].encode())) == 1, out
    assert out.count("/echo < text %d B" % len(TEXTS[0].encode())) == 1, out
    assert "/echo > binary 40 B" in out and "/echo < binary 40 B" in out, out
    assert "    00000000: 0001 0203 0405 0607 0809 0a0b 0c0d 0e0f  ................" in out, out
    assert out.count("    part one, part two\n") == 2, out
    assert "/echo > ping 8 B" in out and "/echo < pong 8 B" in out, out
    assert "/echo > close 1000 done" in out, out
    assert "/echo < close 1000 done" in out, out
    # The upgrade's flow ends when the WebSocket does, without an error.
    assert "→ 101 - 0 B" in out, out
    assert "ERROR" not in out, out
    p.stop()

    with open(har_path) as f:
        har = json.load(f)
    entries = [e for e in har["log"]["entries"] if e["response"]["status"] == 101]
    assert len(entries) == 1, har
    msgs = entries[0]["_webSocketMessages"]
    want = []
    for t in TEXTS:
        want += [("send", 1, t), ("receive", 1, t)]
    b64 = base64.b64encode(BINARY).decode()
    want += [("send", 2, b64), ("receive", 2, b64), ("send", 1, "part one, part two"),
             ("receive", 1, "part one, part two"), ("send", 9, base64.b64encode(b"pingdata").decode()),
             ("receive", 10, base64.b64encode(b"pingdata").decode())]
    assert [(m["type"], m["opcode"], m["data"]) for m in msgs[:len(want)]] == want
    closes = msgs[len(want):]
    assert [(m["type"], m["opcode"]) for m in closes] == [("send", 8), ("receive", 8)], closes
    times = [m["time"] for m in msgs]
    assert times == sorted(times) and abs(times[0] - time.time()) < 600, times

    with open(jsonl_path) as f:
        lines = [json.loads(line) for line in f]
    ws = [j for j in lines if j["status"] == 101]
    assert len(ws) == 1
    recs = ws[0]["websocket"]
    assert [(m["type"], m["opcode"]) for m in recs] == \
        [(t, o) for t, o, _ in want] + [("send", 8), ("receive", 8)]
    assert recs[0]["data"] == TEXTS[0] and recs[0]["encoding"] == "utf8"
    assert recs[-8]["encoding"] == "base64" and base64.b64decode(recs[-8]["data"]) == BINARY
    assert recs[-1]["closeCode"] == 1000 and recs[-1]["closeReason"] == "done"

    # Read back, both transcripts show the messages as the live view did
    # (a HAR does not know the client address: "-").
    def ws_block(text):
        return text[text.index("⇄ ws"):text.index("→ 101")]
    for path, client in ((jsonl_path, ws[0]["client"]), (har_path, "-")):
        r = subprocess.run([BIN, "show", "-vv", path], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert ws_block(r.stdout).replace(client + " ", "") == \
            ws_block(out).replace(ws[0]["client"] + " ", ""), r.stdout


def test_close_code_from_the_server(proxy_factory, pki, echo_server):
    p = proxy_factory("-v")
    got, _ = asyncio.run(echo_session(p, pki, echo_server.port, binary=False, close_code=4001))
    assert got[-1] == ("closed", 4001, "asked to"), got
    out = p.wait_stdout("/echo < close 4001 asked to")
    assert "/echo > text 12 B" in out  # "close please": a line per message at -v
    assert "    close please" not in out  # the text itself only at -vv


def test_websocket_expression_and_body_terms(proxy_factory, pki, echo_server, tmp_path):
    har_ws = str(tmp_path / "ws.har")
    jsonl_none = str(tmp_path / "none.jsonl")
    p = proxy_factory("-q", "--har", har_ws, "--har-filter", "~websocket & ~bq ünïcode",
                      "--jsonl", jsonl_none, "--jsonl-filter", "~bs nothing-like-this")
    asyncio.run(echo_session(p, pki, echo_server.port, binary=False))
    p.stop()
    with open(har_ws) as f:
        entries = json.load(f)["log"]["entries"]
    assert [e["response"]["status"] for e in entries] == [101]
    with open(jsonl_none) as f:
        assert f.read() == ""


def ws_handshake(proxy, port):
    """A raw TLS socket through the tunnel, upgraded to a WebSocket (no
    extension), ready for hand-made frames."""
    raw = tunnel(proxy, port)
    s = client_ctx(proxy.pki).wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(b"GET /raw HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = s.recv(1)
        assert b, head
        head += b
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def masked(b0, payload):
    key = b"\x01\x02\x03\x04"
    return bytes([b0, 0x80 | len(payload)]) + key + \
        bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def test_malformed_frame_closes_that_connection_only(proxy_factory, pki, echo_server):
    p = proxy_factory("-v")
    p.pki = pki
    s = ws_handshake(p, echo_server.port)
    s.sendall(masked(0x81, b"fine"))
    # The echo comes back: the frame was relayed.
    reply = s.recv(64)
    assert reply[2:] == b"fine" or b"fine" in reply, reply
    # An unmasked client frame: RFC 6455 section 5.1 says the server must fail.
    s.sendall(bytes([0x81, 3]) + b"bad")
    s.settimeout(10)
    rest = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            rest += b
    except (ssl.SSLError, ConnectionResetError):
        pass
    s.close()
    err = "malformed WebSocket frame from the client: unmasked frame from the client"
    deadline = time.time() + 10
    while err not in p.stderr() and time.time() < deadline:
        time.sleep(0.05)
    lines = [ln for ln in p.stderr().splitlines() if "malformed WebSocket frame" in ln]
    assert len(lines) == 1, p.stderr()
    assert re.match(r"tlspeek: warning: session \d+: 127\.0\.0\.1:\d+: " + re.escape(err) +
                    r" \(RFC 6455 section 5\.1\)$", lines[0]), lines
    # The flow's line says why it ended, and the connection error is not
    # repeated on its own line.
    out = p.wait_stdout("→ ERROR " + err)
    assert out.count(err) == 1 and "✗" not in out, out
    # Another client is served as before.
    got, _ = asyncio.run(echo_session(p, pki, echo_server.port, binary=False))
    assert got == TEXTS
