"""tlspeek at its descriptor limit: a flood of connections must neither spin
nor flood stderr nor leak half-closed connections, and a signal must still
stop it. tlspeek runs with soft and hard RLIMIT_NOFILE = 1024, so it cannot
raise the limit; the test process raises its own to hold the flood."""
import os
import resource
import signal
import socket
import time

import pytest

from conftest import curl

LIMIT = 1024
FLOOD = 2000
HOLD_S = 3


def limit_fds():
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


@pytest.fixture
def many_fds():
    """Lets this process hold the flood's sockets; restores its limit."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FLOOD + 1000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(old[0], want), max(old[1], want)))
    except (ValueError, OSError):
        pytest.skip("cannot raise this process's descriptor limit to %d" % want)
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, old)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def open_flood(port, n):
    """n connections to port, without waiting for tlspeek to accept them."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def fetch(p, url, timeout):
    return curl("-x", p.url, "-o", "-", "-w", "%{http_code}", url, timeout=timeout)


def wait_started(p):
    deadline = time.time() + 10
    while "descriptor limit" not in p.stderr() and time.time() < deadline:
        time.sleep(0.02)


def test_fd_limit_flood_recovers(proxy_factory, http_upstream, many_fds):
    p = proxy_factory(preexec_fn=limit_fds)
    wait_started(p)
    assert "descriptor limit %d (hard limit %d): room for about" % (LIMIT, LIMIT) in p.stderr()
    url = "http://127.0.0.1:%d/text" % http_upstream.port
    r = fetch(p, url, 10)
    assert r.returncode == 0 and r.stdout.endswith(b"200"), r.stderr
    time.sleep(0.2)
    baseline = fd_count(p.proc.pid)

    socks = open_flood(p.port, FLOOD)
    time.sleep(HOLD_S)
    assert p.proc.poll() is None, p.stderr()[-2000:]
    assert fd_count(p.proc.pid) > LIMIT - 50  # the flood did reach the limit
    for s in socks:
        s.close()

    # Served again soon after the flood: the listeners resumed.
    deadline = time.time() + 2
    ok = False
    while not ok and time.time() < deadline:
        r = fetch(p, url, max(0.2, deadline - time.time()))
        ok = r.returncode == 0 and r.stdout.endswith(b"200")
    assert ok, "no proxied request served within 2 s of the flood's end: %r" % (r.stderr,)

    # Every connection the peer left is closed (no CLOSE_WAIT leak).
    deadline = time.time() + 10
    while fd_count(p.proc.pid) > baseline + 8 and time.time() < deadline:
        time.sleep(0.1)
    assert fd_count(p.proc.pid) <= baseline + 8, (fd_count(p.proc.pid), baseline)

    err = p.stderr()
    assert len(err.splitlines()) < 100, err[-4000:]
    assert "too many open files" in err.lower()
    assert p.stop() == 0, err[-2000:]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_tlspeek_at_fd_limit(proxy_factory, many_fds, sig):
    p = proxy_factory(preexec_fn=limit_fds)
    wait_started(p)
    socks = open_flood(p.port, FLOOD)
    try:
        deadline = time.time() + 10
        while fd_count(p.proc.pid) < LIMIT - 50 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # both workers have hit the limit by now
        p.proc.send_signal(sig)
        rc = p.proc.wait(timeout=20)
    finally:
        for s in socks:
            s.close()
    assert rc == 0, p.stderr()[-2000:]
    assert len(p.stderr().splitlines()) < 100, p.stderr()[-4000:]
