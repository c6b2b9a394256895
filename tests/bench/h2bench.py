"""The HTTP/2 scenario of bench.py: h2load through each peer that speaks h2 on both legs.

  h2         h2load -c 4 -m 32 for the run's length on /1k (4 connections, 32 streams in
             flight on each): requests per second and the proxy's CPU per 1,000 requests.
             A peer that did not negotiate h2 with h2load gets no number ("n/a").
  streams    then one connection with 100 concurrent streams, each fetching /256k (four
             times HTTP/2's initial 64 KiB stream window, so flow control has to turn),
             timed per stream with h2load --log-file: the slowest stream's completion
             time over the median's. A proxy that starves streams behind others shows a
             large spread; the target is at most 3.
"""
import os
import re
import statistics
import subprocess
import time

from benchlib import PeerFailed

H2_CLIENTS = 4
H2_STREAMS = 32
SPREAD_STREAMS = 100


def _run(args, timeout):
    t0 = time.monotonic()
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return p, time.monotonic() - t0


def _parse(out, err):
    """(succeeded, failed+errored+timeout, req/s, application protocol) from h2load."""
    m_req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    m_fin = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    if not (m_req and m_fin):
        raise PeerFailed("h2load gave no result: %s" % (err.strip() or out.strip())[:200])
    m_proto = re.search(r"Application protocol: (\S+)", out)
    bad = int(m_req.group(5)) + int(m_req.group(6)) + int(m_req.group(7))
    return int(m_req.group(4)), bad, float(m_fin.group(3)), m_proto.group(1) if m_proto else "?"


def h2load_rate(url, seconds):
    """h2load for `seconds` on url: rate, count and problems as benchlib.wrk returns them."""
    args = ["h2load", "-c", str(H2_CLIENTS), "-m", str(H2_STREAMS), "-D", str(seconds),
            "--warm-up-time=0", url]
    p, wall = _run(args, seconds + 60)
    ok, bad, rate, proto = _parse(p.stdout, p.stderr)
    if proto != "h2":
        raise PeerFailed("h2load negotiated %s, not h2" % proto)
    problems = ["h2load: %d request(s) failed" % bad] if bad else []
    return {"rate": rate, "count": ok, "wall": wall, "mbps": 0.0, "problems": problems}


def stream_spread(url, workdir):
    """One connection, SPREAD_STREAMS concurrent streams: (slowest / median completion
    time, problems). None for the ratio when no stream completed."""
    log = os.path.join(workdir, "h2load-streams.log")
    args = ["h2load", "-c", "1", "-m", str(SPREAD_STREAMS), "-n", str(SPREAD_STREAMS),
            "--log-file=" + log, url]
    p, _ = _run(args, 120)
    ok, bad, _, proto = _parse(p.stdout, p.stderr)
    problems = []
    if proto != "h2":
        problems.append("streams probe negotiated %s, not h2" % proto)
    if bad:
        problems.append("streams probe: %d of %d stream(s) failed" % (bad, SPREAD_STREAMS))
    times = []
    try:
        with open(log) as f:
            for line in f:
                cols = line.split("\t")
                if len(cols) >= 3 and cols[1].strip() != "-1":
                    times.append(int(cols[2]))
    except OSError as e:
        problems.append("streams probe: no log (%s)" % e)
    if not times:
        return None, problems
    med = statistics.median(times)
    return (max(times) / med if med else None), problems
