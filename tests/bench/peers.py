"""The upstream (nginx) and every peer bench.py compares, each in reverse mode on
127.0.0.1, presenting an RSA-2048 certificate to the client unless stated.

Each peer is started fresh for every scenario (and stopped after it), so a
scenario's transcripts can be deleted at once and one scenario cannot leave a
grown heap or a crashed process to the next.
"""
import copy
import os
import re
import shutil
import subprocess

from benchlib import free_port, wait_port

NGINX_CONF = """
# Upstream for the benchmark. worker_processes 1, as in the first harness: one
# core for the origin, leaving the other to the proxy under test and wrk (the
# "direct" row is therefore one nginx worker terminating one TLS leg).
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  ssl_session_cache shared:SSL:10m;
  server {{
    listen 127.0.0.1:{tls_port} ssl;
    listen 127.0.0.1:{http_port};
    ssl_certificate {dir}/upstream.pem;
    ssl_certificate_key {dir}/upstream.pem;
    root {dir}/www;
  }}
  # The HTTP/2 scenario's origin: the same files, h2 offered by ALPN.
  server {{
    listen 127.0.0.1:{h2_port} ssl http2;
    http2_max_concurrent_streams 256;
    ssl_certificate {dir}/upstream.pem;
    ssl_certificate_key {dir}/upstream.pem;
    root {dir}/www;
  }}
}}
"""

HAPROXY_CFG = """
global
  nbthread 2
  maxconn 8000  # needs ~2 fds per connection; RLIMIT_NOFILE may be 20000
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
frontend fe
  bind 127.0.0.1:{port} ssl crt {dir}/proxy-rsa.pem alpn http/1.1
  default_backend be
backend be
  # haproxy 2.6 defaults: http-reuse safe (idle backend connections are shared),
  # backend TLS sessions cached per server and resumed; no log lines configured.
  server s1 127.0.0.1:{up} ssl verify required ca-file {dir}/upstream-ca.pem sni str(localhost)
"""

# The HTTP/2 scenario: h2 on both legs (the backend to nginx's h2 port).
HAPROXY_H2_CFG = HAPROXY_CFG.replace("alpn http/1.1", "alpn h2,http/1.1").replace(
    "sni str(localhost)", "sni str(localhost) alpn h2")


class Upstream:
    """nginx on 127.0.0.1 with TLS (RSA-2048 certificate, own CA) and plain HTTP."""

    def __init__(self, env):
        self.env = env
        d = env.dir
        os.makedirs(d + "/www")
        with open(d + "/www/1k", "wb") as f:
            f.write(os.urandom(1024))
        with open(d + "/www/64m", "wb") as f:
            f.write(os.urandom(64 << 20))
        with open(d + "/www/256k", "wb") as f:
            f.write(os.urandom(256 << 10))
        env.tlspeek_ca(d + "/upstream-ca", ["--leaf-key", "rsa2048", "ca", "mint", "localhost",
                                            "127.0.0.1", "--out", d + "/upstream.pem"])
        env.tlspeek_ca(d + "/upstream-ca", ["ca", "export", d + "/upstream-ca.pem"])
        os.chmod(d + "/upstream.pem", 0o644)  # read by nginx's master (root) only, but be safe
        self.tls_port, self.http_port, self.h2_port = free_port(), free_port(), free_port()
        with open(d + "/nginx.conf", "w") as f:
            f.write(NGINX_CONF.format(dir=d, tls_port=self.tls_port, http_port=self.http_port,
                                      h2_port=self.h2_port))
        self.proc = env.procs.start(["nginx", "-c", d + "/nginx.conf", "-e",
                                     d + "/nginx-error.log"], d + "/nginx.log")
        wait_port(self.tls_port, self.proc)

    def port_for(self, scen):
        """The TLS port a scenario's peers forward to: h2-capable for the h2 scenario."""
        return self.h2_port if scen == "h2" else self.tls_port


class Peer:
    """One row of the table. start() returns (pid whose tree's CPU/RSS is the proxy's, port)."""
    slug = "peer"
    label = "peer"
    cpus = None            # CPU affinity of the proxy (None: all)
    loadgen_cpus = None    # affinity of wrk and the nginx upstream while this peer is measured
    scenarios = ("keepalive", "newconn", "fullhs", "bulk", "idle")
    scen = None            # the scenario being run (set by bench.run_one before start)
    seconds = None         # measurement length, when shorter than the run's
    is_proxy = True
    kind = "peer"

    def __init__(self, env):
        self.env = env
        self.proc = None

    def start(self, workdir, port):
        raise NotImplementedError

    def stop(self):
        if self.proc is not None:
            status = self.env.procs.stop(self.proc)
            self.proc = None
            return status
        return None


