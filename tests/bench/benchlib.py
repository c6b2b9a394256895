"""Process handling and measurement helpers for bench.py.

Everything here talks to 127.0.0.1 only, and every load loop is bounded in time:
wrk runs for -d seconds, hsload for -t seconds, the `openssl s_time -reuse` probe for
-time seconds, the idle-connection client has a deadline, and every subprocess call has
a timeout on top.
"""
import os
import re
import resource
import signal
import socket
import ssl
import subprocess
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))


class PeerFailed(Exception):
    """A peer did not start, answered wrongly or died: its cell becomes n/a (reason)."""


# ---- processes ------------------------------------------------------------------------------

class Procs:
    """Every process the harness starts, each in its own process group, so that
    stop() and stop_all() reach its children too (nginx workers, sslsplit's
    privilege-separated child)."""

    def __init__(self):
        self.live = []

    def start(self, args, log_path, cpus=None, stdin=subprocess.DEVNULL, stdout_path=None,
              cwd=None):
        err = open(log_path, "ab")
        out = open(stdout_path, "wb") if stdout_path else err
        pre = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        try:
            p = subprocess.Popen(args, stdin=stdin, stdout=out, stderr=err,
                                 start_new_session=True, preexec_fn=pre, cwd=cwd)
        finally:
            err.close()
            if stdout_path:
                out.close()
        p.log_path = log_path
        self.live.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, grace=10.0):
        """Stops p's process group; returns p's exit status (negative: killed by a signal)."""
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (a child that outlived its parent, or p itself).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if p in self.live:
            self.live.remove(p)
        return p.returncode

    def stop_all(self):
        for p in list(self.live):
            self.stop(p, grace=3.0)


def raise_nofile(want=65536):
    """Inherited by every process started afterwards (proxies holding 2,000 client and
    2,000 upstream connections need more than the usual 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((want, max(want, hard)), (max(soft, min(want, hard)), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise PeerFailed("exited with status %s before listening%s"
                             % (proc.returncode, log_tail(proc)))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise PeerFailed("port %d not open after %.0f s%s" % (port, timeout, log_tail(proc)))


def log_tail(proc, lines=2):
    path = getattr(proc, "log_path", None)
    if not path or not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 4096))
        text = f.read().decode("utf-8", "replace").strip().splitlines()
    text = [t.strip() for t in text if t.strip()][-lines:]
    return (": " + " / ".join(text)) if text else ""


def https_get(port, path="/1k", timeout=10.0):
    """One request with Connection: close; returns (status, body length)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                       % path).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, len(body)


def check_serves(port, proc=None, tries=3):
    """Warm-up and health check: GET /1k through the peer must give 200 and 1024 bytes."""
    last = ""
    for _ in range(tries):
        if proc is not None and proc.poll() is not None:
            raise PeerFailed("exited with status %s%s" % (proc.returncode, log_tail(proc)))
        try:
            status, n = https_get(port)
            if status == 200 and n == 1024:
                return
            last = "GET /1k gave HTTP %d with %d body bytes" % (status, n)
        except (OSError, ValueError, IndexError) as e:
            last = "GET /1k failed: %s" % e
        time.sleep(0.3)
    raise PeerFailed(last + log_tail(proc))


# ---- /proc ---------------------------------------------------------------------------------

def _stat_fields(path):
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()


def tree_pids(root):
    """root and all its descendants, from /proc/*/stat."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat_fields("/proc/%s/stat" % name)[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def tree_cpu(root):
    """CPU seconds (user+system, all threads) of root's process tree, including reaped
    children (cutime+cstime), so a delta over a measurement is the tree's CPU use."""
    total = 0
    for pid in tree_pids(root):
        try:
            f = _stat_fields("/proc/%d/stat" % pid)
        except OSError:
            continue
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / CLK


def _per_thread(pid, read):
    """{tid: read(path of /proc/PID/task/TID)} of every thread of one process;
    threads that end meanwhile are left out."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            out[int(tid)] = read("/proc/%d/task/%s" % (pid, tid))
        except OSError:
            continue
    return out


def thread_cpu(pid):
    """{tid: CPU seconds} of every thread of one process."""
    def cpu(task):
        f = _stat_fields(task + "/stat")
        return (int(f[11]) + int(f[12])) / CLK
    return _per_thread(pid, cpu)


def thread_names(pid):
    """{tid: name} of every thread of one process (/proc/PID/task/TID/comm)."""
    def name(task):
        with open(task + "/comm") as f:
            return f.read().strip()
    return _per_thread(pid, name)


def tree_rss_kib(root):
    total = 0
    for pid in tree_pids(root):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def set_tree_affinity(root, cpus):
    for pid in tree_pids(root):
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass


def machine_busy(seconds=1.0):
    """(busy, niced): fractions of all cores busy over `seconds`, and of them the part
    spent in niced processes (which yield to the benchmark's)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4], v[1]  # total, idle + iowait, nice
    t0, i0, n0 = snap()
    time.sleep(seconds)
    t1, i1, n1 = snap()
    total = max(t1 - t0, 1)
    return 1.0 - (i1 - i0) / total, (n1 - n0) / total


# ---- load generators -------------------------------------------------------------------------

def wrk(url, seconds, conns, close=False, timeout_s=None, cpus=None):
    args = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds]
    if timeout_s:
        args += ["--timeout", "%ds" % timeout_s]
    if close:
        args += ["-H", "Connection: close"]
    args.append(url)
    pre = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    t0 = time.monotonic()
    p = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60,
                       preexec_fn=pre)
    wall = time.monotonic() - t0
    out = p.stdout
    m_rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    m_tot = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    m_tr = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    if not (m_rps and m_tot and m_tr):
        raise PeerFailed("wrk gave no result: %s" % (p.stderr.strip() or out.strip())[:200])
    scale = {"B": 1e-6, "KB": 1.024e-3, "MB": 1.048576, "GB": 1073.741824}[m_tr.group(2)]
    problems = []
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        problems.append("Non-2xx or 3xx responses: %s" % m.group(1))
    m = re.search(r"Socket errors: (.*)", out)
    if m:
        problems.append("Socket errors: %s" % m.group(1).strip())
    return {"rate": float(m_rps.group(1)), "count": int(m_tot.group(1)),
            "mbps": float(m_tr.group(1)) * scale, "wall": wall, "problems": problems}


