"""tests/check_debs.py, the check that every program the tests, the examples
and the bench run comes from a package in the Makefile's lists, can fail: it
names the package when a listed one is taken out of a copy of the Makefile,
and a program the lists do not bring at all."""
import os
import re
import shutil
import subprocess
import sys

from conftest import ROOT, require_program

CHECK = os.path.join(ROOT, "tests", "check_debs.py")
MAKEFILE = os.path.join(ROOT, "Makefile")


def check(makefile, *extra):
    return subprocess.run([sys.executable, CHECK, "--makefile", makefile] + list(extra),
                          capture_output=True, text=True, timeout=120)


def without(tmp_path, package):
    """A copy of the Makefile with `package` taken out of TEST_DEBS."""
    text = open(MAKEFILE).read()
    m = re.search(r"^TEST_DEBS\s*:=(?:.*\\\n)*.*$", text, re.M)
    assert m and re.search(r"\s%s(\s|$)" % re.escape(package), m.group(0)), package
    cut = re.sub(r"(?<=\s)%s(?=\s|$)" % re.escape(package), "", m.group(0))
    path = tmp_path / "Makefile"
    path.write_text(text[:m.start()] + cut + text[m.end():])
    return str(path)


def test_the_lists_are_complete():
    r = check(MAKEFILE)
    assert r.returncode == 0, r.stderr
    assert "all in the Makefile's lists" in r.stdout


def test_a_package_taken_out_of_the_list_is_named(tmp_path):
    for package in ("iptables", "tshark", "xxd"):
        require_program(package)
        r = check(without(tmp_path, package))
        assert r.returncode == 1, r.stdout
        line = [l for l in r.stderr.splitlines() if "missing package %s:" % package in l]
        assert line and "add it to TEST_DEBS (run at " in line[0], r.stderr
        assert len(r.stderr.splitlines()) == 2, r.stderr  # that package alone


def test_a_program_outside_the_lists_is_named(tmp_path):
    """A new test that runs a program from a package no list has: the check
    reads tests/ itself, so the probe file goes into a scratch copy."""
    root = tmp_path / "tree"
    for name in ("tests", "examples"):
        shutil.copytree(os.path.join(ROOT, name), root / name)
    shutil.copy(MAKEFILE, root / "Makefile")
    (root / "tests" / "e2e" / "test_probe.py").write_text(
        "import subprocess\n"
        "def test_probe():\n"
        "    subprocess.run(['dpkg-deb', '--version'])\n"
        "    subprocess.run(['no-such-program-tlspeek', '-x'])\n")
    r = subprocess.run([sys.executable, str(root / "tests" / "check_debs.py")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    # dpkg-deb is dpkg's (allowed: Essential); the made-up name is no package's.
    assert "dpkg-deb" not in r.stderr
    assert "program 'no-such-program-tlspeek' is not installed" in r.stderr
    assert "tests/e2e/test_probe.py:4" in r.stderr
