#!/usr/bin/env python3
"""tlspeek's benchmark: tlspeek in reverse mode next to haproxy, sslsplit and
mitmdump doing the same job, and next to the upstream served directly, all
measured in one run on this machine.

  make bench        every peer, 10 s per measurement (about 11-13 minutes)
  make bench-quick  tlspeek -q, tlspeek -q --web and direct only, 3 s per measurement
  bench.py --bin ./tlspeek --hsload build/bench/hsload [--quick] [--seconds N]
           [--only slug,slug] [--scenarios scen,scen] [--idle N] [--base BIN] [--rounds N]
           (--base: every tlspeek row again with another build, e.g. main's, each next
           to its counterpart, so that both see the same machine load)

Setup (everything on 127.0.0.1; every load is bounded in time):
  upstream  nginx, worker_processes 1, TLS with an RSA-2048 certificate (and
            plain HTTP), serving a 1 KiB file and a 64 MiB file. Its protocols
            are nginx's defaults: up to TLS 1.2 for nginx 1.22 (Debian 12), so
            the "direct" row and every proxy's upstream leg are TLS 1.2 there.
  peers     each runs in reverse mode on the same port in turn, started fresh
            for every scenario, presenting an RSA-2048 certificate to clients:
            haproxy (nbthread 2, no logging, backend TLS verified and resumed),
            sslsplit (RSA-2048 CA and leaf key; connect log, or connect +
            content log), mitmdump -q (its RSA-2048 CA), and tlspeek: -q;
            console at detail 1 with stdout to a file; -q with --har, --jsonl,
            --pcap and --keylog; -q with each of those four alone (keep-alive
            and bulk only, measured for half the time, at least 2 s); -q
            --leaf-key rsa2048 (like for like with the peers' certificates:
            tlspeek's default leaf is P-256); -q --web with no browser
            connected (row tlspeek-web, keep-alive and bulk, like a sink:
            the flow store on, the page's server idle).
            "direct" is the same clients straight to nginx: one TLS leg, the
            upper limit.

Scenarios (identical client parameters for every peer):
  new-conn    wrk -t1 -c16 -H 'Connection: close' /1k. wrk resumes its TLS
              session when it reconnects: new TCP + resumed handshake (TLS 1.3
              to the proxies, TLS 1.2 to nginx direct).
  full hs     hsload -n 16 /1k (tests/bench/hsload.c, built by make bench):
              one process keeps 16 connections in flight (epoll); each is a
              new TCP connection, a full TLS handshake (no session offered, no
              ticket asked for; TLS 1.3 servers send theirs anyway, unused),
              GET /1k with Connection: close, read to the close. It does not
              check the certificate chain (SSL_VERIFY_NONE); s_time checks it
              against the system trust store on every connection (searching
              /etc/ssl/certs) and then ignores the verdict. It replaced 16
              `openssl s_time -new` processes, which cost about twice the
              client CPU per handshake (1.1-1.4 ms vs 0.5-0.7 ms here) on the
              same two cores as the peer; hsload's own CPU per 1k connections
              is in the notes.
  keep-alive  wrk -t1 -c32 /1k (many 1 KiB requests per connection).
  bulk        wrk -t1 -c4 /64m, MB/s (1 MB = 10^6 bytes).
  HTTP/2      h2load -c 4 -m 32 /1k against nginx's h2 port through the peers that speak
              h2 on both legs (haproxy, mitmdump, tlspeek) and direct; then 100 streams of
              /256k on one connection, the slowest stream's time over the median's
              (tests/bench/h2bench.py).
  idle RSS    2,000 TLS connections held open by idle_conns.py, each after one
              request; (VmRSS of the proxy's process tree with all open -
              VmRSS before opening them) / 2,000, in KiB. Beside it: OpenSSL's
              floor, the heap one idle server-side TLS connection holds in
              OpenSSL alone (tests/bench/tls_floor.c, built with cc at run time).

Proxy CPU is utime+stime from /proc/PID/stat of the proxy process (all its
threads) summed over its process tree (sslsplit's privilege-separated child,
nginx's worker), read before and after each load, per 1,000 requests or
connections. For "direct" it is nginx's own CPU.

Scaling (-t 1 vs -t 2, keep-alive): the target is stated for a load generator
on other cores, which a 2-core machine does not have. The -t 1 row pins
tlspeek to CPU 1 and wrk + the nginx upstream to CPU 0 (taskset semantics via
sched_setaffinity). The -t 2 row keeps wrk + nginx on CPU 0 and lets tlspeek's
two workers use both CPUs, so one of them shares CPU 0 with the load generator:
its raw rate understates scaling. The projection divides that out: tlspeek's
requests per CPU-second at -t 2, times the CPU two dedicated cores would give
its workers (2, or less when one worker carried more than half of the work:
1 / the busiest thread's share), over the -t 1 row's requests per CPU-second.
It shows whether the per-request cost stays flat and both workers share the
load; it cannot see lock waits. Both raw and projected ratios are printed.

Recording: a table puts each transcript sink alone, all four, and sslsplit's
content log next to tlspeek -q (keep-alive CPU per request and bulk MB/s, as
ratios); the files they wrote are listed in the notes. The body of /1k and
/64m is random bytes, so HAR and JSON lines store it as base64.

Rounds (keep-alive of the rows that the keep-alive CPU targets compare: haproxy,
tlspeek -q, console detail 1, --web, each sink, all four, sslsplit's content log,
and their @base twins): this machine's
speed drifts by 20-30% over minutes (other tenants of its host), enough to
decide a 1.0x comparison of two rows measured a minute apart. So these rows
are measured in --rounds rounds (default 5) of a few seconds each, one row
after the other in every round (every other round in reverse order, so that a
steady drift favours no row), each a freshly started process. A row's cell is
its median round; a ratio between two of these rows is the median of the
per-round ratios (both rows of a round saw the same machine). Every round's
number is in the notes. --rounds 1 measures each row once, for its full time.

The table is printed at the end and written to tests/bench/out/latest.md
(latest-quick.md for --quick, latest-only.md for --only or --scenarios). Absolute numbers
move with machine load (this is a shared 2-core machine): compare ratios from
one run, and CPU per request rather than rates.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import (PeerFailed, Procs, check_serves, hold_idle, hsload_full, tls_floor,  # noqa: E402
                      machine_busy, raise_nofile, resumption_probe, set_tree_affinity,
                      thread_cpu, thread_names, timed_download, tree_cpu, tree_rss_kib, wrk, free_port,
                      log_tail)
import h2bench as H2  # noqa: E402
import peers as P  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = ("keepalive", "newconn", "fullhs", "bulk", "idle", "h2")
SCEN_NAME = {"keepalive": "keep-alive", "newconn": "new-conn", "fullhs": "full handshakes",
             "bulk": "bulk", "idle": "idle RSS", "h2": "HTTP/2"}
FULLHS_CLIENTS = 16
IDLE_CONNS = 2000
SINKS = ("har", "jsonl", "pcap", "keylog")
TX_SLUGS = ["tlspeek-" + sink for sink in SINKS] + ["tlspeek-tx"]


def sink_seconds(seconds):
    """Measurement length of the one-sink rows (keep-alive and bulk only): half the run's
    (at least 2 s), so that the four rows add about a minute to a full run."""
    return max(2, seconds // 2)


# Keep-alive rows measured in interleaved rounds (see the module docstring): the rows of
# every keep-alive CPU target.
ROUND_SLUGS = ["haproxy", "tlspeek", "tlspeek-d1", "tlspeek-web"] + TX_SLUGS + ["sslsplit-content"]


def round_seconds(seconds):
    """Length of one round's measurement: 3 s for the default 10 s."""
    return max(2, seconds * 3 // 10)


def merge_rounds(rounds):
    """One result for a row measured in rounds: its median round (by CPU per request; the
    lower of the two middle ones for an even count), every round's numbers in "rounds", the
    CPU by thread summed over all of them."""
    failed = [r for r in rounds if "na" in r]
    if failed:
        return dict(failed[0])
    ok = [r for r in rounds if r.get("cpu_ms_per_1k") is not None]
    if not ok:
        return dict(rounds[0])
    res = dict(sorted(ok, key=lambda r: r["cpu_ms_per_1k"])[(len(ok) - 1) // 2])
    res["rounds"] = [{"cpu_ms_per_1k": r.get("cpu_ms_per_1k"), "rate": r.get("rate")}
                     for r in rounds]
    res["count"] = sum(r["count"] for r in rounds)
    by_name = {}
    for r in rounds:
        for name, secs in r.get("by_name", {}).items():
            by_name[name] = by_name.get(name, 0) + secs
    res["by_name"] = by_name
    return res


def progress(scen, r):
    """The progress line's account of one measurement."""
    if "na" in r:
        return "n/a (%s)" % r["na"]
    if scen == "idle":
        return "%.1f KiB per connection (%d held)" % (r["rss_per_conn"], r["ok"])
    if scen == "bulk":
        return "%s MB/s, %s s CPU per GB" % (fnum(r["mbps"]), fnum(r["cpu_s_per_gb"]))
    if scen == "h2":
        return "%s/s, %s ms CPU per 1k, slowest of 100 streams %s× the median" % (
            fnum(r["rate"]), fnum(r["cpu_ms_per_1k"]),
            fnum(r["spread"]) if r.get("spread") else "?")
    return "%s/s, %s ms CPU per 1k" % (fnum(r["rate"]), fnum(r["cpu_ms_per_1k"]))


def run_rounds(env, group, results, notes):
    """Keep-alive for the rows of `group`, in env.rounds interleaved rounds."""
    per = {p.slug: [] for p in group}
    secs = round_seconds(env.seconds)
    for i in range(env.rounds):
        # Every other round in reverse order: a drift of the machine's speed during the
        # rounds favours no row.
        for p in (group if i % 2 == 0 else group[::-1]):
            if per[p.slug] and "na" in per[p.slug][-1]:
                continue  # it failed: no second try
            saved, p.seconds = p.seconds, secs
            t0 = time.time()
            try:
                r = run_one(env, p, "keepalive", notes)
            finally:
                p.seconds = saved
            per[p.slug].append(r)
            print("bench: %-15s %-58s %s  [%.0f s, round %d/%d]"
                  % (SCEN_NAME["keepalive"], p.label, progress("keepalive", r),
                     time.time() - t0, i + 1, env.rounds), flush=True)
    for p in group:
        results.setdefault(p.slug, {})["keepalive"] = merge_rounds(per[p.slug])
    notes.append("Keep-alive rounds (%d s each; ms CPU per 1k req, round by round): %s" % (
        secs, "; ".join("%s %s" % (p.slug, " ".join(
            fnum(r.get("cpu_ms_per_1k")) if "na" not in r else "n/a" for r in per[p.slug]))
            for p in group)))


def rounds_ratio(results, a_slug, b_slug, scen, key):
    """a ÷ b: the median of the per-round ratios when both rows were measured in the same
    rounds, else the plain ratio; None when either is missing."""
    ra, rb = results.get(a_slug, {}).get(scen), results.get(b_slug, {}).get(scen)
    if not ra or not rb or "na" in ra or "na" in rb:
        return None
    A, B = ra.get("rounds"), rb.get("rounds")
    if A and B and len(A) == len(B):
        rs = [x[key] / y[key] for x, y in zip(A, B) if x.get(key) is not None and y.get(key)]
        if len(rs) == len(A):
            return statistics.median_low(rs)
    a, b = ra.get(key), rb.get(key)
    return a / b if a is not None and b else None


class Env:
    def __init__(self, binary, seconds, idle_conns, hsload=None, base=None):
        self.seconds = seconds
        self.rounds = 1  # keep-alive rounds of ROUND_SLUGS (main sets it)
        self.idle_conns = idle_conns
        self.procs = Procs()
        self.dir = tempfile.mkdtemp(prefix="tlspeek-bench-")
        os.chmod(self.dir, 0o755)  # nginx's workers and sslsplit's child are unprivileged
        # A private copy: a rebuild of ./tlspeek during the run cannot change what is measured.
        self.bin = os.path.join(self.dir, "tlspeek")
        shutil.copy2(binary, self.bin)
        self.base = None
        if base:  # --base: the same tlspeek rows again with this binary
            self.base = os.path.join(self.dir, "tlspeek-base")
            shutil.copy2(base, self.base)
        self.hsload = None
        if hsload:
            self.hsload = os.path.join(self.dir, "hsload")
            shutil.copy2(hsload, self.hsload)
        p = subprocess.run([self.bin, "-V"], capture_output=True, text=True, timeout=30)
        self.version = " ".join((p.stdout + p.stderr).split())[:160]
        self.upstream = None
        self.proxy_port = free_port()

    def tlspeek_ca(self, ca_dir, args):
        subprocess.run([self.bin, "--ca-dir", ca_dir] + args, check=True, capture_output=True,
                       timeout=60)

    def close(self):
        self.procs.stop_all()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_peers(env, quick, only, scenarios=None):
    every = [
        P.Direct(env),
        P.Haproxy(env),
        P.Sslsplit(env, content_log=False),
        P.Sslsplit(env, content_log=True),
        P.Mitmdump(env),
        P.Tlspeek(env, "tlspeek", "tlspeek -q (defaults: P-256 leaf, a thread per core)", ["-q"],
                  scenarios=P.Peer.scenarios + ("h2",)),
        # The flow browser on, no page connected: what --web costs when nobody looks.
        P.Tlspeek(env, "tlspeek-web", "tlspeek -q --web (no browser connected)",
                  ["-q", "--web", P.Tlspeek.FREE_ADDR], scenarios=("keepalive", "bulk"),
                  seconds=sink_seconds(env.seconds)),
        P.Tlspeek(env, "tlspeek-d1", "tlspeek, console detail 1 → file", [], console_file=True),
        P.Tlspeek(env, "tlspeek-tx", "tlspeek -q --har --jsonl --pcap --keylog", ["-q"],
                  sinks=SINKS),
    ] + [
        P.Tlspeek(env, "tlspeek-" + sink, "tlspeek -q --" + sink, ["-q"], sinks=(sink,),
                  scenarios=("keepalive", "bulk"), seconds=sink_seconds(env.seconds))
        for sink in SINKS
    ] + [
        P.Tlspeek(env, "tlspeek-rsa", "tlspeek -q --leaf-key rsa2048", ["-q", "--leaf-key",
                                                                        "rsa2048"]),
        P.Tlspeek(env, "tlspeek-t1", "tlspeek -q -t 1 (on CPU 1; wrk + nginx on CPU 0)",
                  ["-q", "-t", "1"], cpus={1}, loadgen_cpus={0}, scenarios=("keepalive",)),
        P.Tlspeek(env, "tlspeek-t2", "tlspeek -q -t 2 (both CPUs; wrk + nginx on CPU 0)",
                  ["-q", "-t", "2"], loadgen_cpus={0}, scenarios=("keepalive",)),
    ]
    if os.cpu_count() < 2:
        every = [p for p in every if p.slug not in ("tlspeek-t1", "tlspeek-t2")]
    if only:
        every = [p for p in every if p.slug in only]
    elif quick:
        every = [p for p in every if p.slug in ("direct", "tlspeek", "tlspeek-web")]
    if env.base:  # each right after its own row, so that both see the same machine load
        every = [q for p in every for q in ([p, p.based_on(env.base)] if p.kind == "tlspeek"
                                            else [p])]
    if scenarios:
        for p in every:
            p.scenarios = tuple(s for s in p.scenarios if s in scenarios)
    return every


def scan_log(path):
    """(count, summary) of warning/error lines in a peer's stderr log; the summary gives
    the most frequent kinds of line (digits ignored) with their counts."""
    if not os.path.exists(path):
        return 0, ""
    kinds = {}
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace").strip()
            low = line.lower()
            if any(w in low for w in ("error", "warn", "fatal", "abort", "alert", "sanitizer",
                                      "crash")):
                key = re.sub(r"\d+", "N", line)[:140]
                kinds.setdefault(key, [0, line[:140]])[0] += 1
    n = sum(k[0] for k in kinds.values())
    top = sorted(kinds.values(), key=lambda k: -k[0])[:2]
    return n, "; ".join("%d× \"%s\"" % (c, line) for c, line in top)


def human(nbytes):
    if nbytes is None:
        return "missing"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return "%.1f %s" % (nbytes / size, unit)
    return "%d B" % nbytes


def sslsplit_protocols(workdir):
    """'client TLSv1.3:..., upstream TLSv1.2:...' from the first line of sslsplit's connect log."""
    try:
        with open(os.path.join(workdir, "connect.log")) as f:
            line = f.readline()
    except OSError:
        return None
    m1, m2 = re.search(r"sproto:(\S+)", line), re.search(r"dproto:(\S+)", line)
    if not (m1 and m2):
        return None
    return "client leg %s, upstream leg %s" % (m1.group(1), m2.group(1))


def run_one(env, peer, scen, notes):
    """Runs one scenario against one freshly started peer; returns a result dict."""
    workdir = os.path.join(env.dir, "run", "%s-%s" % (peer.slug, scen))
    os.makedirs(workdir)
    nginx_pid = env.upstream.proc.pid
    res = {}
    tag = "%s, %s" % (peer.label, SCEN_NAME[scen])
    started = False
    try:
        peer.scen = scen
        pid, port = peer.start(workdir, env.proxy_port)
        check_serves(port, peer.proc)
        started = True
        if peer.loadgen_cpus:
            set_tree_affinity(nginx_pid, peer.loadgen_cpus)
        T = peer.seconds or env.seconds
        if scen == "idle":
            time.sleep(0.5)
            rss0 = tree_rss_kib(pid)
            client, line = hold_idle(env.procs, port, env.idle_conns, workdir)
            try:
                ok = int(line.split("ok=")[1].split()[0])
                time.sleep(1.0)
                rss1 = tree_rss_kib(pid)
                alive_check(peer, "holding idle connections")
            finally:
                env.procs.stop(client)
            if ok < env.idle_conns:
                notes.append("%s: only %d of %d connections opened (%s)"
                             % (tag, ok, env.idle_conns, line))
            if ok == 0:
                raise PeerFailed("no idle connection opened: " + line)
            res = {"rss_per_conn": (rss1 - rss0) / ok, "rss0": rss0, "rss1": rss1, "ok": ok}
            return res
        c0 = tree_cpu(pid)
        th0 = thread_cpu(pid)
        url = "https://127.0.0.1:%d" % port
        if scen == "keepalive":
            r = wrk(url + "/1k", T, 32, cpus=peer.loadgen_cpus)
        elif scen == "newconn":
            r = wrk(url + "/1k", T, 16, close=True, cpus=peer.loadgen_cpus)
        elif scen == "bulk":
            r = wrk(url + "/64m", T, 4, timeout_s=60, cpus=peer.loadgen_cpus)
        elif scen == "h2":
            r = H2.h2load_rate(url + "/1k", T)
        else:
            r = hsload_full(env.hsload, port, T, FULLHS_CLIENTS)
        c1 = tree_cpu(pid)
        th1 = thread_cpu(pid)
        names = thread_names(pid)
        alive_check(peer, "the load")
        cpu = c1 - c0
        res = dict(r)
        res["cpu_s"] = cpu
        res["cpu_ms_per_1k"] = cpu * 1e6 / r["count"] if r["count"] else None
        if "gen_cpu_s" in r:
            res["gen_ms_per_1k"] = r["gen_cpu_s"] * 1e6 / r["count"] if r["count"] else None
        res["cores"] = cpu / r["wall"]
        res["threads"] = sorted((th1.get(t, 0) - th0.get(t, 0) for t in th1), reverse=True)
        by_name = {}
        for t in th1:
            name = names.get(t, "?")
            by_name[name] = by_name.get(name, 0) + th1[t] - th0.get(t, 0)
        res["by_name"] = by_name
        gb = r.get("mbps", 0) * r["wall"] / 1e3
        res["cpu_s_per_gb"] = cpu / gb if gb > 0 else None
        if scen == "bulk" and r["mbps"] == 0:
            # Nothing arrived within the run (mitmdump buffers whole responses): time one
            # download alone instead, bounded, and say so in the cell.
            n, secs, first = timed_download(port, "/64m", 90 if T >= 10 else 30)
            res["mbps"] = n / secs / 1e6
            res["fallback"] = ("no byte arrived within %d s with 4 connections; one 64 MiB "
                               "download alone: %s MB in %.1f s, first byte after %s"
                               % (T, fnum(n / 1e6), secs,
                                  "%.1f s" % first if first is not None else "never"))
            res["problems"] = []
        elif r["count"] == 0:
            res["problems"].append("no request completed")
        for p in r["problems"]:
            notes.append("%s: %s" % (tag, p))
        if scen == "newconn":
            res["resumed"] = resumption_probe(port)
        if scen == "h2":
            res["spread"], probs = H2.stream_spread(url + "/256k", workdir)
            notes.extend("%s: %s" % (tag, p) for p in probs)
        return res
    except PeerFailed as e:
        res = {"na": str(e), "start_failed": not started}
        return res
    except subprocess.TimeoutExpired as e:
        return {"na": "timed out: %s" % " ".join(e.cmd[:2])}
    finally:
        if peer.loadgen_cpus:
            set_tree_affinity(nginx_pid, set(range(os.cpu_count())))
        proc = peer.proc
        status = peer.stop()
        if peer.kind == "tlspeek":
            sizes = peer.outputs(workdir)
            if sizes:
                res["outputs"] = sizes
        if not started:
            pass  # the reason is in the cell already
        elif status == -signal.SIGKILL:
            notes.append("%s: did not exit within 10 s of SIGTERM (killed)" % tag)
        elif status is not None and (status < 0 and status != -signal.SIGTERM
                                     or peer.kind == "tlspeek" and status != 0):
            notes.append("%s: exit status %s after SIGTERM%s" % (tag, status, log_tail(proc)))
        n, summary = scan_log(os.path.join(workdir, "stderr.log"))
        if n:
            notes.append("%s: %d warning/error line(s) on stderr: %s" % (tag, n, summary))
        if peer.kind == "sslsplit" and scen == "keepalive":
            protos = sslsplit_protocols(workdir)
            if protos:
                notes.append("%s: connect log shows %s" % (peer.label, protos))
        shutil.rmtree(workdir, ignore_errors=True)


def alive_check(peer, during):
    if peer.proc is not None and peer.proc.poll() is not None:
        raise PeerFailed("died during %s (status %s)%s" % (during, peer.proc.returncode,
                                                           log_tail(peer.proc)))


# ---- formatting ---------------------------------------------------------------------------

def fnum(v):
    if v is None:
        return "—"
    if v >= 100:
        return "{:,.0f}".format(v)
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def fratio(v):
    return "—" if v is None else ("%.2f×" % v)


def cell(results, slug, scen, key):
    r = results.get(slug, {}).get(scen)
    if r is None:
        return "—"
    if "na" in r:
        return "n/a (%s)" % r["na"]
    if key == "mbps" and r.get("fallback"):
        return "%s (one download, see notes)" % fnum(r.get(key))
    return fnum(r.get(key))


def val(results, slug, scen, key):
    r = results.get(slug, {}).get(scen)
    if not r or "na" in r:
        return None
    return r.get(key)


def na_reason(results, *refs):
    for slug, scen in refs:
        r = results.get(slug, {}).get(scen)
        if r is None:
            return "%s %s not measured" % (slug, SCEN_NAME[scen])
        if "na" in r:
            return "%s %s: %s" % (slug, SCEN_NAME[scen], r["na"])
    return "no data"


COLUMNS = [("new-conn req/s", "newconn", "rate"),
           ("proxy CPU ms per 1k new conns", "newconn", "cpu_ms_per_1k"),
           ("full-handshake conn/s", "fullhs", "rate"),
           ("proxy CPU ms per 1k full handshakes", "fullhs", "cpu_ms_per_1k"),
           ("keep-alive 1 KiB req/s", "keepalive", "rate"),
           ("proxy CPU ms per 1k keep-alive req", "keepalive", "cpu_ms_per_1k"),
           ("bulk MB/s", "bulk", "mbps"),
           ("HTTP/2 req/s", "h2", "rate"),
           ("proxy CPU ms per 1k h2 req", "h2", "cpu_ms_per_1k"),
           ("RSS KiB per idle intercepted conn", "idle", "rss_per_conn")]


def main_table(peers, results):
    lines = ["| peer | " + " | ".join(c[0] for c in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for p in peers:
        cells = [cell(results, p.slug, scen, key) if scen in p.scenarios else "—"
                 for _, scen, key in COLUMNS]
        reasons = {r.get("na") for r in results.get(p.slug, {}).values()}
        if len(reasons) == 1 and None not in reasons:  # one failure for the whole row
            cells = ["n/a (%s)" % reasons.pop()] + ["n/a"] * (len(cells) - 1)
        lines.append("| %s | %s |" % (p.label, " | ".join(cells)))
    return lines


def ratio_table(peers, results):
    """tlspeek (default, and with the RSA-2048 leaf) divided by each other peer."""
    ours = [p for p in peers if p.slug in ("tlspeek", "tlspeek-rsa")]
    others = [p for p in peers if p.kind != "tlspeek"]
    if not ours or not others:
        return []
    lines = ["| tlspeek ÷ peer (rates: >1 is faster; CPU and RSS: <1 is cheaper) | "
             + " | ".join(c[0] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for o in others:
        for t in ours:
            cells = []
            for _, scen, key in COLUMNS:
                cells.append(fratio(rounds_ratio(results, t.slug, o.slug, scen, key)))
            lines.append("| %s ÷ %s | %s |" % (t.slug, o.slug, " | ".join(cells)))
    return lines


def transcript_table(peers, results, suffix=""):
    """Each transcript sink alone, all four, and sslsplit's content log, next to tlspeek -q:
    keep-alive CPU per request and bulk MB/s, with the ratios the targets use. With
    suffix "@base", the rows of the --base binary, against its own -q."""
    slugs = [p.slug for p in peers]
    rows = [s + suffix for s in TX_SLUGS + ["tlspeek-web"] if s + suffix in slugs]
    rows += [s for s in ["sslsplit-content"] if s in slugs]
    q = "tlspeek" + suffix
    if not rows or q not in slugs:
        return []
    label = {p.slug: p.label for p in peers}
    lines = ["| recording (keep-alive 1 KiB, bulk 64 MiB) | proxy CPU ms per 1k keep-alive req "
             "| ÷ tlspeek -q | ÷ sslsplit content log | bulk MB/s | ÷ tlspeek -q bulk |",
             "|---|---|---|---|---|---|"]
    for slug in [q] + rows:
        cpu = val(results, slug, "keepalive", "cpu_ms_per_1k")
        mbps = val(results, slug, "bulk", "mbps")
        cells = [cell(results, slug, "keepalive", "cpu_ms_per_1k")]
        for ref in (q, "sslsplit-content"):
            cells.append(fratio(rounds_ratio(results, slug, ref, "keepalive", "cpu_ms_per_1k")
                                if cpu is not None else None))
        cells.append(cell(results, slug, "bulk", "mbps"))
        b = val(results, q, "bulk", "mbps")
        cells.append(fratio(mbps / b) if mbps is not None and b else "—")
        lines.append("| %s | %s |" % (label[slug], " | ".join(cells)))
    return lines


def scaling(results):
    """(projected, raw, detail) for -t 2 over -t 1, keep-alive; see the module docstring."""
    r1 = results.get("tlspeek-t1", {}).get("keepalive")
    r2 = results.get("tlspeek-t2", {}).get("keepalive")
    if not r1 or not r2 or "na" in r1 or "na" in r2:
        return None, None, na_reason(results, ("tlspeek-t1", "keepalive"),
                                     ("tlspeek-t2", "keepalive"))
    raw = r2["rate"] / r1["rate"] if r1["rate"] else None
    e1 = r1["rate"] / r1["cores"] if r1["cores"] else None
    e2 = r2["rate"] / r2["cores"] if r2["cores"] else None
    th = r2["threads"]
    share = th[0] / sum(th) if th and sum(th) > 0 else 1.0
    if not e1 or not e2:
        return None, raw, "no CPU measured"
    proj = e2 * min(2.0, 1.0 / share) / e1
    detail = ("-t 1: %s req/s with tlspeek using %.2f cores; -t 2: %s req/s using %.2f cores, "
              "busiest thread %.0f%% of tlspeek's CPU"
              % (fnum(r1["rate"]), r1["cores"], fnum(r2["rate"]), r2["cores"], 100 * share))
    if r1["cores"] < 0.9:
        detail += (" (-t 1 did not saturate its core: wrk + nginx on the other core were the "
                   "limit, which is why the raw ratio says little)")
    return proj, raw, detail


def targets_table(results):
    t = []

    def ratio(name, a_ref, b_ref, key, limit, le, fmt=fratio):
        r = rounds_ratio(results, a_ref[0], b_ref[0], a_ref[1], key)
        if a_ref[1] != b_ref[1] or r is None:
            t.append((name, "n/a (%s)" % na_reason(results, a_ref, b_ref), "n/a"))
            return
        ok = r <= limit if le else r >= limit
        shown = fmt(r)
        if ("%.2f" % r) == ("%.2f" % limit):  # so that "2.00× missed" cannot happen
            shown = "%.3f×" % r
        t.append((name, shown, "met" if ok else "missed"))

    ratio("Keep-alive: proxy CPU per 1k req ≤ 1.25× haproxy's (tlspeek -q)",
          ("tlspeek", "keepalive"), ("haproxy", "keepalive"), "cpu_ms_per_1k", 1.25, True)
    ratio("Keep-alive: proxy CPU per 1k req ≤ 1.5× haproxy's (console detail 1 → file)",
          ("tlspeek-d1", "keepalive"), ("haproxy", "keepalive"), "cpu_ms_per_1k", 1.5, True)
    ratio("Keep-alive: rate ≥ 20× mitmdump's", ("tlspeek", "keepalive"),
          ("mitmdump", "keepalive"), "rate", 20, False)
    ratio("New connections (resumed, as wrk does): CPU per 1k ≤ 1.1× haproxy's",
          ("tlspeek", "newconn"), ("haproxy", "newconn"), "cpu_ms_per_1k", 1.1, True)
    ratio("New connections (resumed, as wrk does): rate ≥ 2× sslsplit's (connect log)",
          ("tlspeek", "newconn"), ("sslsplit-connect", "newconn"), "rate", 2, False)
    ratio("Full handshakes, RSA-2048 leaf: CPU per 1k ≤ 1.1× haproxy's",
          ("tlspeek-rsa", "fullhs"), ("haproxy", "fullhs"), "cpu_ms_per_1k", 1.1, True)
    ratio("Full handshakes, default P-256 leaf: rate ≥ 2× haproxy's",
          ("tlspeek", "fullhs"), ("haproxy", "fullhs"), "rate", 2, False)
    ratio("Bulk: MB/s ≥ 0.8× haproxy's", ("tlspeek", "bulk"), ("haproxy", "bulk"), "mbps", 0.8,
          False)
    for sink in SINKS:
        ratio("Recording, --%s alone: keep-alive CPU per 1k req ≤ 1.4× tlspeek -q's" % sink,
              ("tlspeek-" + sink, "keepalive"), ("tlspeek", "keepalive"), "cpu_ms_per_1k", 1.4,
              True)
    ratio("Recording, all four transcripts: keep-alive CPU per 1k req ≤ 2× tlspeek -q's",
          ("tlspeek-tx", "keepalive"), ("tlspeek", "keepalive"), "cpu_ms_per_1k", 2, True)
    ratio("Recording, all four transcripts: keep-alive CPU per 1k req ≤ 1.0× sslsplit's "
          "(content log)", ("tlspeek-tx", "keepalive"), ("sslsplit-content", "keepalive"),
          "cpu_ms_per_1k", 1.0, True)
    ratio("Flow browser, --web with no browser connected: keep-alive CPU per 1k req ≤ 1.1× "
          "tlspeek -q's", ("tlspeek-web", "keepalive"), ("tlspeek", "keepalive"),
          "cpu_ms_per_1k", 1.1, True)
    ratio("Bulk, all transcripts on: ≥ 0.8× tlspeek's own bulk without them",
          ("tlspeek-tx", "bulk"), ("tlspeek", "bulk"), "mbps", 0.8, False)
    ratio("HTTP/2 (h2 both legs): proxy CPU per 1k req ≤ 1.25× haproxy's",
          ("tlspeek", "h2"), ("haproxy", "h2"), "cpu_ms_per_1k", 1.25, True)
    ratio("HTTP/2: rate ≥ 20× mitmdump's", ("tlspeek", "h2"), ("mitmdump", "h2"), "rate", 20,
          False)
    spread = val(results, "tlspeek", "h2", "spread")
    name = "HTTP/2: 100 streams on one connection, slowest ≤ 3× the median stream's time"
    if spread is None:
        t.append((name, "n/a (%s)" % na_reason(results, ("tlspeek", "h2")), "n/a"))
    else:
        t.append((name, "%.2f×" % spread, "met" if spread <= 3 else "missed"))
    ratio("Memory: RSS per idle intercepted connection ≤ 1.1× haproxy's",
          ("tlspeek", "idle"), ("haproxy", "idle"), "rss_per_conn", 1.1, True)
    kib = val(results, "tlspeek", "idle", "rss_per_conn")
    if kib is None:
        t.append(("Memory: ≤ 16 KiB RSS per idle intercepted connection",
                  "n/a (%s)" % na_reason(results, ("tlspeek", "idle")), "n/a"))
    else:
        floor = results.get("_floor")
        t.append(("Memory: ≤ 16 KiB RSS per idle intercepted connection",
                  "%.1f KiB%s" % (kib, " (OpenSSL's own floor here: %.1f KiB, see notes)" % floor
                                  if floor else ""),
                  "met" if kib <= 16 else "missed"))
    proj, raw, detail = scaling(results)
    name = "Scales with cores: -t 2 ≥ 1.6× the -t 1 keep-alive rate (projected, see notes)"
    if proj is None:
        t.append((name, "n/a (%s)" % detail, "n/a"))
    else:
        t.append((name, "%.2f× (raw %.2f× on this box)" % (proj, raw or 0),
                  "met" if proj >= 1.6 else "missed"))
    lines = ["| target | measured ratio | met/missed |", "|---|---|---|"]
    lines += ["| %s | %s | %s |" % row for row in t]
    return lines, detail


def stop_system_services():
    """Installing nginx/haproxy from Debian may start their system services: stop the ones
    that run (by the PID in their pid file), so they hold no port or CPU during the run."""
    for svc, exe in (("nginx", "/usr/sbin/nginx"), ("haproxy", "/usr/sbin/haproxy")):
        pidfile = "/run/%s.pid" % svc
        try:
            pid = int(open(pidfile).read().split()[0])
            if os.readlink("/proc/%d/exe" % pid) != exe:
                continue
        except (OSError, ValueError, IndexError):
            continue
        print("bench: stopping the system %s service (pid %d)" % (svc, pid), flush=True)
        if os.path.isdir("/run/systemd/system"):
            subprocess.run(["systemctl", "stop", svc], capture_output=True, timeout=60)
            subprocess.run(["systemctl", "disable", svc], capture_output=True, timeout=60)
        else:
            subprocess.run(["service", svc, "stop"], capture_output=True, timeout=60)
        try:
            os.kill(pid, 0)
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def main():
    head, _, rest = __doc__.partition("\n\n")
    ap = argparse.ArgumentParser(description=" ".join(head.split()),
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=rest)
    ap.add_argument("--bin", required=True, help="the tlspeek binary")
    ap.add_argument("--hsload", default=os.path.join(HERE, "..", "..", "build", "bench", "hsload"),
                    help="the full-handshake load generator (make bench builds it; default "
                    "build/bench/hsload)")
    ap.add_argument("--quick", action="store_true", help="tlspeek -q, tlspeek -q --web and direct only, 3 s each")
    ap.add_argument("--seconds", type=int, help="seconds per measurement (default 10; quick 3)")
    ap.add_argument("--only", help="comma-separated peer slugs (direct, haproxy, "
                    "sslsplit-connect, sslsplit-content, mitmdump, tlspeek, tlspeek-d1, "
                    "tlspeek-web, tlspeek-tx, tlspeek-har, tlspeek-jsonl, tlspeek-pcap, tlspeek-keylog, tlspeek-rsa, "
                    "tlspeek-t1, tlspeek-t2)")
    ap.add_argument("--scenarios", help="comma-separated scenarios to run (keepalive, newconn, "
                    "fullhs, bulk, idle, h2; default all), e.g. idle alone for memory work")
    ap.add_argument("--rounds", type=int, help="interleaved keep-alive rounds of the rows the "
                    "keep-alive CPU targets compare (default 5; 1 with --quick): see above")
    ap.add_argument("--idle", type=int, default=IDLE_CONNS, help="idle connections held")
    ap.add_argument("--base", help="a second tlspeek binary (e.g. main's build): every tlspeek "
                    "row is measured again with it, as <slug>@base, interleaved in the same run, "
                    "and the recording table shows its ratios too")
    args = ap.parse_args()
    scenarios = SCENARIOS
    if args.scenarios:
        scenarios = tuple(x for x in SCENARIOS if x in args.scenarios.split(","))
        unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
        if unknown or not scenarios:
            sys.exit("bench: unknown scenario %s (known: %s)"
                     % (",".join(sorted(unknown)) or args.scenarios, ", ".join(SCENARIOS)))
    for tool in ("wrk", "nginx", "openssl"):
        if shutil.which(tool) is None:
            sys.exit("bench: %s is missing (make bench installs it)" % tool)
    if not os.access(args.hsload, os.X_OK):
        sys.exit("bench: %s is missing (make bench builds it)" % args.hsload)
    seconds = args.seconds or (3 if args.quick else 10)
    nofile = raise_nofile(65536)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that finally: cleans up
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    stop_system_services()

    started = time.time()
    background = machine_busy(1.0)
    env = Env(os.path.abspath(args.bin), seconds, args.idle, os.path.abspath(args.hsload),
              os.path.abspath(args.base) if args.base else None)
    env.rounds = max(1, args.rounds if args.rounds is not None else 1 if args.quick else 5)
    results, notes = {}, []
    floor_line = None
    only = set(args.only.split(",")) if args.only else None
    scen_only = set(args.scenarios.split(",")) if args.scenarios else None
    plist = make_peers(env, args.quick, only, scen_only)
    P.label_versions(plist)
    try:
        env.upstream = P.Upstream(env)
        P.prepare_peer_material(env)
        if "idle" in scenarios and any("idle" in p.scenarios for p in plist):
            pem = os.path.join(env.dir, "floor-leaf.pem")
            env.tlspeek_ca(os.path.join(env.dir, "floor-ca"), ["ca", "mint", "localhost",
                                                              "--out", pem])
            floor, why = tls_floor(env.dir, pem, env.idle_conns)
            if floor is None:
                notes.append("OpenSSL floor not measured: " + why)
            else:
                results["_floor"] = floor
                floor_line = ("OpenSSL floor: one idle server-side TLS 1.3 connection holds %.1f "
                             "KiB of heap in this machine's OpenSSL alone (tests/bench/"
                             "tls_floor.c: an SSL_CTX server with SSL_MODE_RELEASE_BUFFERS and a "
                             "P-256 leaf, handshake and one 1 KiB response over memory BIOs, "
                             "malloc in-use bytes per kept connection). No proxy that keeps the "
                             "client's TLS connection can be below it." % floor)
        for p in plist:
            why = P.missing_tool(p)
            if why:
                results[p.slug] = {s: {"na": why} for s in p.scenarios}
        for scen in scenarios:
            rounds = [p for p in plist if scen == "keepalive" and env.rounds > 1
                      and p.slug.split("@")[0] in ROUND_SLUGS and scen in p.scenarios
                      and scen not in results.get(p.slug, {})]
            for p in plist:
                if scen not in p.scenarios or p.slug in results and scen in results[p.slug]:
                    continue
                if p in rounds:
                    continue
                failed = [r for r in results.get(p.slug, {}).values() if r.get("start_failed")]
                if failed:  # it did not start for an earlier scenario: no second try
                    results[p.slug][scen] = dict(failed[0])
                    continue
                t0 = time.time()
                r = run_one(env, p, scen, notes)
                results.setdefault(p.slug, {})[scen] = r
                print("bench: %-15s %-58s %s  [%.0f s]" % (SCEN_NAME[scen], p.label,
                                                          progress(scen, r),
                                                          time.time() - t0), flush=True)
            if rounds:
                run_rounds(env, rounds, results, notes)
        background_after = machine_busy(1.0)
    finally:
        env.close()

    for p in plist:
        fb = results.get(p.slug, {}).get("bulk", {}).get("fallback")
        if fb:
            notes.append("%s, bulk: %s." % (p.label, fb))
    # transcripts written (a sanity check that the options did something)
    for slug in [t + sfx for t in TX_SLUGS + ["tlspeek-d1"] for sfx in ("", "@base")]:
        for scen in ("keepalive", "bulk"):
            r = results.get(slug, {}).get(scen, {})
            out = r.get("outputs")
            if out and "na" not in r:
                notes.append("%s %s wrote: %s" % (slug, SCEN_NAME[scen], ", ".join(
                    "%s %s" % (k, human(v))
                    for k, v in out.items())))
    # where a recording row's CPU went: the writer threads are named tlspeek-<sink>
    for p in plist:
        r = results.get(p.slug, {}).get("keepalive", {})
        if p.kind != "tlspeek" or not p.sinks or "na" in r or not r.get("count"):
            continue
        parts = sorted(r.get("by_name", {}).items(), key=lambda kv: -kv[1])
        notes.append("%s keep-alive CPU by thread, ms per 1k req%s: %s" % (
            p.slug, " (all rounds)" if r.get("rounds") else "", ", ".join(
            "%s %s" % (name, fnum(secs * 1e6 / r["count"])) for name, secs in parts)))
    resumed = ["%s %s" % (p.slug, "?" if results.get(p.slug, {}).get("newconn", {}).get(
        "resumed") is None else "%.0f%%" % (100 * results[p.slug]["newconn"]["resumed"]))
        for p in plist if "newconn" in p.scenarios and "na" not in results.get(p.slug, {}).get(
            "newconn", {"na": 1})]

    out = []
    out.append("## tlspeek benchmark (%s)" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    out.append("")
    out += main_table(plist, results)
    out.append("")
    rt = ratio_table(plist, results)
    if rt:
        out += rt
        out.append("")
    for suffix in ("", "@base"):
        tx = transcript_table(plist, results, suffix)
        if tx:
            out += tx
            out.append("")
    tt, scale_detail = targets_table(results)
    if args.quick or only:  # only the targets that the peers measured can be held to
        tt = tt[:2] + [row for row in tt[2:] if "| n/a |" not in row]
    if len(tt) > 2:
        out += tt
        out.append("")
    if any("rounds" in r.get("keepalive", {}) for r in results.values() if isinstance(r, dict)):
        out.append("Keep-alive of haproxy, tlspeek -q, console detail 1, --web, each transcript "
                   "sink, all four and sslsplit's content log (and their @base twins): %d "
                   "interleaved rounds of %d s "
                   "(every other one in reverse order), each row a fresh process in every round; "
                   "a row's cells are its median round (by CPU per request; the lower middle one "
                   "for an even count), a ratio between two of these rows the median of its %d "
                   "per-round ratios (every round is in the notes), their CPU by thread the sum "
                   "over all rounds." % (env.rounds, round_seconds(seconds), env.rounds))
    out.append("Setup: %d s per measurement (%d s for the bulk of the one-sink transcript rows "
               "and --web); %d cores; "
               "everything on 127.0.0.1; nginx upstream "
               "(worker_processes 1, RSA-2048, TLS 1.2 at most); every proxy in reverse mode "
               "presenting an RSA-2048 certificate except tlspeek's default P-256 leaf. new-conn: "
               "wrk -t1 -c16 'Connection: close' /1k (resumed handshakes: TLS 1.3 to the proxies, "
               "1.2 to nginx); full handshakes: hsload -n %d /1k (one process, a full handshake "
               "per connection); keep-alive: wrk -t1 -c32 /1k; bulk: wrk -t1 -c4 /64m; idle: %d "
               "TLS connections after one request each; HTTP/2: h2load -c 4 -m 32 /1k against an "
               "h2 origin (nginx http2), h2 on both legs, then 100 streams of /256k on one "
               "connection (tests/bench/h2bench.py). Proxy CPU = utime+stime of the proxy's "
               "process tree (nginx's own for direct). RLIMIT_NOFILE %d."
               % (seconds, sink_seconds(seconds), os.cpu_count(), FULLHS_CLIENTS, env.idle_conns,
                  nofile))
    out.append("Binary: %s (%s)." % (os.path.abspath(args.bin), env.version))
    if args.base:
        out.append("Base binary (rows ending in @base, each measured next to its "
                   "counterpart): %s." % os.path.abspath(args.base))
    out.append("Background load on this machine (other processes) before the run: %.0f%% of all "
               "cores (%.0f%% niced); after: %.0f%% (%.0f%% niced)."
               % (100 * background[0], 100 * background[1], 100 * background_after[0],
                  100 * background_after[1]))
    gen = ["%s %s" % (p.slug, fnum(val(results, p.slug, "fullhs", "gen_ms_per_1k")))
           for p in plist if val(results, p.slug, "fullhs", "gen_ms_per_1k") is not None]
    if gen:
        out.append("Load generator CPU per 1k full handshakes (hsload's utime+stime, ms; it shares "
                   "the two cores with the peer and nginx): " + ", ".join(gen) + ".")
    if resumed:
        out.append("Resumption probe (openssl s_time -reuse, share of connections resumed): "
                   + ", ".join(resumed) + ".")
    if floor_line:
        out.append(floor_line)
    if "tlspeek-t1" in results or "tlspeek-t2" in results:
        out.append("Scaling: %s. Projected = (req per tlspeek CPU-second at -t 2) × min(2, 1 / "
                   "busiest thread's share) ÷ (req per CPU-second at -t 1): what two dedicated "
                   "cores would give if per-request cost stays as measured." % scale_detail)
    notes = list(dict.fromkeys(notes))  # a round repeats what the one before it said
    if notes:
        out.append("")
        out.append("Notes (errors, non-2xx responses, warnings):")
        out += ["- " + n for n in notes]
    out.append("")
    out.append("Total time: %.0f s." % (time.time() - started))
    text = "\n".join(out)
    print()
    print(text)
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    # Partial runs (--only) do not overwrite the last full table.
    name = "latest-only.md" if only or args.scenarios else "latest-quick.md" if args.quick else "latest.md"
    with open(os.path.join(HERE, "out", name), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