def hsload_full(hsload, port, seconds, conns):
    """Full handshakes: hsload (tests/bench/hsload.c) keeps `conns` connections in flight
    from one process; each is a new TCP connection, a full TLS handshake (no session offered,
    no ticket asked for), GET /1k with Connection: close, the response read to the server's
    close. Rate = connections completed / wall time of the run. Also returns the CPU that
    hsload itself used (utime+stime), so the load generator's cost per handshake is known."""
    args = [hsload, "-c", "127.0.0.1:%d" % port, "-n", str(conns), "-t", str(seconds),
            "-p", "/1k"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"hsload: (\d+) ok in ([\d.]+) s = [\d.]+/s; errors (\d+)(?: \(([^)]*)\))?; "
                  r"bytes (\d+)", p.stdout)
    if not m:
        raise PeerFailed("hsload gave no result: %s" % (p.stderr.strip() or p.stdout.strip())[:200])
    count, run_s, nerr, detail, nbytes = (int(m.group(1)), float(m.group(2)), int(m.group(3)),
                                          m.group(4), int(m.group(5)))
    problems = []
    if nerr:
        problems.append("hsload: %d failed connection(s) (%s)" % (nerr, detail))
    if count and nbytes / count < 1024:
        problems.append("only %.0f bytes read per connection (expected > 1024: errors?)"
                        % (nbytes / count))
    gen_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"rate": count / run_s if run_s else 0.0, "count": count, "wall": wall,
            "problems": problems, "gen_cpu_s": gen_cpu}


def timed_download(port, path, deadline):
    """One GET over a fresh TLS connection, read to the end or until `deadline` seconds:
    (bytes of body and headers read, seconds, first byte after seconds or None)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t0 = time.monotonic()
    n, first = 0, None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                           % path).encode())
                while True:
                    left = deadline - (time.monotonic() - t0)
                    if left <= 0:
                        break
                    s.settimeout(min(left, 5.0))
                    try:
                        chunk = s.recv(1 << 20)
                    except socket.timeout:
                        continue
                    if not chunk:
                        break
                    if first is None:
                        first = time.monotonic() - t0
                    n += len(chunk)
    except (OSError, ssl.SSLError):
        pass
    return n, time.monotonic() - t0, first


def resumption_probe(port, seconds=1):
    """Share of connections resumed when a client offers its previous session again
    (`openssl s_time -reuse` prints r per resumed connection)."""
    try:
        p = subprocess.run(["openssl", "s_time", "-connect", "127.0.0.1:%d" % port, "-reuse",
                            "-time", str(seconds), "-www", "/1k"],
                           capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        return None
    marks = ""
    after = p.stdout.split("starting", 1)
    if len(after) == 2:
        marks = re.sub(r"[^r*t123]", "", after[1].split("\n\n")[0].split("connections in")[0])
    if not marks:
        return None
    return marks.count("r") / len(marks)


def tls_floor(workdir, pem, count=2000):
    """KiB of heap one idle server-side TLS connection holds in this machine's
    OpenSSL alone (tests/bench/tls_floor.c); (value or None, why not)."""
    exe = os.path.join(workdir, "tls_floor")
    try:
        c = subprocess.run(["cc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-o", exe,
                            os.path.join(HERE, "tls_floor.c"), "-lssl", "-lcrypto"],
                           capture_output=True, text=True, timeout=120)
        if c.returncode != 0:
            return None, "cannot build tls_floor.c: " + c.stderr.strip()[-200:]
        p = subprocess.run([exe, pem, str(count)], capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            return None, "tls_floor failed: " + p.stderr.strip()[-200:]
        return float(p.stdout.split()[0]), ""
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as e:
        return None, "tls_floor: %s" % e


def hold_idle(procs, port, count, logdir, deadline=150):
    """Starts idle_conns.py holding `count` connections; returns (proc, ready line)."""
    p = procs.start([sys.executable, os.path.join(HERE, "idle_conns.py"), str(port),
                     "--count", str(count), "--deadline", str(deadline)],
                    os.path.join(logdir, "idle-client.log"), stdin=subprocess.PIPE,
                    stdout_path=os.path.join(logdir, "idle-client.out"))
    end = time.time() + deadline + 30
    out_path = os.path.join(logdir, "idle-client.out")
    while time.time() < end:
        with open(out_path) as f:
            line = f.read().strip()
        if line.startswith("READY"):
            return p, line
        if p.poll() is not None:
            break
        time.sleep(0.2)
    procs.stop(p)
    raise PeerFailed("idle-connection client gave no result%s" % log_tail(p))
