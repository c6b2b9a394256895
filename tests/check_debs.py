#!/usr/bin/env python3
"""Checks that every program the tests, the examples and the benchmark run
comes from a Debian package in the Makefile's lists, so that `make test` (and
`make bench`, `make fuzz`) on a fresh Debian 12 machine installs all of it.

    python3 tests/check_debs.py [--makefile Makefile] [-v]

How it works:
1. It finds the programs that the files under tests/ and examples/ run:
   in Python, the first string of a command list (["iptables", "-t", ...]),
   the argument of shutil.which(), the first argument of the tests' own
   argv wrappers (functions taking *args that reach subprocess, such as
   `ns.check("iptables", ...)`), following a name to the string constants it
   is bound to (a default value, a loop over a tuple, an assignment); in shell
   scripts, the command word of every simple command.
   A name counts as a program when it is found on the system PATH, since the
   packages of the lists were installed before this check runs.
2. It asks dpkg which package owns each program (`dpkg -S`, with /usr-merge
   and alternatives symlinks resolved).
3. Each package must be in the lists that the target running that file
   installs, or a dependency of one of them (installed with it), or in the
   ALLOWED table below. tests/bench/ is checked against BUILD_DEBS +
   TEST_DEBS + BENCH_DEBS, tests/fuzz/ against BUILD_DEBS + FUZZ_DEBS,
   everything else against BUILD_DEBS + TEST_DEBS.
It exits 1 naming each missing package, the list it belongs in and where its
programs are run; 2 on a usage error.

Not found on PATH at all is an error too when every package of the file's
lists is installed (a program no listed package provides); when some are not
(the bench packages before a first `make bench`), the name is reported as
unchecked, since it may be one of theirs.
"""
import argparse
import ast
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The one allowlist. Packages here need not be in the Makefile's lists.
ALLOWED = {
    # Essential: yes -- dpkg will not remove them, so every Debian has them.
    "bash": "Essential: every Debian has it (/bin/sh scripts and bash -c)",
    "coreutils": "Essential: every Debian has it",
    "dash": "Essential: /bin/sh on every Debian",
    "util-linux": "Essential: every Debian has it (setpriv, kill, ...)",
    "grep": "Essential: every Debian has it",
    "sed": "Essential: every Debian has it",
    "findutils": "Essential: every Debian has it",
    "diffutils": "Essential: every Debian has it",
    "debianutils": "Essential: every Debian has it (which, ...)",
    "hostname": "Essential: every Debian has it",
    "tar": "Essential: every Debian has it",
    "gzip": "Essential: every Debian has it",
    "dpkg": "Essential: every Debian has it (this check itself calls dpkg-query)",
    "init-system-helpers": "Essential: every Debian has it (service)",
    "ncurses-bin": "Essential: every Debian has it (clear, tput)",
}
# Programs that are run only where something else guarantees them.
ALLOWED_PROGRAMS = {
    "systemctl": "the bench calls it only when /run/systemd/system exists, i.e. when systemd "
                 "runs and so is installed; otherwise it uses service(8)",
}

SYSTEM_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "getoutput",
                    "getstatusoutput", "system", "popen", "execv", "execvp", "execvpe",
                    "execl", "execlp", "spawnv", "spawnvp", "create_subprocess_exec",
                    "create_subprocess_shell"}
SUBPROCESS_MODULES = {"subprocess", "os", "asyncio"}
WHICH_CALLS = {"which", "require_program"}  # shutil.which, tests/e2e/conftest.py
SHELL_BUILTINS = set("""
    . : [ [[ alias bg break builtin cd command continue declare echo eval exec exit export
    false fg getopts hash jobs kill let local printf pwd read readonly return set shift
    source test times trap true type typeset ulimit umask unalias unset wait then else elif
    fi do done case esac in for while until if function time ! { } ( ) select coproc
    """.split())
PROGRAM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
SCRIPT_SUFFIXES = (".py", ".sh")
SKIP_DIRS = {"__pycache__", "out", "corpus", "node_modules"}


# ---- the Makefile's lists ------------------------------------------------------

