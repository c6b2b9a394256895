"""End-to-end tests for the file modes of what tlspeek writes: transcripts
(HAR, JSONL, PCAP, key log) are 0600, whether new or already there, and a CA
directory that group or others may enter is refused with the chmod that
fixes it.

The umask is set to 022 for the runs here, so a mode that comes out 0600
was chosen by tlspeek, not by the umask.
"""
import os
import stat
import subprocess

import pytest

from conftest import BIN, clean_env, free_port

KINDS = ("--har", "--jsonl", "--pcap", "--keylog")


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"tlspeek binary not found at {BIN} (build it or set TLSPEEK_BIN)")


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def transcript_args(tmp_path):
    paths = {k: str(tmp_path / ("t" + k.replace("-", "."))) for k in KINDS}
    args = []
    for k in KINDS:
        args += [k, paths[k]]
    return paths, args


def test_new_transcripts_are_0600(umask022, proxy_factory, tmp_path):
    paths, args = transcript_args(tmp_path)
    p = proxy_factory(*args)
    for k, path in paths.items():
        assert mode_of(path) == 0o600, "%s %s is %o" % (k, path, mode_of(path))
    assert "accessible to other users" not in p.stderr()


def test_existing_0644_transcripts_are_made_0600(umask022, proxy_factory, tmp_path):
    paths, args = transcript_args(tmp_path)
    for path in paths.values():
        with open(path, "w") as f:
            f.write("old\n")
        os.chmod(path, 0o644)
    p = proxy_factory(*args)
    err = p.stderr()
    for k, path in paths.items():
        assert mode_of(path) == 0o600, "%s %s is %o" % (k, path, mode_of(path))
        assert "%s was accessible to other users (mode 0644); made it 0600" % path in err, err


def test_ca_dir_open_to_others_is_refused(umask022, pki, tmp_path):
    ca_dir = tmp_path / "ca"
    r = subprocess.run([BIN, "--ca-dir", str(ca_dir), "ca", "export", str(tmp_path / "c.pem")],
                       capture_output=True, timeout=60, env=clean_env())
    assert r.returncode == 0, r.stderr.decode()
    assert mode_of(ca_dir) == 0o700  # created by tlspeek
    os.chmod(ca_dir, 0o755)
    cmd = [BIN, "--ca-dir", str(ca_dir), "-l", "127.0.0.1:%d" % free_port()]
    r = subprocess.run(cmd, capture_output=True, timeout=20, env=clean_env())
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "fix it with: chmod 700 %s" % ca_dir in err, err
    assert "listening on" not in err
    assert mode_of(ca_dir) == 0o755  # not changed behind the user's back
    # The key file at 0644 inside a private directory: refused likewise.
    os.chmod(ca_dir, 0o700)
    key = ca_dir / "tlspeek-ca.pem"
    os.chmod(key, 0o644)
    r = subprocess.run(cmd, capture_output=True, timeout=60, env=clean_env())
    assert r.returncode == 1 and "fix it with: chmod 600 %s" % key in r.stderr.decode()
    os.chmod(key, 0o600)
    r = subprocess.run([BIN, "--ca-dir", str(ca_dir), "ca", "info"], capture_output=True,
                       timeout=60, env=clean_env())
    assert r.returncode == 0, r.stderr.decode()
