#!/usr/bin/env python3
"""Checks the shape of the C sources: no two files of proxy/ that call each
other in both directions, no .c file over 800 lines, no function over 80.

    python3 tests/check_calls.py [--root DIR] [--build DIR] [--allow FILE] [-v]

How it works:
1. Calls between files come from the object files of the build: for every
   BUILD/proxy/**/X.o, `nm` lists the symbols it defines and the ones it
   leaves undefined. X.c uses Y.c when one of X.o's undefined symbols is
   defined in Y.o. Two files that use each other are reported as a pair,
   with one symbol each way.
2. Lines are counted in every .c file under ca/, filters/ and proxy/ of the
   source tree (ROOT).
3. Functions are found by a brace-matching scan of each of those files:
   comments, string and character literals and preprocessor lines are
   blanked out, then every `{` at file level whose preceding text ends in
   `NAME(...)` opens a function, which ends at its matching `}`. Its length
   runs from the line of NAME to the line of that `}`.

Limits (what it does not see):
- Only symbols with external linkage: a call through a function pointer (a
  callback, an ops table) is not a use, and neither is a static inline
  function of a header. A use of an extern variable counts like a call.
- Only objects that exist: run it after `make` (`make test` does); sources
  without an object are not part of the call check.
- The function scan does not expand macros: a macro that opens or closes a
  brace of its own, or that defines a function, confuses it; tlspeek has
  none. A K&R-style definition is not recognised.

The allow file (one entry per line, `#` comments) names findings that are
known and still to be fixed, as they are printed after "- " without the
details in parentheses; they are reported but do not fail the check. An entry that no longer matches a
finding fails the check, so the list can only shrink.

Exits 0 when nothing is found (or everything found is allowed), 1 naming
each finding, 2 on a usage error.
"""
import argparse
import os
import re
import subprocess
import sys

MAX_FILE_LINES = 800
MAX_FUNC_LINES = 80
CALL_DIRS = ("proxy",)
SIZE_DIRS = ("ca", "filters", "proxy")


def nm_symbols(obj):
    """(defined, undefined) external symbol names of one object file."""
    out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            undefined.add(name)
        elif kind.isupper() and kind not in ("N",):
            defined.add(name)
    return defined, undefined


def objects(build, root):
    """{source path relative to root: object path} for the call dirs."""
    found = {}
    for d in CALL_DIRS:
        top = os.path.join(build, d)
        for dirpath, _, files in os.walk(top):
            for f in files:
                if not f.endswith(".o"):
                    continue
                obj = os.path.join(dirpath, f)
                src = os.path.relpath(obj, build)[:-2] + ".c"
                if os.path.exists(os.path.join(root, src)):
                    found[src] = obj
    return found


def mutual_pairs(objs):
    """Sorted findings for pairs of files that use each other."""
    syms = {src: nm_symbols(obj) for src, obj in objs.items()}
    owner = {}
    for src, (defined, _) in syms.items():
        for name in defined:
            owner[name] = src
    uses = {}  # (a, b) -> a symbol of b that a uses
    for src, (_, undefined) in syms.items():
        for name in sorted(undefined):
            dst = owner.get(name)
            if dst and dst != src:
                uses.setdefault((src, dst), name)
    found = []
    for (a, b), name in sorted(uses.items()):
        if a < b and (b, a) in uses:
            found.append("%s <-> %s (%s uses %s, %s uses %s)" % (a, b, a, name, b, uses[(b, a)]))
    return found