def read_lists(makefile):
    """{NAME_DEBS: [packages]} from `NAME_DEBS := a b \\` lines (continuations joined)."""
    text = open(makefile).read().replace("\\\n", " ")
    lists = {}
    for m in re.finditer(r"^([A-Z]+_DEBS)\s*:?=\s*(.*)$", text, re.M):
        lists[m.group(1)] = m.group(2).split("#", 1)[0].split()
    for need in ("BUILD_DEBS", "TEST_DEBS", "BENCH_DEBS", "FUZZ_DEBS"):
        if need not in lists:
            sys.exit("check_debs: %s defines no %s" % (makefile, need))
    return lists


def scope_of(path):
    """The lists that the make target running this file installs."""
    rel = os.path.relpath(path, ROOT)
    if rel.startswith("tests/bench/"):
        return ("BUILD_DEBS", "TEST_DEBS", "BENCH_DEBS")
    if rel.startswith("tests/fuzz/"):
        return ("BUILD_DEBS", "FUZZ_DEBS")
    return ("BUILD_DEBS", "TEST_DEBS")


# ---- finding the programs in Python ------------------------------------------

def call_name(func):
    if isinstance(func, ast.Attribute):
        return func.attr, func.value.id if isinstance(func.value, ast.Name) else None
    if isinstance(func, ast.Name):
        return func.id, None
    return None, None


def is_subprocess_call(node):
    name, owner = call_name(node.func)
    if name not in SUBPROCESS_CALLS:
        return False
    # A bare `run(...)` or `popen(...)` may be the tests' own helper: only the
    # library functions themselves count here; helpers are found as wrappers.
    return owner in SUBPROCESS_MODULES or (owner is None and name == "Popen")


def first_const(seq):
    if isinstance(seq, (ast.List, ast.Tuple)) and seq.elts:
        e = seq.elts[0]
        if isinstance(e, ast.Constant) and isinstance(e.value, str):
            return e.value
        return e
    return None


class Bindings(ast.NodeVisitor):
    """Every string constant each name is bound to in a module: assignments,
    default values, and loop targets over tuples of constants."""

    def __init__(self):
        self.names = {}

    def bind(self, name, value):
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            self.names.setdefault(name, set()).add(value.value)

    def visit_Assign(self, node):
        for t in node.targets:
            if isinstance(t, ast.Name):
                self.bind(t.id, node.value)
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        args = node.args.args + node.args.kwonlyargs
        defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults
        defaults += node.args.kw_defaults
        for a, d in zip(args, defaults):
            if d is not None:
                self.bind(a.arg, d)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_For(self, node):
        rows = node.iter.elts if isinstance(node.iter, (ast.List, ast.Tuple)) else []
        for row in rows:
            if isinstance(node.target, ast.Name):
                self.bind(node.target.id, row)
            elif isinstance(node.target, ast.Tuple) and isinstance(row, (ast.Tuple, ast.List)):
                for t, v in zip(node.target.elts, row.elts):
                    if isinstance(t, ast.Name):
                        self.bind(t.id, v)
        self.generic_visit(node)


EXEC_PREFIXES = (("ip", "netns", "exec"), ("sudo",), ("env",), ("nice",), ("nsenter",),
                 ("setpriv",), ("timeout",), ("stdbuf",))


def uses_vararg(expr, vararg):
    return any(isinstance(n, ast.Name) and n.id == vararg for n in ast.walk(expr))


def runs_its_args(f, wrappers):
    """Whether function f (with *V) runs V as a command line: it hands V itself
    to subprocess, appends V to a command prefix that runs its arguments
    (`["ip", "netns", "exec", ns] + list(V)`), or passes *V on to a function
    that does so. `[TSHARK] + list(V)` is not one: there V are arguments."""
    v = f.args.vararg.arg
    for n in ast.walk(f):
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add) \
                and isinstance(n.left, ast.List) and uses_vararg(n.right, v):
            head = tuple(e.value for e in n.left.elts
                         if isinstance(e, ast.Constant) and isinstance(e.value, str))
            if any(head[:len(p)] == p for p in EXEC_PREFIXES):
                return True
        if isinstance(n, ast.Call) and n.args:
            a = n.args[0]
            starred = isinstance(a, ast.Starred) and isinstance(a.value, ast.Name) \
                and a.value.id == v
            direct = isinstance(a, ast.Name) and a.id == v
            if (starred and call_name(n.func)[0] in wrappers) or (direct and is_subprocess_call(n)):
                return True
    return False


