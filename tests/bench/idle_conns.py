#!/usr/bin/env python3
"""Hold N idle TLS connections to 127.0.0.1:PORT, each after one request.

Used by bench.py to measure a proxy's memory per idle intercepted connection:
every connection completes a TLS handshake, sends one keep-alive
`GET PATH HTTP/1.1` and reads the whole response, then stays open and idle.

Prints one line `READY ok=N failed=M seconds=S [first error]` when every
connection has been tried (or --deadline passed), then holds the connections
until stdin reaches EOF, SIGTERM, or --hold seconds have passed.

Usage: idle_conns.py PORT [--count 2000] [--parallel 64] [--path /1k]
                          [--deadline 120] [--hold 300]
"""
import argparse
import asyncio
import resource
import signal
import ssl
import sys
import time


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((want, max(want, hard)), (min(want, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            return
        except (ValueError, OSError):
            continue


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def one(port, path, ctx, sem, conns, errors):
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost"),
                timeout=20)
            writer.write(("GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tlspeek-bench\r\n\r\n"
                          % path).encode())
            status = await asyncio.wait_for(read_response(reader), timeout=20)
            if status != 200:
                errors.append("HTTP %d" % status)
            conns.append(writer)
        except Exception as e:  # noqa: BLE001 - any failure is counted and reported
            errors.append("%s: %s" % (type(e).__name__, e))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--parallel", type=int, default=64)
    ap.add_argument("--path", default="/1k")
    ap.add_argument("--deadline", type=float, default=120)
    ap.add_argument("--hold", type=float, default=300)
    args = ap.parse_args()
    raise_nofile(args.count * 2 + 256)

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    sem = asyncio.Semaphore(args.parallel)
    conns, errors = [], []
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(one(args.port, args.path, ctx, sem, conns, errors))
             for _ in range(args.count)]
    done, pending = await asyncio.wait(tasks, timeout=args.deadline)
    for t in pending:
        t.cancel()
    failed = len(errors) + len(pending)
    first = errors[0] if errors else ("deadline passed" if pending else "")
    print("READY ok=%d failed=%d seconds=%.1f %s" % (len(conns), failed, time.monotonic() - t0,
                                                     first), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1(4096)
                    else None)
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.hold)
    except asyncio.TimeoutError:
        pass
    # Close politely (close_notify, FIN) so that the proxy logs no spurious errors.
    for w in conns:
        w.close()
    await asyncio.wait([asyncio.ensure_future(w.wait_closed()) for w in conns] or
                       [asyncio.ensure_future(asyncio.sleep(0))], timeout=10)
    for w in conns:
        w.transport.abort()


if __name__ == "__main__":
    asyncio.run(main())
