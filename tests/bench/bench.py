#!/usr/bin/env python3
"""tlspeek's benchmark: HTTPS load through tlspeek in reverse mode next to the
same load straight to the upstream, measured in one run on this machine.

Upstream: nginx on 127.0.0.1 (TLS with an RSA-2048 certificate, and plain
HTTP), serving a 1 KiB file and a 64 MiB file. Load: wrk (which resumes TLS
sessions when it reconnects). Everything runs on 127.0.0.1.

Columns:
  req/s        requests per second reported by wrk
  proxy CPU    tlspeek's user+system CPU time (from /proc/PID/stat) per 1000
               requests — the robust figure on a shared 2-core machine
Scenarios:
  keep-alive   32 connections, each sending many 1 KiB requests
  new-conn     every request on a new connection (Connection: close)
  bulk         64 MiB downloads, MB/s

Absolute numbers move with machine load; compare ratios from one run.
Usage: bench.py --bin ./tlspeek [--quick]
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d never opened" % port)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def wrk(url, seconds, conns, threads=1, close=False):
    args = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency", url]
    if close:
        args[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    scale = {"B": 1e-6, "KB": 1.024e-3, "MB": 1.048576, "GB": 1073.741824}[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return {"rps": rps, "total": total, "mbps": float(m.group(1)) * scale,
            "errors": errors.group(0) if errors else ""}


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  ssl_session_cache shared:SSL:10m;
  server {{
    listen 127.0.0.1:{tls_port} ssl;
    listen 127.0.0.1:{http_port};
    ssl_certificate {dir}/leaf.pem;
    ssl_certificate_key {dir}/leaf.pem;
    root {dir}/www;
  }}
}}
"""


class Run:
    def __init__(self, binary, quick):
        self.bin = binary
        self.quick = quick
        self.dir = tempfile.mkdtemp(prefix="tlspeek-bench-")
        self.seconds = 3 if quick else 10
        os.chmod(self.dir, 0o755)  # nginx's workers run as an unprivileged user
        os.makedirs(self.dir + "/www")
        with open(self.dir + "/www/1k", "wb") as f:
            f.write(os.urandom(1024))
        with open(self.dir + "/www/64m", "wb") as f:
            f.write(os.urandom(64 << 20))
        ca = self.dir + "/upstream-ca"
        subprocess.run([binary, "--ca-dir", ca, "--leaf-key", "rsa2048", "ca", "mint", "localhost",
                        "127.0.0.1", "--out", self.dir + "/leaf.pem"], check=True,
                       capture_output=True)
        subprocess.run([binary, "--ca-dir", ca, "ca", "export", self.dir + "/upstream-ca.pem"],
                       check=True, capture_output=True)
        self.tls_port, self.http_port = free_port(), free_port()
        with open(self.dir + "/nginx.conf", "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, tls_port=self.tls_port,
                                      http_port=self.http_port))
        self.nginx = subprocess.Popen(["nginx", "-c", self.dir + "/nginx.conf", "-e",
                                       self.dir + "/nginx-error.log"],
                                      stderr=subprocess.DEVNULL)
        wait_port(self.tls_port)

    def start_tlspeek(self, extra=()):
        port = free_port()
        args = [self.bin, "--ca-dir", self.dir + "/proxy-ca", "-q", "-l", "127.0.0.1:%d" % port,
                "-m", "reverse:https://127.0.0.1:%d" % self.tls_port, "--upstream-ca",
                self.dir + "/upstream-ca.pem"] + list(extra)
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        return p, port

    def measure(self, url, pid=None, **kw):
        c0 = cpu_seconds(pid) if pid else 0.0
        r = wrk(url, self.seconds, **kw)
        r["cpu_ms_per_1k"] = (cpu_seconds(pid) - c0) * 1e6 / max(r["total"], 1) if pid else None
        return r

    def close(self):
        self.nginx.send_signal(signal.SIGQUIT)
        try:
            self.nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.nginx.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--quick", action="store_true", help="short runs, for use while working")
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit("bench: %s is missing (make bench installs it)" % tool)
    run = Run(os.path.abspath(args.bin), args.quick)
    rows = []
    try:
        direct = "https://127.0.0.1:%d" % run.tls_port
        px, pport = run.start_tlspeek()
        via = "https://127.0.0.1:%d" % pport
        scenarios = [("keep-alive 1 KiB", "/1k", dict(conns=32)),
                     ("new-conn 1 KiB", "/1k", dict(conns=16, close=True)),
                     ("bulk 64 MiB", "/64m", dict(conns=4))]
        for name, path, kw in scenarios:
            d = run.measure(direct + path, **kw)
            t = run.measure(via + path, pid=px.pid, **kw)
            rows.append((name, d, t))
        px.send_signal(signal.SIGTERM)
        px.wait(timeout=20)
    finally:
        run.close()

    print()
    print("| scenario | direct req/s | tlspeek req/s | tlspeek/direct | tlspeek CPU ms per 1k req | "
          "direct MB/s | tlspeek MB/s |")
    print("|---|---|---|---|---|---|---|")
    for name, d, t in rows:
        print("| %s | %.0f | %.0f | %.2f | %.1f | %.1f | %.1f |" % (
            name, d["rps"], t["rps"], t["rps"] / d["rps"] if d["rps"] else 0,
            t["cpu_ms_per_1k"], d["mbps"], t["mbps"]))
        for label, r in (("direct", d), ("tlspeek", t)):
            if r["errors"]:
                print("  (%s %s: %s)" % (name, label, r["errors"]))
    print("\n%d s per measurement, wrk on 127.0.0.1, nginx upstream (RSA-2048), tlspeek -q, "
          "reverse mode, %d cores." % (run.seconds, os.cpu_count()))


if __name__ == "__main__":
    main()
