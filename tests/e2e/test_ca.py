"""End-to-end tests for `tlspeek ca ...`, driving the real binary, openssl and
curl. Every test uses its own --ca-dir under pytest's tmp_path and a HOME
there too, so ~/.tlspeek is never touched.

Run from tests/e2e:  TLSPEEK_BIN=/path/to/tlspeek /usr/bin/python3 -m pytest
"""
import os
import socket
import stat
import subprocess
import time

import pytest

from conftest import BIN, clean_env, free_port


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"tlspeek binary not found at {BIN} (build it or set TLSPEEK_BIN)")


@pytest.fixture
def env(tmp_path):
    # HOME too: even a forgotten --ca-dir could not reach the real ~/.tlspeek.
    return clean_env(HOME=str(tmp_path / "home"))


@pytest.fixture
def ca_dir(tmp_path):
    return tmp_path / "ca"


def tlspeek(ca_dir, *args, env, timeout=60):
    return subprocess.run([BIN, "--ca-dir", str(ca_dir), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def openssl(*args, **kw):
    return subprocess.run(["openssl", *args], capture_output=True, text=True,
                          timeout=30, **kw)


def export_ca(ca_dir, tmp_path, env):
    pem = tmp_path / "ca.pem"
    r = tlspeek(ca_dir, "ca", "export", str(pem), env=env)
    assert r.returncode == 0, r.stderr
    return pem


def sha256_of(path, der=False):
    args = ["x509", "-noout", "-fingerprint", "-sha256", "-in", str(path)]
    if der:
        args += ["-inform", "DER"]
    r = openssl(*args)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split("=", 1)[1]


# ---- export / path / info ---------------------------------------------------

def test_export_pem_is_a_valid_ca(ca_dir, tmp_path, env):
    pem = export_ca(ca_dir, tmp_path, env)
    r = openssl("verify", "-CAfile", str(pem), str(pem))
    assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr
    text = openssl("x509", "-text", "-noout", "-in", str(pem)).stdout
    assert "CA:TRUE" in text
    assert "Certificate Sign" in text
    assert "CN = tlspeek CA (" in text
    assert "O = tlspeek" in text
    assert "PRIVATE KEY" not in pem.read_text()
    assert stat.S_IMODE(os.stat(ca_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(ca_dir / "tlspeek-ca.pem").st_mode) == 0o600


def test_export_der_and_stdout(ca_dir, tmp_path, env):
    pem = export_ca(ca_dir, tmp_path, env)
    der = tmp_path / "ca.der"
    r = tlspeek(ca_dir, "ca", "export", "--der", str(der), env=env)
    assert r.returncode == 0, r.stderr
    assert der.read_bytes()[0] == 0x30  # a DER SEQUENCE, not PEM text
    assert sha256_of(der, der=True) == sha256_of(pem)
    r = tlspeek(ca_dir, "ca", "export", "-", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == pem.read_text()
    # The files in the CA directory are the same certificate.
    assert sha256_of(ca_dir / "tlspeek-ca-cert.pem") == sha256_of(pem)
    assert sha256_of(ca_dir / "tlspeek-ca-cert.der", der=True) == sha256_of(pem)


def test_path_prints_and_creates_nothing(ca_dir, env):
    r = tlspeek(ca_dir, "ca", "path", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        str(ca_dir),
        str(ca_dir / "tlspeek-ca.pem"),
        str(ca_dir / "tlspeek-ca-cert.pem"),
        str(ca_dir / "tlspeek-ca-cert.der"),
    ]
    assert not ca_dir.exists()


def test_info_content(ca_dir, tmp_path, env):
    first = tlspeek(ca_dir, "ca", "info", env=env)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stderr
    again = tlspeek(ca_dir, "ca", "info", env=env)
    assert again.returncode == 0 and "created" not in again.stderr
    assert again.stdout == first.stdout
    out = first.stdout
    pem = export_ca(ca_dir, tmp_path, env)
    for must in ("CN=tlspeek CA (", "valid from", "valid until", sha256_of(pem),
                 "EC P-256", "curl --cacert", "SSL_CERT_FILE=", "REQUESTS_CA_BUNDLE=",
                 "NODE_EXTRA_CA_CERTS=", "update-ca-certificates",
                 "/usr/local/share/ca-certificates/tlspeek-",
                 "certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n tlspeek-",
                 str(ca_dir / "tlspeek-ca-cert.pem")):
        assert must in out, f"info lacks {must!r}:\n{out}"


def test_ca_key_type_p384(ca_dir, env):
    r = tlspeek(ca_dir, "--ca-key-type", "p384", "ca", "info", env=env)
    assert r.returncode == 0, r.stderr
    assert "EC P-384" in r.stdout
    text = openssl("x509", "-text", "-noout", "-in",
                   str(ca_dir / "tlspeek-ca-cert.pem")).stdout
    assert "P-384" in text


def test_concurrent_first_use_makes_one_ca(ca_dir, env):
    procs = [subprocess.Popen([BIN, "--ca-dir", str(ca_dir), "ca", "info"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _, _, rc in results), results
    assert sum("created" in err for _, err, _ in results) == 1
    fingerprints = {line for out, _, _ in results for line in out.splitlines()
                    if "SHA-256:" in line}
    assert len(fingerprints) == 1
    assert sha256_of(ca_dir / "tlspeek-ca-cert.pem") in fingerprints.pop()


# ---- mint -------------------------------------------------------------------

def wait_for_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"s_server exited: {proc.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"s_server did not listen on {port}")


@pytest.fixture
def tls_server(tmp_path):
    """Starts `openssl s_server -www` with a given cert+key file."""
    procs = []

    def start(pem):
        port = free_port()
        p = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}",
                              "-cert", str(pem), "-key", str(pem), "-www", "-quiet"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        procs.append(p)
        wait_for_port(port, p)
        return port

    yield start
    for p in procs:
        p.kill()
        p.wait(timeout=10)


def curl(ca, url, env, *extra):
    e = dict(env, CURL_CA_BUNDLE=str(ca))
    return subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "10",
                           "--cacert", str(ca), *extra, url],
                          capture_output=True, text=True, timeout=30, env=e)


def test_minted_leaf_is_accepted_by_curl(ca_dir, tmp_path, env, tls_server):
    ca = export_ca(ca_dir, tmp_path, env)
    leaf = tmp_path / "leaf.pem"
    r = tlspeek(ca_dir, "ca", "mint", "localhost", "127.0.0.1", "--out", str(leaf), env=env)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(leaf).st_mode) == 0o600
    assert "PRIVATE KEY" in leaf.read_text()
    r = openssl("verify", "-CAfile", str(ca), "-purpose", "sslserver", str(leaf))
    assert r.returncode == 0, r.stdout + r.stderr

    port = tls_server(leaf)
    ok = curl(ca, f"https://localhost:{port}/", env,
              "--resolve", f"localhost:{port}:127.0.0.1")
    assert ok.returncode == 0, ok.stderr
    assert "s_server" in ok.stdout or "Ciphers" in ok.stdout
    by_ip = curl(ca, f"https://127.0.0.1:{port}/", env)
    assert by_ip.returncode == 0, by_ip.stderr
    other = curl(ca, f"https://other.test:{port}/", env,
                 "--resolve", f"other.test:{port}:127.0.0.1")
    assert other.returncode == 60, (other.returncode, other.stderr)


def test_mint_to_stdout_and_leaf_key_type(ca_dir, env):
    r = tlspeek(ca_dir, "--leaf-key", "rsa2048", "ca", "mint", "api.example.test",
                "*.example.test", "::1", env=env)
    assert r.returncode == 0, r.stderr
    assert "BEGIN CERTIFICATE" in r.stdout and "BEGIN PRIVATE KEY" in r.stdout
    text = openssl("x509", "-text", "-noout", input=r.stdout).stdout
    assert "Subject: CN = api.example.test" in text
    assert "DNS:api.example.test" in text and "DNS:*.example.test" in text
    assert "IP Address:0:0:0:0:0:0:0:1" in text
    assert "Public-Key: (2048 bit)" in text
    assert "Digital Signature, Key Encipherment" in text
    assert "TLS Web Server Authentication" in text
    assert "Subject Key Identifier" not in text


# ---- refusals and usage -----------------------------------------------------

def test_refuses_group_readable_key(ca_dir, env):
    assert tlspeek(ca_dir, "ca", "info", env=env).returncode == 0
    key = ca_dir / "tlspeek-ca.pem"
    os.chmod(key, 0o644)
    for cmd in (["info"], ["export", "-"], ["mint", "x.test"]):
        r = tlspeek(ca_dir, "ca", *cmd, env=env)
        assert r.returncode == 1, (cmd, r.stderr)
        assert r.stderr.startswith("tlspeek: error: ")
        assert f"chmod 600 {key}" in r.stderr
        assert r.stdout == ""


def _replace_ca_file(ca_dir, *pems):
    key = ca_dir / "tlspeek-ca.pem"
    key.write_text("".join(pems))
    os.chmod(key, 0o600)


def test_refuses_non_ca_and_mismatched_key(ca_dir, tmp_path, env):
    assert tlspeek(ca_dir, "ca", "info", env=env).returncode == 0
    good_cert = (ca_dir / "tlspeek-ca-cert.pem").read_text()
    other_key = tmp_path / "other.key"
    r = openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", str(other_key))
    assert r.returncode == 0, r.stderr

    _replace_ca_file(ca_dir, other_key.read_text(), good_cert)
    r = tlspeek(ca_dir, "ca", "info", env=env)
    assert r.returncode == 1 and "does not match" in r.stderr, r.stderr

    leaf = openssl("req", "-x509", "-key", str(other_key), "-subj", "/CN=not a ca",
                   "-days", "30", "-addext", "basicConstraints=critical,CA:FALSE")
    assert leaf.returncode == 0, leaf.stderr
    _replace_ca_file(ca_dir, other_key.read_text(), leaf.stdout)
    r = tlspeek(ca_dir, "ca", "info", env=env)
    assert r.returncode == 1 and "not a CA" in r.stderr, r.stderr


@pytest.mark.parametrize("args", [
    [],
    ["bogus"],
    ["export"],
    ["export", "--bogus", "f.pem"],
    ["export", "a.pem", "b.pem"],
    ["mint"],
    ["mint", "x.test", "--out"],
    ["mint", "bad name!"],
    ["path", "extra"],
])
def test_bad_usage_exits_2(ca_dir, env, args):
    r = tlspeek(ca_dir, "ca", *args, env=env)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert "tlspeek: error: " in r.stderr
    assert "usage:" in r.stderr


def test_help_and_runtime_error(ca_dir, tmp_path, env):
    r = tlspeek(ca_dir, "ca", "help", env=env)
    assert r.returncode == 0 and "mint NAME" in r.stdout
    r = tlspeek(ca_dir, "ca", "export", str(tmp_path / "no" / "such" / "ca.pem"), env=env)
    assert r.returncode == 1
    assert r.stderr.strip().endswith("No such file or directory"), r.stderr