def blank(text):
    """The text with comments, literals and preprocessor lines replaced by
    spaces (newlines kept, so line numbers stay)."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            # A preprocessor line, with its backslash continuations.
            while i < n and not (text[i] == "\n" and text[i - 1] != "\\"):
                out.append("\n" if text[i] == "\n" else " ")
                i += 1
            continue
        if c == "\n":
            at_line_start = True
            out.append(c)
            i += 1
            continue
        if not c.isspace():
            at_line_start = False
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.extend("\n" if ch == "\n" else " " for ch in text[i:end])
            i = end
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                out.append(" ")
                i += 1
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n - 1) - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


FUNC_HEAD = re.compile(r"([A-Za-z_]\w*)\s*\([^;{}]*\)\s*(?:__attribute__\s*\(\(.*\)\)\s*)?$", re.S)


def functions(text):
    """[(name, first line, last line)] of the function definitions."""
    code = blank(text)
    found = []
    depth, head_start, i = 0, 0, 0
    while i < len(code):
        c = code[i]
        if c == "{":
            if depth == 0:
                m = FUNC_HEAD.search(code[head_start:i])
                if m and "=" not in code[head_start:i][: m.start()].split("\n")[-1]:
                    start = code.count("\n", 0, head_start + m.start()) + 1
                    end = matching_brace(code, i)
                    found.append((m.group(1), start, code.count("\n", 0, end) + 1))
                    i = end + 1
                    head_start = i
                    continue
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                head_start = i + 1
        elif c == ";" and depth == 0:
            head_start = i + 1
        i += 1
    return found


def matching_brace(code, i):
    depth = 0
    for j in range(i, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


def size_findings(root):
    found = []
    for d in SIZE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            for f in sorted(files):
                if not f.endswith(".c"):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, root)
                text = open(path, encoding="utf-8", errors="replace").read()
                lines = text.count("\n")
                if lines > MAX_FILE_LINES:
                    found.append("file over %d lines: %s (%d lines)" % (MAX_FILE_LINES, rel, lines))
                for name, first, last in functions(text):
                    if last - first + 1 > MAX_FUNC_LINES:
                        found.append("function over %d lines: %s: %s() (%d lines, from line %d)" %
                                     (MAX_FUNC_LINES, rel, name, last - first + 1, first))
    return sorted(found)


def read_allow(path):
    allowed = []
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line:
            allowed.append(line)
    return allowed


def key(finding):
    """What an allow entry must match: the finding without its details in
    parentheses (line counts, symbols), which change as code is edited."""
    return re.sub(r" \(.*\)$", "", finding.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--build", help="the build folder (default ROOT/build)")
    ap.add_argument("--allow", help="known findings still to be fixed")
    ap.add_argument("-v", action="store_true", help="also list the files checked")
    args = ap.parse_args()
    build = args.build or os.path.join(args.root, "build")
    objs = objects(build, args.root)
    if not objs:
        print("check_calls: no object files of %s under %s: run make first" %
              ("/".join(CALL_DIRS), build), file=sys.stderr)
        return 2
    if args.v:
        for src in sorted(objs):
            print("checked", src)
    findings = ["calls both ways: " + f for f in mutual_pairs(objs)] + size_findings(args.root)
    allowed = read_allow(args.allow) if args.allow else []
    allowed_keys = {key(a) for a in allowed}
    failed = 0
    for f in findings:
        if key(f) in allowed_keys:
            print("allowed (still to fix): " + f)
        else:
            print("- " + f, file=sys.stderr)
            failed = 1
    found_keys = {key(f) for f in findings}
    for a in allowed:
        if key(a) not in found_keys:
            print("- %s: allowed in %s but no longer found: take it out" % (a, args.allow),
                  file=sys.stderr)
            failed = 1
    if failed:
        print("check_calls: the findings above fail the check (tests/check_calls.py)",
              file=sys.stderr)
        return 1
    if findings:
        print("check_calls: %d files of %s checked: nothing new; %d known findings allowed by %s" %
              (len(objs), "/".join(CALL_DIRS), len(findings), args.allow))
    else:
        print("check_calls: %d files of %s checked: no two call each other both ways, no .c "
              "over %d lines, no function over %d lines" %
              (len(objs), "/".join(CALL_DIRS), MAX_FILE_LINES, MAX_FUNC_LINES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
