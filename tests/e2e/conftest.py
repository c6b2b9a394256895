"""Shared fixtures for the end-to-end tests: the tlspeek binary, a test PKI,
origin servers, and a running proxy.

Everything listens on 127.0.0.1 and every CA is named explicitly: the
environment may preset SSL_CERT_FILE / CURL_CA_BUNDLE to the system bundle.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("TLSPEEK_BIN", os.path.join(ROOT, "tlspeek"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing listening on %s:%d" % (host, port))


def run(args, **kw):
    """Runs tlspeek (args without the binary) and returns CompletedProcess."""
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 60)
    return subprocess.run([BIN] + list(args), **kw)


class TcpServer:
    """A test server on 127.0.0.1 at a free port. Each accepted connection
    is counted and handed to `self.handle(conn)` on a thread of its own;
    subclasses set their own attributes before calling this __init__ (the
    accept thread starts here) and implement handle(). close() stops
    accepting."""

    backlog = 64

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(self.backlog)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        conn.close()

    def close(self):
        self.sock.close()


def require_program(name):
    """The path of an external program a test runs. `make test` installs every
    one (tests/check_debs.py keeps the Makefile's lists complete), so a missing
    program fails the test instead of skipping it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail("%s is not installed: `make test` installs it (see TEST_DEBS in the "
                    "Makefile)" % name, pytrace=False)
    return path


def clean_env(**extra):
    """The environment for client subprocesses, with no preset CA bundles."""
    env = dict(os.environ)
    for k in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_DIR",
              "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "http_proxy", "https_proxy", "HTTP_PROXY",
              "HTTPS_PROXY", "ALL_PROXY", "all_proxy", "no_proxy", "NO_PROXY"):
        env.pop(k, None)
    env.update(extra)
    return env


class Pki:
    """A CA for the upstream servers (made with `tlspeek ca mint`), and the
    certificate of the tlspeek CA that clients trust."""

    def __init__(self, base):
        self.base = base
        self.upstream_ca_dir = os.path.join(base, "upstream-ca")
        self.leaf = os.path.join(base, "upstream-leaf.pem")
        self.upstream_ca = os.path.join(base, "upstream-ca.pem")
        self.proxy_ca_dir = os.path.join(base, "proxy-ca")
        self.proxy_ca = os.path.join(base, "proxy-ca.pem")
        for cmd in (
            ["--ca-dir", self.upstream_ca_dir, "ca", "mint", "localhost", "127.0.0.1", "::1",
             "--out", self.leaf],
            ["--ca-dir", self.upstream_ca_dir, "ca", "export", self.upstream_ca],
            ["--ca-dir", self.proxy_ca_dir, "ca", "export", self.proxy_ca],
        ):
            r = run(cmd)
            assert r.returncode == 0, r.stderr.decode()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return Pki(str(tmp_path_factory.mktemp("pki")))


class Upstream:
    def __init__(self, tls_pem=None, tls_max=None, host="127.0.0.1"):
        args = [sys.executable, os.path.join(HERE, "upstream_server.py"), "--port", "0",
                "--host", host]
        if tls_pem:
            args += ["--tls", tls_pem]
        if tls_max:
            args += ["--tls-max", tls_max]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=clean_env())
        line = self.proc.stdout.readline().decode()
        m = re.match(r"READY (\d+)", line)
        assert m, "upstream server did not start: %r" % line
        self.port = int(m.group(1))
        self.host = host

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def https_upstream(pki):
    u = Upstream(pki.leaf)
    yield u
    u.stop()


@pytest.fixture(scope="session")
def http_upstream():
    u = Upstream()
    yield u
    u.stop()


class Proxy:
    """A running tlspeek. stdout/stderr go to files so that a test can read
    what it showed; stop() ends it with SIGTERM and returns the exit code."""

    def __init__(self, pki, args=(), ca_dir=None, extra_env=None, preexec_fn=None):
        self.dir = tempfile.mkdtemp(prefix="tlspeek-e2e-")
        self.port = free_port()
        self.out_path = os.path.join(self.dir, "stdout")
        self.err_path = os.path.join(self.dir, "stderr")
        self.ca_dir = ca_dir or pki.proxy_ca_dir
        cmd = [BIN, "--ca-dir", self.ca_dir, "-l", "127.0.0.1:%d" % self.port,
               "--upstream-ca", pki.upstream_ca] + list(args)
        env = clean_env(**(extra_env or {}))
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, env=env,
                                     preexec_fn=preexec_fn)
        deadline = time.time() + 15
        while time.time() < deadline:
            if "info: listening on" in self.stderr():
                break
            if self.proc.poll() is not None:
                raise RuntimeError("tlspeek exited early: %s" % self.stderr())
            time.sleep(0.02)
        else:
            raise TimeoutError("tlspeek did not start: %s" % self.stderr())
        self.url = "http://127.0.0.1:%d" % self.port

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_stdout(self, needle, timeout=10.0):
        """Output is written by a writer thread: wait until `needle` shows."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = self.stdout()
            if needle in out:
                return out
            time.sleep(0.05)
        raise AssertionError("%r not in tlspeek's output:\n%s" % (needle, self.stdout()[-4000:]))

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        self._err.close()
        return self.proc.returncode


@pytest.fixture
def proxy_factory(pki):
    started = []

    def make(*args, **kw):
        p = Proxy(pki, args, **kw)
        started.append(p)
        return p

    yield make
    for p in started:
        rc = p.stop()
        # A proxy that crashed (ASan, abort) fails the test that used it.
        assert rc in (0, -signal.SIGKILL), "tlspeek exit %s\nstderr:\n%s" % (rc, p.stderr()[-4000:])


def curl(*args, timeout=60, env=None):
    """Runs curl; returns CompletedProcess with bytes stdout/stderr."""
    cmd = ["curl", "-sS", "--max-time", str(timeout)] + list(args)
    return subprocess.run(cmd, capture_output=True, timeout=timeout + 10, env=env or clean_env())