class Direct(Peer):
    slug = "direct"
    label = "nginx direct (one TLS leg: the limit)"
    is_proxy = False
    kind = "direct"
    scenarios = ("keepalive", "newconn", "fullhs", "bulk", "h2")

    def start(self, workdir, port):
        up = self.env.upstream
        return up.proc.pid, up.port_for(self.scen)


class Haproxy(Peer):
    slug = "haproxy"
    label = "haproxy (TLS both legs, no logging)"
    kind = "haproxy"
    scenarios = Peer.scenarios + ("h2",)

    def start(self, workdir, port):
        cfg = os.path.join(workdir, "haproxy.cfg")
        conf = HAPROXY_H2_CFG if self.scen == "h2" else HAPROXY_CFG
        with open(cfg, "w") as f:
            f.write(conf.format(port=port, dir=self.env.dir,
                                up=self.env.upstream.port_for(self.scen)))
        # -db: foreground, no master-worker: one process with nbthread 2 threads.
        self.proc = self.env.procs.start(["haproxy", "-db", "-f", cfg],
                                         os.path.join(workdir, "stderr.log"), cpus=self.cpus)
        wait_port(port, self.proc)
        return self.proc.pid, port


class Sslsplit(Peer):
    kind = "sslsplit"

    def __init__(self, env, content_log):
        super().__init__(env)
        self.content_log = content_log
        self.slug = "sslsplit-content" if content_log else "sslsplit-connect"
        self.label = "sslsplit (content log)" if content_log else "sslsplit (connect log)"

    def start(self, workdir, port):
        d = self.env.dir
        os.chmod(workdir, 0o777)  # the privilege-separated child runs as nobody
        args = ["sslsplit", "-u", "nobody",
                "-k", d + "/sslsplit-ca.pem", "-c", d + "/sslsplit-ca.pem",  # RSA-2048 CA
                "-K", d + "/sslsplit-leafkey.pem",                          # RSA-2048 leaf key
                "-l", os.path.join(workdir, "connect.log")]
        if self.content_log:
            args += ["-L", os.path.join(workdir, "content.log")]
        args += ["ssl", "127.0.0.1", str(port), "127.0.0.1", str(self.env.upstream.tls_port)]
        # Foreground (no -d); it echoes each connection line to stdout: kept in a file.
        self.proc = self.env.procs.start(args, os.path.join(workdir, "stderr.log"),
                                         stdout_path=os.path.join(workdir, "stdout.log"),
                                         cpus=self.cpus)
        wait_port(port, self.proc)
        return self.proc.pid, port


class Mitmdump(Peer):
    slug = "mitmdump"
    label = "mitmdump (quiet)"
    kind = "mitmdump"
    scenarios = Peer.scenarios + ("h2",)

    def start(self, workdir, port):
        confdir = self.env.dir + "/mitmproxy"  # its CA (RSA-2048), made on the first start
        args = ["mitmdump", "-q", "--mode", "reverse:https://127.0.0.1:%d"
                % self.env.upstream.port_for(self.scen), "--listen-host", "127.0.0.1",
                "--listen-port", str(port), "--ssl-insecure", "--set", "confdir=" + confdir]
        if self.scen == "h2":
            # mitmdump 8's default eager upstream connection answers the client's ALPN with
            # nothing (http/1.1); lazily it negotiates h2 on both legs.
            args += ["--set", "connection_strategy=lazy"]
        self.proc = self.env.procs.start(args, os.path.join(workdir, "stderr.log"),
                                         cpus=self.cpus)
        wait_port(port, self.proc, timeout=30)
        return self.proc.pid, port