def argv_wrappers(tree):
    """Names of the functions whose *args are a command line to run (a fixed
    point: a wrapper of a wrapper is one too)."""
    funcs = [n for n in ast.walk(tree)
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.args.vararg]
    wrappers = set()
    changed = True
    while changed:
        changed = False
        for f in funcs:
            if f.name not in wrappers and runs_its_args(f, wrappers):
                wrappers.add(f.name)
                changed = True
    return wrappers


def resolve(node, bindings):
    """The program names an argv[0] expression can stand for."""
    if isinstance(node, ast.Constant):
        node = node.value
    if isinstance(node, str):
        names = {node}
    elif isinstance(node, ast.Name):
        names = bindings.names.get(node.id, set())
    else:
        return set()
    return {os.path.basename(n) for n in names
            if PROGRAM_RE.match(os.path.basename(n)) and not n.startswith("-")}


def python_programs(path):
    """[(name, line, sure)] of the programs a Python file runs; `sure` is False for
    a name found only at the head of some list, which may be no command at all."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    bindings = Bindings()
    bindings.visit(tree)
    wrappers = argv_wrappers(tree)
    found = []

    def add(expr, line, sure=True):
        for name in resolve(expr, bindings):
            found.append((name, line, sure))

    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)):
            # Any command list: ["tshark", "-r", ...]. Names that are not
            # programs (["name", ...]) drop out when PATH does not have them.
            head = first_const(node)
            if isinstance(head, str):
                add(head, node.lineno, sure=False)
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name, _ = call_name(node.func)
        arg = node.args[0]
        if name in WHICH_CALLS:
            add(arg, node.lineno)
        elif name in wrappers and not isinstance(arg, (ast.List, ast.Tuple)):
            add(arg, node.lineno)
        elif is_subprocess_call(node):
            if isinstance(arg, (ast.List, ast.Tuple)):
                head = first_const(arg)
                if head is not None:
                    add(head, node.lineno)
                shell = shell_argument(arg)
                if shell:
                    found += [(p, node.lineno, sure) for p, _, sure in shell_programs_text(shell)]
            elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found += [(p, node.lineno, sure) for p, _, sure in shell_programs_text(arg.value)]
    return found


def shell_argument(argv):
    """The script of ["sh"|"bash", "-c", SCRIPT, ...], if that is what argv is."""
    e = argv.elts
    if len(e) >= 3 and all(isinstance(x, ast.Constant) and isinstance(x.value, str) for x in e[:3]):
        if os.path.basename(e[0].value) in ("sh", "bash", "dash") and e[1].value == "-c":
            return e[2].value
    return None


# ---- finding the programs in shell scripts -----------------------------------

def shell_lines(text):
    """(line number, logical line) of a script: continuation lines joined, the
    bodies of here-documents left out (they are data, or another language)."""
    out, pending, start, heredoc = [], "", 0, None
    for lineno, line in enumerate(text.splitlines(), 1):
        if heredoc:
            if line.strip() == heredoc:
                heredoc = None
            continue
        if not pending:
            start = lineno
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        out.append((start, full))
        m = re.search(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?", full)
        if m:
            heredoc = m.group(1)
    return out


def shell_programs_text(text):
    """[(name, line, sure)] of the command words of a shell script: the first word of
    each simple command, after assignments and prefixes such as `exec`, `sudo`,
    `env`, `ip netns exec NS`, or a function of the script's that runs "$@";
    and the program a `command -v` probes for."""
    funcs = set(re.findall(r"^\s*(?:function\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*\(\)", text, re.M))
    # A function that runs its arguments as a command: `in_ns() { ip netns exec "$NS" "$@"; }`
    runs_args = r'(?:[{;&|]\s*|\bip\s+netns\s+exec\s+\S+\s+|\b(?:sudo|exec|nice|env)\s+)"\$@"'
    runners = {f for f in funcs
               if re.search(r"^\s*(?:function\s+)?%s\s*\(\)\s*\{[^}]*?%s" % (f, runs_args),
                            text, re.M)}
    found = []
    for lineno, line in shell_lines(text):
        for m in re.finditer(r"(?:^|[;&|(`]|\$\(|\bthen\b|\bdo\b|\belse\b|!)\s*([^;&|()`]*)", line):
            words = shell_words(m.group(1))
            while words and words[0] in runners:
                words = words[1:]
            prog = command_word(words)
            if prog and prog not in funcs and prog not in SHELL_BUILTINS:
                # Only a line's first command is surely one: later segments may
                # be words of a quoted message that happens to hold a ';'.
                found.append((prog, lineno, m.start() == 0))
        for m in re.finditer(r"\bcommand\s+-v\s+([A-Za-z0-9._+-]+)", line):
            found.append((m.group(1), lineno, True))
    return found


def shell_words(segment):
    segment = segment.split(" #", 1)[0]
    if segment.lstrip().startswith("#"):
        return []
    try:
        return shlex.split(segment, comments=True)
    except ValueError:
        return segment.split()


def command_word(words):
    i = 0
    while i < len(words):
        w = words[i]
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w):          # VAR=value prefix
            i += 1
        elif w in ("exec", "sudo", "env", "nice", "nohup", "timeout", "setsid", "stdbuf"):
            i += 1
            while i < len(words) and words[i].startswith("-"):
                # env -u NAME / -C DIR take a value
                i += 2 if w == "env" and words[i] in ("-u", "-C", "--unset", "--chdir") else 1
            if w == "timeout" and i < len(words):
                i += 1                                      # the duration
        elif w == "ip" and words[i + 1:i + 3] == ["netns", "exec"] and i + 4 <= len(words):
            return "ip"                                     # ip itself is the program run
        else:
            break
    if i >= len(words):
        return None
    w = words[i]
    if w.startswith("$") or w.startswith("-") or not PROGRAM_RE.match(os.path.basename(w)):
        return None
    return os.path.basename(w)


def netns_exec_programs(text):
    """Programs run as `ip netns exec NS PROG`: the word after the namespace."""
    found = []
    for lineno, line in shell_lines(text):
        for m in re.finditer(r"\bip\s+netns\s+exec\s+\S+\s+([A-Za-z0-9._+-]+)", line):
            found.append((m.group(1), lineno, True))
    return found


def script_programs(path):
    if path.endswith(".py"):
        return python_programs(path)
    text = open(path, encoding="utf-8").read()
    return shell_programs_text(text) + netns_exec_programs(text)


def script_files():
    for top in ("tests", "examples"):
        for d, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("."))
            for f in sorted(files):
                p = os.path.join(d, f)
                if f.endswith(SCRIPT_SUFFIXES) and os.path.abspath(p) != os.path.abspath(__file__):
                    yield p


# ---- programs to packages ----------------------------------------------------

def which(name):
    for d in SYSTEM_PATH:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def dpkg_paths(path):
    """The spellings dpkg may know a file by: as found, resolved (alternatives),
    and both sides of the /usr merge (dpkg records /bin/bash, PATH finds /usr/bin/bash)."""
    out = []
    for p in (path, os.path.realpath(path)):
        out.append(p)
        for a, b in (("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/")):
            if p.startswith(a):
                out.append(b + p[len(a):])
            elif p.startswith(b):
                out.append(a + p[len(b):])
    return list(dict.fromkeys(out))


def owners(paths):
    """{path: package} for the paths dpkg knows, in one dpkg-query call."""
    if not paths:
        return {}
    r = subprocess.run(["dpkg-query", "-S"] + paths, capture_output=True, text=True)
    found = {}
    for line in r.stdout.splitlines():
        pkgs, _, path = line.partition(": ")
        if path in paths:
            # "pkg:arch" or "pkg1, pkg2" (diversions): the first owner.
            found[path] = pkgs.split(",")[0].split(":")[0].strip()
    return found


def installed_packages():
    """{package: (depends-closure names, provides)} of every installed package."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${db:Status-Abbrev}\t${Depends}, "
                        "${Pre-Depends}\t${Provides}\n"], capture_output=True, text=True)
    deps, provides = {}, {}
    for line in r.stdout.splitlines():
        name, status, dep, prov = (line.split("\t") + ["", "", ""])[:4]
        if not status.startswith("ii"):
            continue
        deps[name] = {alt.strip().split(" ")[0].split(":")[0]
                      for d in dep.split(",") for alt in d.split("|") if alt.strip()}
        for p in prov.split(","):
            if p.strip():
                provides.setdefault(p.strip().split(" ")[0], set()).add(name)
    return deps, provides


