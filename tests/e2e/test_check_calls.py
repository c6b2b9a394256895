"""tests/check_calls.py, the check of the sources' shape, can fail: on a tiny
tree of its own it names two proxy/ files that call each other, a .c file
over 800 lines and a function over 80 lines, and an allow-list entry that
no longer matches; a tree without them passes."""
import os
import subprocess
import sys

from conftest import ROOT, require_program

CHECK = os.path.join(ROOT, "tests", "check_calls.py")


def write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build(root):
    """Compiles every .c of the fake tree to root/build/<path>.o."""
    require_program("cc")
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".c"):
                src = os.path.join(dirpath, f)
                obj = os.path.join(root, "build", os.path.relpath(src, root)[:-2] + ".o")
                os.makedirs(os.path.dirname(obj), exist_ok=True)
                subprocess.run(["cc", "-c", "-o", obj, src], check=True)


def check(root, *extra):
    return subprocess.run([sys.executable, CHECK, "--root", str(root)] + list(extra),
                          capture_output=True, text=True, timeout=60)


def one_way_tree(root):
    write(root, "proxy/a.c", "int b_work(int);\nint a_work(int x) { return b_work(x) + 1; }\n")
    write(root, "proxy/b.c", "int b_work(int x) { return x * 2; }\n")


def test_a_tree_without_findings_passes(tmp_path):
    one_way_tree(tmp_path)
    build(tmp_path)
    r = check(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 files of proxy checked" in r.stdout, r.stdout
    assert r.stderr == ""


def test_two_files_calling_each_other_are_named(tmp_path):
    one_way_tree(tmp_path)
    write(tmp_path, "proxy/modes/c.c",
          "int d_work(int);\nint c_back(int x) { return x; }\n"
          "int c_work(int x) { return d_work(x); }\n")
    write(tmp_path, "proxy/d.c", "int c_back(int);\nint d_work(int x) { return c_back(x); }\n")
    build(tmp_path)
    r = check(tmp_path)
    assert r.returncode == 1, r.stdout
    lines = [l for l in r.stderr.splitlines() if l.startswith("- ")]
    assert lines == ["- calls both ways: proxy/d.c <-> proxy/modes/c.c "
                     "(proxy/d.c uses c_back, proxy/modes/c.c uses d_work)"], r.stderr


def test_a_long_file_and_a_long_function_are_named(tmp_path):
    one_way_tree(tmp_path)
    body = "".join("  x += %d;\n" % i for i in range(77))
    # long_one: 81 lines from its name to its closing brace; at_limit: 80. A
    # string and a comment with braces in them do not confuse the scan.
    write(tmp_path, "proxy/long.c",
          "/* { */\nstatic const char *t = \"}{\";\n"
          "int long_one(int x)\n{\n" + body + "  return x;\n}\n"
          "int at_limit(int x) {\n" + body + "  return x;\n}\n")
    write(tmp_path, "filters/big.c", "int big;\n" + "/* a line */\n" * 800)
    build(tmp_path)
    r = check(tmp_path)
    assert r.returncode == 1, r.stdout
    lines = sorted(l for l in r.stderr.splitlines() if l.startswith("- "))
    assert lines == ["- file over 800 lines: filters/big.c (801 lines)",
                     "- function over 80 lines: proxy/long.c: long_one() (81 lines, from line 3)"], \
        r.stderr


def test_allowed_findings_pass_and_stale_entries_fail(tmp_path):
    one_way_tree(tmp_path)
    write(tmp_path, "filters/big.c", "int big;\n" + "/* a line */\n" * 800)
    build(tmp_path)
    allow = tmp_path / "allow.txt"
    allow.write_text("# known\nfile over 800 lines: filters/big.c\n")
    r = check(tmp_path, "--allow", str(allow))
    assert r.returncode == 0, r.stderr
    assert "allowed (still to fix): file over 800 lines: filters/big.c" in r.stdout
    allow.write_text("file over 800 lines: filters/big.c\ncalls both ways: proxy/a.c <-> proxy/b.c\n")
    r = check(tmp_path, "--allow", str(allow))
    assert r.returncode == 1
    assert "- calls both ways: proxy/a.c <-> proxy/b.c: allowed in" in r.stderr
    assert "no longer found: take it out" in r.stderr


def test_no_objects_is_a_usage_error(tmp_path):
    one_way_tree(tmp_path)
    r = check(tmp_path)
    assert r.returncode == 2
    assert "run make first" in r.stderr