class Tlspeek(Peer):
    kind = "tlspeek"

    # --har etc. and the file each writes, by sink.
    SINK_FILES = {"har": ("--har", "flows.har"), "jsonl": ("--jsonl", "flows.jsonl"),
                  "pcap": ("--pcap", "flows.pcap"), "keylog": ("--keylog", "keys.log")}

    def __init__(self, env, slug, label, extra=(), console_file=False, sinks=(),
                 cpus=None, loadgen_cpus=None, scenarios=None, seconds=None):
        super().__init__(env)
        self.slug, self.label = slug, label
        self.extra = list(extra)
        self.console_file = console_file
        self.sinks = tuple(sinks)
        self.seconds = seconds  # measurement length, when shorter than the run's
        self.cpus, self.loadgen_cpus = cpus, loadgen_cpus
        if scenarios:
            self.scenarios = scenarios

    def based_on(self, binary):
        """The same row, run with another tlspeek binary (bench.py --base)."""
        twin = copy.copy(self)
        twin.slug, twin.label, twin.binary = self.slug + "@base", self.label + " [base]", binary
        return twin

    binary = None  # another build than env.bin (based_on)
    # In `extra`: a loopback address with a port free when the peer starts (--web's), picked
    # at every start: one picked when the peers were made could since have gone to nginx.
    FREE_ADDR = "127.0.0.1:<free port>"

    def start(self, workdir, port):
        env = self.env
        args = [self.binary or env.bin, "--ca-dir", env.dir + "/proxy-ca", "-l", "127.0.0.1:%d" % port,
                "-m", "reverse:https://127.0.0.1:%d" % env.upstream.port_for(self.scen),
                "--upstream-ca", env.dir + "/upstream-ca.pem"]
        args += ["127.0.0.1:%d" % free_port() if a == self.FREE_ADDR else a for a in self.extra]
        for sink in self.sinks:
            opt, name = self.SINK_FILES[sink]
            args += [opt, os.path.join(workdir, name)]
        stdout = os.path.join(workdir, "console.txt") if self.console_file else None
        self.proc = env.procs.start(args, os.path.join(workdir, "stderr.log"),
                                    stdout_path=stdout, cpus=self.cpus)
        wait_port(port, self.proc)
        return self.proc.pid, port

    def outputs(self, workdir):
        """Sizes of the transcript / console files this run wrote (bytes)."""
        names = []
        names += [self.SINK_FILES[sink][1] for sink in self.sinks]
        if self.console_file:
            names.append("console.txt")
        out = {}
        for n in names:
            p = os.path.join(workdir, n)
            out[n] = os.path.getsize(p) if os.path.exists(p) else None
        return out


def prepare_peer_material(env):
    """Certificates for haproxy (RSA-2048 leaf) and sslsplit (RSA-2048 CA and leaf key),
    minted with tlspeek's own `ca` commands."""
    d = env.dir
    env.tlspeek_ca(d + "/haproxy-ca", ["--leaf-key", "rsa2048", "ca", "mint", "localhost",
                                       "127.0.0.1", "--out", d + "/proxy-rsa.pem"])
    env.tlspeek_ca(d + "/sslsplit-ca", ["--ca-key-type", "rsa2048", "--leaf-key", "rsa2048",
                                        "ca", "mint", "unused.invalid",
                                        "--out", d + "/sslsplit-leaf.pem"])
    shutil.copy(d + "/sslsplit-ca/tlspeek-ca.pem", d + "/sslsplit-ca.pem")
    subprocess.run(["openssl", "pkey", "-in", d + "/sslsplit-leaf.pem",
                    "-out", d + "/sslsplit-leafkey.pem"], check=True, capture_output=True,
                   timeout=30)


VERSION_CMDS = {"nginx": (["nginx", "-v"], r"nginx/([\d.]+)"),
                "haproxy": (["haproxy", "-v"], r"version ([\d.]+)"),
                "sslsplit": (["sslsplit", "-V"], r"SSLsplit ([\d.]+)"),
                "mitmdump": (["mitmdump", "--version"], r"Mitmproxy: ([\d.]+)")}


def tool_version(kind):
    cmd, rx = VERSION_CMDS[kind]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(rx, p.stdout + p.stderr)
    return m.group(1) if m else None


def label_versions(peers):
    """Puts the installed version after each peer's name: 'haproxy 2.6.12 (...)'."""
    for p in peers:
        kind = "nginx" if p.kind == "direct" else p.kind
        if kind not in VERSION_CMDS:
            continue
        v = tool_version(kind)
        if v:
            p.label = p.label.replace(kind, "%s %s" % (kind, v), 1)


def missing_tool(peer):
    tool = {"haproxy": "haproxy", "sslsplit": "sslsplit", "mitmdump": "mitmdump"}.get(peer.kind)
    if tool and shutil.which(tool) is None:
        return "%s not installed (make bench installs it)" % tool
    return None