def closure(roots, deps, provides):
    """The roots and everything they depend on, as installed."""
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for d in deps.get(p, ()):
            todo.append(d)
            todo.extend(provides.get(d, ()))
    return seen


def package_hint(program):
    """Where to look for the package of a program that is not installed here."""
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", program],
                       capture_output=True, text=True)
    if r.returncode == 0 and r.stdout.strip():
        return " (Debian has a package named '%s')" % program
    return " (`apt-file search bin/%s` names it)" % program


# ---- the check ---------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--makefile", default=os.path.join(ROOT, "Makefile"))
    ap.add_argument("-v", "--verbose", action="store_true", help="list every program found")
    args = ap.parse_args()

    lists = read_lists(args.makefile)
    deps, provides = installed_packages()

    # program -> {scope: [where]}; sure: names found where only a program can be
    uses, sure = {}, set()
    for path in script_files():
        try:
            progs = script_programs(path)
        except SyntaxError as e:
            sys.exit("check_debs: cannot parse %s: %s" % (path, e))
        for name, line, is_sure in progs:
            where = "%s:%d" % (os.path.relpath(path, ROOT), line)
            uses.setdefault(name, {}).setdefault(scope_of(path), []).append(where)
            if is_sure:
                sure.add(name)

    located = {name: which(name) for name in uses}
    candidates = {}
    for name, path in located.items():
        if path:
            candidates[name] = dpkg_paths(path)
    owned = owners(sorted({p for ps in candidates.values() for p in ps}))

    problems, unchecked, ok = {}, [], []
    for name in sorted(uses):
        if name not in sure and name.isupper():
            # A list head in capitals is an HTTP method (["GET", "/", ...]),
            # not a program, even where libwww-perl puts GET and HEAD on PATH.
            continue
        path = located[name]
        for scope, where in sorted(uses[name].items()):
            listed = [p for lst in scope for p in lists[lst]]
            allowed = closure(listed, deps, provides) | set(ALLOWED)
            target = scope[-1]
            if path is None:
                # Not on PATH. When every listed package is installed, nothing
                # the lists bring provides it: an error for a name found where
                # only a program can be; a mere list head (["name", ...]) is
                # no program. Otherwise it may be one of the missing packages'.
                if name not in sure:
                    continue
                if not all(p in deps for p in listed):
                    unchecked.append("%s (%s)" % (name, where[0]))
                else:
                    problems.setdefault(("?" + name, target), []).extend(where)
                continue
            if name in ALLOWED_PROGRAMS:
                ok.append((name, path, "allowed: " + ALLOWED_PROGRAMS[name]))
                continue
            pkg = next((owned[p] for p in candidates[name] if p in owned), None)
            if pkg is None:
                problems.setdefault(("!" + name + " " + path, target), []).extend(where)
            elif pkg not in allowed:
                problems.setdefault((pkg, target), []).extend(where)
            else:
                ok.append((name, path, pkg))

    if args.verbose:
        for name, path, pkg in sorted(set(ok)):
            print("  %-14s %-28s %s" % (name, path, pkg))
        for u in unchecked:
            print("  unchecked: %s" % u)
    if problems:
        print("check_debs: programs that tests, examples or the bench run come from packages "
              "missing from the Makefile's lists:", file=sys.stderr)
        for (what, target), where in sorted(problems.items()):
            shown = ", ".join(sorted(set(where))[:4]) + (" ..." if len(set(where)) > 4 else "")
            if what.startswith("?"):
                print("  program '%s' is not installed and no package in the lists provides it "
                      "(run at %s): add its package to %s%s" % (what[1:], shown, target,
                                                                 package_hint(what[1:])),
                      file=sys.stderr)
            elif what.startswith("!"):
                prog, path = what[1:].split(" ", 1)
                print("  program '%s' is %s, which no Debian package provides (run at %s): "
                      "use a packaged program, or add it to ALLOWED_PROGRAMS in %s with the "
                      "reason" % (prog, path, shown, os.path.relpath(__file__, ROOT)),
                      file=sys.stderr)
            else:
                print("  missing package %s: add it to %s (run at %s)" % (what, target, shown),
                      file=sys.stderr)
        return 1
    n_pkgs = len({p for _, _, p in ok})
    print("check_debs: %d programs run by tests/examples/bench, from %d packages, all in the "
          "Makefile's lists%s" % (len({n for n, _, _ in ok}), n_pkgs,
                                  "; %d unchecked until their packages are installed"
                                  % len(unchecked) if unchecked else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
