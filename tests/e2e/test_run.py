"""`tlspeek run [options] -- CMD ARGS...`: the command gets tlspeek as its
proxy and tlspeek's CA in its trust, its traffic is shown, and tlspeek exits
with its status.

The environment these tests hand to tlspeek presets every variable tlspeek
run sets to something that would fail (the system bundle, which does not hold
tlspeek's CA; a proxy on a closed port; NO_PROXY=*), so each test also shows
that tlspeek run overrides them. Clients get no --cacert or -x of their own.
"""
import os
import signal
import subprocess
import time

from conftest import BIN, clean_env, require_program

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def hostile_env():
    """An environment whose preset proxy and CA variables would all fail."""
    bad_proxy = "http://127.0.0.1:9"
    return clean_env(SSL_CERT_FILE=SYSTEM_BUNDLE, CURL_CA_BUNDLE=SYSTEM_BUNDLE,
                     REQUESTS_CA_BUNDLE=SYSTEM_BUNDLE, NODE_EXTRA_CA_CERTS=SYSTEM_BUNDLE,
                     GIT_SSL_CAINFO=SYSTEM_BUNDLE, HTTPS_PROXY=bad_proxy, HTTP_PROXY=bad_proxy,
                     https_proxy=bad_proxy, http_proxy=bad_proxy, ALL_PROXY=bad_proxy,
                     NO_PROXY="*", no_proxy="*", NODE_OPTIONS="--no-warnings")


def tlspeek_run(pki, cmd, *opts, timeout=60):
    """Runs `tlspeek [opts] run -- cmd...` to its end: CompletedProcess with
    text stdout and stderr."""
    args = [BIN, "--ca-dir", pki.proxy_ca_dir, "--upstream-ca", pki.upstream_ca] + list(opts)
    return subprocess.run(args + ["run", "--"] + list(cmd), capture_output=True, text=True,
                          timeout=timeout, env=hostile_env())


def text_url(https_upstream):
    return "https://localhost:%d/text" % https_upstream.port


def assert_shown(r, url):
    assert "GET %s → 200" % url in r.stdout, "flow not shown:\n%s\n%s" % (r.stdout, r.stderr)


def test_run_curl_trusts_and_is_shown(pki, https_upstream):
    curl = require_program("curl")
    url = text_url(https_upstream)
    r = tlspeek_run(pki, [curl, "-sS", "--max-time", "20", url])
    assert r.returncode == 0, r.stderr
    assert "Hello from the upstream server." in r.stdout  # the body, on curl's stdout
    assert_shown(r, url)
    assert "running %s with HTTP(S)_PROXY=http://127.0.0.1:" % curl in r.stderr


def test_run_python_urllib(pki, https_upstream):
    python = require_program("python3")
    url = text_url(https_upstream)
    # One string per print: the command shares stdout with tlspeek's view, and
    # print's separate writes (unbuffered) could be split by a flow line.
    code = ("import urllib.request as u\n"
            "print('status %%d' %% u.urlopen(%r, timeout=20).status)" % url)
    r = tlspeek_run(pki, ["/usr/bin/python3", "-c", code])
    assert python and r.returncode == 0, r.stderr
    assert "status 200" in r.stdout
    assert_shown(r, url)


def test_run_node_fetch(pki, https_upstream):
    require_program("node")
    url = text_url(https_upstream)
    js = ("fetch(%r).then(r => console.log('fetch status', r.status))"
          ".catch(e => { console.error('fetch failed', e, e.cause); process.exit(5); })" % url)
    r = tlspeek_run(pki, ["node", "-e", js])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fetch status 200" in r.stdout
    assert_shown(r, url)


def test_run_node_https_get(pki, https_upstream):
    require_program("node")
    url = text_url(https_upstream)
    js = ("require('https').get(%r, r => { console.log('get status', r.statusCode); "
          "r.resume(); r.on('end', () => process.exit(0)); })"
          ".on('error', e => { console.error('get failed', e); process.exit(5); })" % url)
    r = tlspeek_run(pki, ["node", "-e", js])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "get status 200" in r.stdout
    assert_shown(r, url)


def test_run_proxy_options_apply(pki, https_upstream, tmp_path):
    curl = require_program("curl")
    url = text_url(https_upstream)
    har = tmp_path / "run.har"
    r = tlspeek_run(pki, [curl, "-sS", "--max-time", "20", "-o", "/dev/null", url],
                    "-v", "--har", str(har))
    assert r.returncode == 0, r.stderr
    assert_shown(r, url)
    assert "user-agent: curl" in r.stdout.lower()  # -v: request heads
    assert url in har.read_text()


def test_run_exit_status_passes_through(pki):
    sh = require_program("sh")
    r = tlspeek_run(pki, [sh, "-c", "exit 3"])
    assert r.returncode == 3, r.stderr
    r = tlspeek_run(pki, [sh, "-c", "kill -TERM $$"])
    assert r.returncode == 128 + signal.SIGTERM, r.stderr
    assert "killed by signal 15" in r.stderr


def test_run_missing_command_is_127(pki):
    r = tlspeek_run(pki, ["tlspeek-no-such-command", "x"])
    assert r.returncode == 127
    assert ("cannot run 'tlspeek-no-such-command': no such file or directory "
            "(not found in PATH)") in r.stderr


