"""Trusting tlspeek's CA: every client `tlspeek ca info` names is set up by
running the instruction exactly as printed (only the proxy address and the
example URL are replaced by the test's own), then asked for an HTTPS page of
a local upstream through tlspeek in explicit mode. The proxy's console line
for the request shows the client accepted tlspeek's certificate: no client
sends a request over TLS it does not trust. Each test also shows the client
failing without the instruction, so the instruction is what made it work
(afterwards: a client that rejected tlspeek's certificate gets that host
passed through untouched from then on).

Everything runs on 127.0.0.1, with HOME in pytest's tmp_path.
"""
import os
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import BIN, clean_env, curl, require_program

TEXT_PATH = "/text"


# ---- `ca info`, parsed --------------------------------------------------------

def ca_info(ca_dir, env):
    r = subprocess.run([BIN, "--ca-dir", str(ca_dir), "ca", "info"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def sections(info):
    """{heading: [indented lines]} of the trust part of `ca info`."""
    assert "\nTo trust it" in info, info
    trust = info.split("\nTo trust it", 1)[1].split("\n\n", 1)[1]
    out, cur = {}, None
    for line in trust.splitlines():
        if line and not line.startswith(" "):
            cur = line
            out[cur] = []
        elif cur is not None and line.startswith("    "):
            out[cur].append(line[4:])
    return out


def section(info, prefix):
    found = [v for k, v in sections(info).items() if k.startswith(prefix)]
    assert len(found) == 1, "no single section %r in:\n%s" % (prefix, info)
    return found[0]


def commands(info, prefix):
    """The "$ " lines of one client's section, as printed."""
    cmds = [line[2:] for line in section(info, prefix) if line.startswith("$ ")]
    assert cmds, "section %r has no command" % prefix
    return cmds


def note(info, prefix, lead):
    """The rest of the note line starting with `lead` in one section."""
    for line in section(info, prefix):
        if line.startswith(lead):
            return line[len(lead):]
    raise AssertionError("no %r in section %r" % (lead, prefix))


def exports(cmds):
    """`export NAME=VALUE` lines -> {NAME: VALUE} (shell-unquoted)."""
    env = {}
    for cmd in cmds:
        words = shlex.split(cmd)
        assert words[0] == "export" and len(words) == 2, cmd
        name, value = words[1].split("=", 1)
        env[name] = value
    return env


def localize(cmd, proxy, url):
    """The printed proxy address and example URL -> the test's own."""
    return (cmd.replace("127.0.0.1:8080", "127.0.0.1:%d" % proxy.port)
               .replace("-Dhttps.proxyPort=8080", "-Dhttps.proxyPort=%d" % proxy.port)
               .replace("https://example.com/", url))


def sh(cmd, env, cwd=None, timeout=120):
    return subprocess.run(["bash", "-c", cmd], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


# ---- fixtures -----------------------------------------------------------------

@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def env(home):
    return clean_env(HOME=str(home))


@pytest.fixture
def trust_ca(tmp_path, env):
    """A CA of its own (so the instructions name a path no other test uses)
    and its `ca info` text."""
    ca_dir = tmp_path / "trusted-ca"
    return ca_dir, ca_info(ca_dir, env)


@pytest.fixture
def setup(trust_ca, proxy_factory, https_upstream):
    """(ca_dir, info, proxy, url): tlspeek in explicit mode with that CA, in
    front of the HTTPS upstream."""
    ca_dir, info = trust_ca
    p = proxy_factory(ca_dir=str(ca_dir))
    url = "https://127.0.0.1:%d%s" % (https_upstream.port, TEXT_PATH)
    return ca_dir, info, p, url


def intercepted(proxy, url):
    proxy.wait_stdout("GET %s → 200" % url, timeout=30)


# ---- the CA's name --------------------------------------------------------------

def subject_cn(pem):
    r = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "multiline",
                        "-in", str(pem)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    m = re.search(r"commonName\s*=\s*(.*)", r.stdout)
    assert m, r.stdout
    return m.group(1).strip()


def test_two_cas_have_different_names(tmp_path, env):
    cns = []
    for name in ("a", "b"):
        ca_dir = tmp_path / name
        ca_info(ca_dir, env)
        cns.append(subject_cn(ca_dir / "tlspeek-ca-cert.pem"))
    for cn in cns:
        assert re.fullmatch(r"tlspeek CA \(.+\) [0-9a-f]{8}", cn), cn
    assert cns[0] != cns[1], cns


def test_existing_ca_keeps_its_name(tmp_path, env):
    """A CA made before names carried an id loads and is used unchanged."""
    ca_dir = tmp_path / "old"
    ca_dir.mkdir(mode=0o700)
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "30",
         "-subj", "/CN=tlspeek CA (oldhost)/O=tlspeek",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kf = ca_dir / "tlspeek-ca.pem"
    kf.write_text(key.read_text() + cert.read_text())
    kf.chmod(0o600)
    info = ca_info(ca_dir, env)
    assert "CN=tlspeek CA (oldhost), O=tlspeek" in info, info
    out = tmp_path / "export.pem"
    r = subprocess.run([BIN, "--ca-dir", str(ca_dir), "ca", "export", str(out)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == cert.read_text()
    assert subject_cn(out) == "tlspeek CA (oldhost)"


def test_info_names_the_real_paths(trust_ca):
    ca_dir, info = trust_ca
    cert = str(ca_dir / "tlspeek-ca-cert.pem")
    for prefix in ("curl", "wget", "git", "Python: ssl", "Python: requests", "Node.js", "Go",
                   "Java", "Chromium", "Firefox", "Debian"):
        body = "\n".join(section(info, prefix))
        assert cert in body, "%s section lacks %s:\n%s" % (prefix, cert, body)


# ---- command-line clients -----------------------------------------------------

def test_curl(setup, env):
    ca_dir, info, p, url = setup
    (cmd,) = commands(info, "curl")
    r = sh(localize(cmd, p, url) + " -sS --max-time 60", env)
    assert r.returncode == 0, r.stderr
    assert r.stdout
    intercepted(p, url)
    bare = curl("-x", p.url, url, env=env)
    assert bare.returncode == 60, bare.stderr  # 60: peer certificate cannot be authenticated


def test_wget(setup, env, tmp_path):
    require_program("wget")
    ca_dir, info, p, url = setup
    (cmd,) = commands(info, "wget")
    work = tmp_path / "wget"
    work.mkdir()
    r = sh(localize(cmd, p, url) + " --tries=1 --timeout=60", env, cwd=work)
    assert r.returncode == 0, r.stderr
    assert (work / "text").stat().st_size > 0
    intercepted(p, url)
    words = [w for w in shlex.split(localize(cmd, p, url))
             if not w.startswith("--ca-certificate=")]
    bare = subprocess.run(words + ["--tries=1", "-O", "bare"], env=env, cwd=work,
                          capture_output=True, text=True, timeout=90)
    assert bare.returncode == 5, bare.stderr  # 5: SSL verification failure


def test_git(setup, env, home):
    """git has no server here: ls-remote of a repository the upstream does
    not have must get as far as the HTTP 404, i.e. past a trusted TLS
    handshake, and fail with a certificate error without the setting."""
    require_program("git")
    ca_dir, info, p, url = setup
    cmds = commands(info, "git")
    repo = url.replace(TEXT_PATH, "/repo.git")
    genv = dict(env, https_proxy=p.url, GIT_TERMINAL_PROMPT="0")
    r = subprocess.run(["git", "ls-remote", repo], env=dict(genv, **exports(cmds)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "certificate" not in r.stderr and "SSL" not in r.stderr, r.stderr
    assert "not found" in r.stderr, r.stderr
    p.wait_stdout("GET %s/info/refs?service=git-upload-pack → 404" % repo, timeout=30)
    # The lasting form: `git config --global http.sslCAInfo ...` in this HOME.
    r = sh(note(info, "git", "or for good: "), env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["git", "ls-remote", repo], env=genv, capture_output=True, text=True,
                       timeout=60)
    assert "certificate" not in r.stderr and "not found" in r.stderr, r.stderr
    (home / ".gitconfig").unlink()
    bare = subprocess.run(["git", "ls-remote", repo], env=genv, capture_output=True, text=True,
                          timeout=60)
    assert bare.returncode != 0 and "certificate" in bare.stderr, bare.stderr


# ---- language runtimes --------------------------------------------------------

URLLIB = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=60).read().decode())
"""
REQUESTS = """
import sys, requests
print(requests.get(sys.argv[1], timeout=60).text)
"""
HTTPX = """
import sys, httpx
print(httpx.get(sys.argv[1], timeout=60).text)
"""


@pytest.mark.parametrize("section_name,script", [
    ("Python: ssl", URLLIB), ("Python: ssl", HTTPX), ("Python: requests", REQUESTS)],
    ids=["urllib", "httpx", "requests"])
def test_python(setup, env, section_name, script):
    # Debian's python3 with its python3-requests and python3-httpx.
    ca_dir, info, p, url = setup
    penv = dict(env, https_proxy=p.url)
    cmd = ["/usr/bin/python3", "-c", script, url]
    r = subprocess.run(cmd, env=dict(penv, **exports(commands(info, section_name))),
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    intercepted(p, url)
    bare = subprocess.run(cmd, env=penv, capture_output=True, text=True, timeout=90)
    assert bare.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in bare.stderr, bare.stderr


NODE = """
const http = require('http'), tls = require('tls');
const [proxyPort, target, path] = process.argv.slice(1);
const [host, port] = target.split(':');
const req = http.request({host: '127.0.0.1', port: +proxyPort, method: 'CONNECT', path: target});
req.on('connect', (res, socket) => {
  const s = tls.connect({socket, host}, () => {
    s.write(`GET ${path} HTTP/1.1\\r\\nHost: ${target}\\r\\nConnection: close\\r\\n\\r\\n`);
  });
  let out = '';
  s.on('data', d => out += d);
  s.on('end', () => { console.log(out); process.exit(0); });
  s.on('error', e => { console.error('TLS error', e.code, e.message); process.exit(1); });
});
req.on('error', e => { console.error('proxy error', e.message); process.exit(2); });
req.end();
"""


def test_node(setup, env):
    require_program("node")
    ca_dir, info, p, url = setup
    target = url.split("/")[2]
    cmd = ["node", "-e", NODE, str(p.port), target, TEXT_PATH]
    r = subprocess.run(cmd, env=dict(env, **exports(commands(info, "Node.js"))),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/1.1 200"), r.stdout
    intercepted(p, url)
    bare = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 1 and "TLS error" in bare.stderr, bare.stderr


JAVA = """
import java.io.InputStream;
import java.net.URL;
import javax.net.ssl.HttpsURLConnection;

public class Client {
  public static void main(String[] args) throws Exception {
    HttpsURLConnection c = (HttpsURLConnection) new URL(args[0]).openConnection();
    c.setConnectTimeout(30000);
    c.setReadTimeout(30000);
    try (InputStream in = c.getInputStream()) {
      System.out.println("status " + c.getResponseCode() + " proxied " + c.usingProxy());
      in.readAllBytes();
    }
  }
}
"""


def java_run(cmd, p, url, env, work):
    """The printed `java ... ...` line with the "..." replaced by a
    single-file program and the URL."""
    cmd = localize(cmd, p, url)
    assert cmd.endswith(" ...")
    return sh(cmd[:-4] + " Client.java " + shlex.quote(url), env, cwd=work, timeout=180)


def test_java(setup, env, tmp_path):
    require_program("java")
    require_program("keytool")
    ca_dir, info, p, url = setup
    work = tmp_path / "java"
    work.mkdir()
    (work / "Client.java").write_text(JAVA)
    cp, importcert, java = commands(info, "Java")
    assert cp.startswith("cp ") and importcert.startswith("keytool -importcert")
    for cmd in (cp, importcert):
        r = sh(cmd, env, cwd=work)
        assert r.returncode == 0, cmd + "\n" + r.stdout + r.stderr
    r = java_run(java, p, url, env, work)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "status 200 proxied true" in r.stdout, r.stdout
    intercepted(p, url)
    # The JDK's own roots are still there.
    r = sh("keytool -list -keystore %s -storepass changeit | grep -c trustedCertEntry"
           % shlex.quote(str(ca_dir / "java-truststore")), env)
    assert int(r.stdout.strip() or 0) > 2, r.stdout + r.stderr
    # Without the empty http.nonProxyHosts Java goes straight to 127.0.0.1,
    # past tlspeek, and meets the upstream's own (untrusted) certificate.
    r = java_run(java.replace(" -Dhttp.nonProxyHosts=", ""), p, url, env, work)
    assert r.returncode != 0 and "PKIX" in r.stderr, r.stdout + r.stderr


def test_java_p12_export(setup, env, tmp_path):
    """`tlspeek ca export --p12 FILE`: a truststore Java reads as is, with
    the CA as its one trusted certificate entry (password changeit)."""
    require_program("java")
    require_program("keytool")
    ca_dir, info, p, url = setup
    work = tmp_path / "java"
    work.mkdir()
    (work / "Client.java").write_text(JAVA)
    store = tmp_path / "ca.p12"
    r = subprocess.run([BIN, "--ca-dir", str(ca_dir), "ca", "export", "--p12", str(store)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["keytool", "-list", "-keystore", str(store), "-storepass", "changeit"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Keystore type: PKCS12" in r.stdout and "1 entry" in r.stdout, r.stdout
    assert re.search(r"^tlspeek-[0-9a-f]{8}, .*, trustedCertEntry,", r.stdout, re.M), r.stdout
    (java,) = [c for c in commands(info, "Java") if c.startswith("java ")]
    java = re.sub(r"-Djavax\.net\.ssl\.trustStore=\S+",
                  "-Djavax.net.ssl.trustStore=" + shlex.quote(str(store)), java)
    r = java_run(java, p, url, env, work)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "status 200 proxied true" in r.stdout, r.stdout
    intercepted(p, url)


GO = """
package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
)

// go run client.go URL [PROXY]: with PROXY, a Transport with ProxyURL;
// without, Go's default (https_proxy from the environment).
func main() {
	client := http.DefaultClient
	if len(os.Args) > 2 {
		u, err := url.Parse(os.Args[2])
		if err != nil {
			panic(err)
		}
		client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}}
	}
	r, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	body, _ := io.ReadAll(r.Body)
	fmt.Println("status", r.StatusCode, "bytes", len(body))
}
"""


def test_go(setup, env, tmp_path):
    """SSL_CERT_FILE as printed; and what `ca info` says of Go and proxies:
    with https_proxy alone Go goes straight to 127.0.0.1 (past tlspeek, to
    the upstream's own certificate), with Transport.Proxy = ProxyURL it
    goes through tlspeek and trusts its certificate."""
    require_program("go")
    ca_dir, info, p, url = setup
    go_notes = "\n".join(section(info, "Go"))
    assert "localhost or loopback" in go_notes and "http.ProxyURL" in go_notes, go_notes
    work = tmp_path / "go"
    work.mkdir()
    (work / "client.go").write_text(GO)
    genv = dict(env, GOCACHE=str(tmp_path / "gocache"), GOPATH=str(tmp_path / "gopath"),
                GOFLAGS="-mod=mod", GO111MODULE="off", GOTOOLCHAIN="local",
                https_proxy=p.url, HTTPS_PROXY=p.url)
    genv.update(exports(commands(info, "Go")))
    run = ["go", "run", "client.go", url]
    r = subprocess.run(run + [p.url], env=genv, cwd=work, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "status 200" in r.stdout, r.stdout
    intercepted(p, url)
    before = p.stdout().count("GET %s → 200" % url)
    r = subprocess.run(run, env=genv, cwd=work, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "certificate signed by unknown authority" in r.stderr, r.stderr
    assert p.stdout().count("GET %s → 200" % url) == before
    del genv["SSL_CERT_FILE"]
    r = subprocess.run(run + [p.url], env=genv, cwd=work, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode != 0 and "certificate signed by unknown authority" in r.stderr, r.stderr


# ---- NSS: Chromium's database, Firefox ----------------------------------------

def leaf_cert(ca_dir, tmp_path, env):
    """A leaf of the trusted CA for 127.0.0.1 (certificate part only)."""
    out = tmp_path / "leaf.pem"
    r = subprocess.run([BIN, "--ca-dir", str(ca_dir), "ca", "mint", "127.0.0.1", "--out", str(out)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    pem = out.read_text()
    cert = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")]
    path = tmp_path / "leaf-cert.pem"
    path.write_text(cert)
    return path


def vfychain(db, leaf, env):
    # -u 1: valid for an SSL server; -a: the file is PEM.
    return subprocess.run(["vfychain", "-d", "sql:" + str(db), "-u", "1", "-a", str(leaf)],
                          env=env, capture_output=True, text=True, timeout=60)


def test_chromium_nssdb(trust_ca, env, home, tmp_path):
    """Chromium is not in Debian's reach here: its database is checked with
    NSS's own chain verifier, the code Chromium on Linux uses."""
    require_program("certutil")
    require_program("vfychain")
    ca_dir, info = trust_ca
    leaf = leaf_cert(ca_dir, tmp_path, env)
    r = sh(note(info, "Chromium", "No database yet? "), env)
    assert r.returncode == 0, r.stderr
    db = home / ".pki" / "nssdb"
    assert (db / "cert9.db").exists()
    bare = vfychain(db, leaf, env)
    assert bare.returncode != 0 and "Chain is good" not in bare.stderr, bare.stdout + bare.stderr
    (cmd,) = commands(info, "Chromium")
    r = sh(cmd, env)
    assert r.returncode == 0, r.stderr
    good = vfychain(db, leaf, env)
    assert good.returncode == 0 and "Chain is good" in good.stderr, good.stdout + good.stderr


FIREFOX_PREFS = """
user_pref("network.proxy.type", 2);
user_pref("network.proxy.autoconfig_url", "data:text/plain,function FindProxyForURL(u,h)\
{if(h=='127.0.0.1')return 'PROXY 127.0.0.1:%(port)d';return 'PROXY 127.0.0.1:%(dead)d';}");
user_pref("network.proxy.allow_hijacking_localhost", true);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.trr.mode", 5);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("app.update.enabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
"""


def firefox_profile(tmp_path, name, p):
    """A profile whose only way out is tlspeek, for 127.0.0.1; every other
    host goes to a closed port (a PAC script), so nothing leaves the machine."""
    from conftest import free_port
    prof = tmp_path / name
    prof.mkdir()
    (prof / "user.js").write_text(FIREFOX_PREFS % {"port": p.port, "dead": free_port()})
    return prof


def firefox_shot(firefox, prof, url, env, tmp_path):
    shot = tmp_path / (prof.name + ".png")
    r = subprocess.run([firefox, "--headless", "--no-remote", "--profile", str(prof),
                        "--screenshot", str(shot), url],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert shot.stat().st_size > 0
    return shot


def test_firefox_profile_db(setup, env, tmp_path):
    require_program("firefox-esr")
    require_program("certutil")
    ca_dir, info, p, url = setup
    prof = firefox_profile(tmp_path, "profile", p)
    # The database a profile has after its first start.
    r = subprocess.run(["certutil", "-d", "sql:" + str(prof), "-N", "--empty-password"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (cmd,) = commands(info, "Firefox")
    r = sh(cmd.replace("sql:PROFILE", "sql:" + shlex.quote(str(prof))), env)
    assert r.returncode == 0, r.stderr
    firefox_shot("firefox-esr", prof, url, env, tmp_path)
    intercepted(p, url)


def test_firefox_policies_json(setup, env, tmp_path):
    """The policy file goes into the distribution/ folder of an install: a
    copy of Debian's (the binaries copied, everything else linked), so the
    system's own install is not touched."""
    require_program("firefox-esr")
    ca_dir, info, p, url = setup
    real = os.path.dirname(os.path.realpath(shutil.which("firefox-esr")))
    inst = tmp_path / "firefox"
    inst.mkdir()
    for name in os.listdir(real):
        if name in ("firefox-esr", "firefox-bin"):
            shutil.copy2(os.path.join(real, name), inst / name)
        elif name != "distribution":
            os.symlink(os.path.join(real, name), inst / name)
    (inst / "distribution").mkdir()
    lines = section(info, "Firefox")
    policy = [line.strip() for line in lines if line.strip().startswith('{"policies"')]
    assert len(policy) == 1, lines
    assert any("/usr/lib/firefox-esr/distribution/policies.json" in line for line in lines)
    (inst / "distribution" / "policies.json").write_text(policy[0] + "\n")
    prof = firefox_profile(tmp_path, "fresh-profile", p)
    firefox_shot(str(inst / "firefox-esr"), prof, url, env, tmp_path)
    intercepted(p, url)


# ---- Debian's system store ----------------------------------------------------

def test_debian_system_store(setup, env, tmp_path):
    """The two printed commands, with sudo dropped and update-ca-certificates'
    directories moved under tmp_path (its own options), so the machine's
    store is not touched; curl with no --cacert then reads the new bundle."""
    require_program("update-ca-certificates")
    ca_dir, info, p, url = setup
    cp, update = commands(info, "Debian")
    assert cp.startswith("sudo cp ") and update == "sudo update-ca-certificates"
    local = tmp_path / "local"
    etc = tmp_path / "etc-ssl-certs"
    hooks = tmp_path / "hooks"
    for d in (local, etc, hooks):
        d.mkdir()
    conf = tmp_path / "ca-certificates.conf"
    conf.write_text("")
    r = sh(cp[len("sudo "):].replace("/usr/local/share/ca-certificates/", str(local) + "/"), env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["update-ca-certificates", "--certsconf", str(conf),
                        "--certsdir", "/usr/share/ca-certificates", "--localcertsdir", str(local),
                        "--etccertsdir", str(etc), "--hooksdir", str(hooks)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 added" in r.stdout, r.stdout
    bundle = etc / "ca-certificates.crt"
    r = curl("--cacert", str(bundle), "-x", p.url, url, env=env)
    assert r.returncode == 0, r.stderr
    intercepted(p, url)