def test_run_usage_errors(pki):
    for args in (["run"], ["run", "--"], ["-v", "run", "curl"]):
        r = subprocess.run([BIN, "--ca-dir", pki.proxy_ca_dir] + args, capture_output=True,
                           text=True, timeout=30, env=clean_env())
        assert r.returncode == 2, (args, r.stderr)
        assert "tlspeek run [options] -- CMD [ARGS...]" in r.stderr
    r = subprocess.run([BIN, "run", "-l", "127.0.0.1:1", "--", "true"], capture_output=True,
                       text=True, timeout=30, env=clean_env())
    assert r.returncode == 2 and "--listen is not taken" in r.stderr


def test_run_environment_and_private_dir(pki):
    """What the command sees: the proxy variables, NO_PROXY gone, every CA
    variable on one 0600 bundle (system CAs + tlspeek's CA) in a 0700 directory
    that is removed when tlspeek exits."""
    python = require_program("python3")
    code = r"""
import os, stat
e = os.environ
b = e["SSL_CERT_FILE"]
print("proxy", e["HTTPS_PROXY"], e["HTTP_PROXY"], e["https_proxy"], e["ALL_PROXY"])
print("noproxy", "NO_PROXY" in e, "no_proxy" in e)
print("same", all(e[k] == b for k in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
      "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO")))
print("modes", oct(stat.S_IMODE(os.stat(b).st_mode)),
      oct(stat.S_IMODE(os.stat(os.path.dirname(b)).st_mode)))
print("java", e["JAVA_TOOL_OPTIONS"])
print("node", e["NODE_OPTIONS"])
print("bundle", b)
print("certs", open(b).read().count("BEGIN CERTIFICATE"))
print("pem", open(b).read())
"""
    r = tlspeek_run(pki, ["/usr/bin/python3", "-c", code])
    assert python and r.returncode == 0, r.stderr
    lines = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in r.stdout.splitlines()
             if " " in ln and ln.split(" ", 1)[0] in ("proxy", "noproxy", "same", "modes", "java",
                                                      "node", "bundle", "certs")}
    urls = lines["proxy"].split()
    assert len(set(urls)) == 1 and urls[0].startswith("http://127.0.0.1:"), lines["proxy"]
    port = urls[0].rsplit(":", 1)[1]
    assert port != "9"
    assert lines["noproxy"] == "False False"
    assert lines["same"] == "True"
    assert lines["modes"] == "0o600 0o700"
    assert "-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=%s" % port in lines["java"]
    assert lines["java"].endswith("-Dhttp.nonProxyHosts=")
    assert lines["node"].startswith("--no-warnings --require ")  # extended, not replaced
    assert int(lines["certs"]) > 10  # the system CAs ...
    with open(pki.proxy_ca) as f:
        assert f.read().strip() in r.stdout  # ... and tlspeek's
    assert not os.path.exists(os.path.dirname(lines["bundle"])), "private directory left behind"


def test_run_passes_sigterm_to_the_command(pki):
    require_program("python3")
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    p = subprocess.Popen([BIN, "--ca-dir", pki.proxy_ca_dir, "run", "--", "/usr/bin/python3",
                          "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=hostile_env())
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 7, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


def test_run_ctrl_c_on_a_terminal(pki):
    """Ctrl-C on a terminal signals the whole foreground process group: the
    command gets SIGINT from the terminal itself; tlspeek does not die of it
    (not even when it comes the moment the command starts) and exits 128+2
    once the command died of it."""
    import pty
    sh = require_program("sh")
    pid, fd = pty.fork()
    if pid == 0:  # the child: tlspeek on the terminal pty.fork made for it
        os.execve(BIN, [BIN, "--ca-dir", pki.proxy_ca_dir, "run", "--", sh, "-c",
                        "echo ready; exec sleep 30"], hostile_env())
    out = b""
    try:
        deadline = time.time() + 30
        while b"ready" not in out and time.time() < deadline:
            out += os.read(fd, 4096)
        assert b"ready" in out, out
        os.write(fd, b"\x03")  # the terminal's VINTR
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.WIFEXITED(status), "tlspeek itself died of signal %s" % os.WTERMSIG(status)
        assert os.WEXITSTATUS(status) == 128 + signal.SIGINT
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def test_run_with_proxyauth_hands_the_credentials_to_the_command(pki, https_upstream):
    """With --proxyauth the proxy URLs carry the credentials (percent-encoded)
    and the Node.js preload sends them, so every client still gets through;
    tlspeek never shows them."""
    curl = require_program("curl")
    require_program("node")
    url = text_url(https_upstream)
    creds = "run user:p@ss/w%rd"
    py = "import urllib.request as u; print('py %%d' %% u.urlopen(%r, timeout=20).status)" % url
    fetch = "fetch(%r).then(r => console.log('fetch', r.status))" % url
    get = "require('https').get(%r, r => { console.log('get', r.statusCode); r.resume(); })" % url
    for cmd, want in (([curl, "-sS", "-o", "/dev/null", "-w", "curl %{http_code}\n", url],
                       "curl 200"),
                      (["/usr/bin/python3", "-c", py], "py 200"),
                      (["node", "-e", fetch], "fetch 200"),
                      (["node", "-e", get], "get 200")):
        r = tlspeek_run(pki, cmd, "--proxyauth", creds)
        assert r.returncode == 0 and want in r.stdout, (cmd, r.stdout, r.stderr)
        assert_shown(r, url)
        assert "p@ss" not in r.stdout + r.stderr and "p%40ss" not in r.stderr
