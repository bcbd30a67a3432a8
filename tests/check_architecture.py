#!/usr/bin/env python3
"""tests/check_architecture.py: the architecture of docs/architecture.md holds in the code.

1. No dependency cycle between source files. File A depends on file B when A calls a function
   B defines (not static) or includes B's header; a .c file and its .h are one unit, and a
   folder's internal `*-impl.h` header (declarations of several files' functions) counts
   through the calls, not as a unit of its own.
2. Folders depend only on the folders below them (LAYERS): nothing includes or calls upward.
3. The folder map in docs/architecture.md matches the tree: every folder with C sources is in
   it, every folder it names exists, and every source file of train/ is named.

    check_architecture.py SOURCE_DIR
Exits 1 with one line per violation.
"""
import collections
import os
import re
import subprocess
import sys

# Folder -> the folders it may use (directly). Anything not listed may not be used.
BASE = {"common"}
LAYERS = {
    "common": set(),
    "kernels": BASE,
    "data": BASE | {"kernels"},  # kernels/batch.h: the batch struct loaders fill
    "optim": BASE | {"kernels"},
    "model": BASE | {"kernels"},
    "train/objectives": BASE,
    "train/report": BASE,
    "train/recipe": BASE | {"kernels", "data", "optim", "model", "train/objectives"},
    "train/run": BASE | {"kernels", "data", "optim", "model", "train/recipe", "train/objectives"},
    "train/stages": BASE
    | {"kernels", "data", "optim", "model", "train/recipe", "train/objectives", "train/run",
       "train/report"},
    "train/cli": BASE
    | {"kernels", "data", "optim", "model", "train/recipe", "train/objectives", "train/run",
       "train/report", "train/stages"},
}


def sources(root):
    out = subprocess.run(["git", "-C", root, "ls-files", "*.c", "*.h"], capture_output=True,
                         text=True, check=True).stdout.split()
    return [f for f in out if not f.startswith(("tests/", "bench/"))]


def strip_comments(text):
    return re.sub(r"//.*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


DEF = re.compile(r"^(?!static)[A-Za-z_][A-Za-z0-9_ \*]*?\b([a-z_][a-z0-9_]*)\([^;{]*\)\s*\{", re.M)


def graph(root, files):
    text = {f: strip_comments(open(os.path.join(root, f)).read()) for f in files}
    defs = {}
    for f in files:
        if f.endswith(".c"):
            for m in DEF.finditer(text[f]):
                defs.setdefault(m.group(1), f)
    unit = lambda f: f[:-2]
    units = {unit(f) for f in files if f.endswith(".c")}
    calls = collections.defaultdict(set)  # unit -> units (for cycles)
    uses = collections.defaultdict(set)  # file -> files (for layering: every include)
    for f in files:
        for inc in re.findall(r'#include "([^"]+)"', text[f]):
            if inc in text:
                uses[f].add(inc)
                if unit(inc) != unit(f) and unit(inc) in units:
                    calls[unit(f)].add(unit(inc))
        if f.endswith(".c"):
            for name in set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*\(", text[f])):
                d = defs.get(name)
                if d and unit(d) != unit(f):
                    calls[unit(f)].add(unit(d))
                    uses[f].add(d)
    return calls, uses


def cycles(g):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(list(g)):
        if v not in index:
            visit(v)
    return found


def folder(path):
    d = os.path.dirname(path)
    return "/".join(d.split("/")[:2]) if d.startswith("train/") else d.split("/")[0]


def check_map(root, files):
    doc = open(os.path.join(root, "docs", "architecture.md")).read()
    table = [l for l in doc.split("\n## Folders", 1)[1].split("\n## ", 1)[0].splitlines()
             if l.startswith("| `")]
    named = {m for l in table for m in re.findall(r"`([a-z_/]+)/`", l.split("|")[1])}
    problems = []
    code_folders = {os.path.dirname(f) for f in files}
    for d in sorted(code_folders):
        if d not in named and folder(d + "/x") not in named:
            problems.append(f"docs/architecture.md: folder {d}/ is missing from the folder map")
    for d in sorted(named):
        if not os.path.isdir(os.path.join(root, d)):
            problems.append(f"docs/architecture.md: the folder map names {d}/, which does not exist")
    for f in files:
        if f.startswith("train/") and f.endswith(".c"):
            name = os.path.basename(f)
            if name not in doc and not (name.startswith("cmd_") and "cmd_<name>.c" in doc):
                problems.append(f"docs/architecture.md: {f} is not named in the folder map")
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    files = sources(root)
    calls, uses = graph(root, files)
    problems = [f"dependency cycle: {' <-> '.join(c)}" for c in cycles(calls)]
    for a in sorted(uses):
        for b in sorted(uses[a]):
            fa, fb = folder(a), folder(b)
            if fa == fb:
                continue
            if fa not in LAYERS:
                problems.append(f"{a}: folder {fa} is not in the layer table of this script")
            elif fb not in LAYERS[fa]:
                problems.append(f"{a} uses {b}: {fa} may not depend on {fb}")
    problems += check_map(root, files)
    for p in sorted(set(problems)):
        print("FAIL:", p)
    n_units = len({f[:-2] for f in files})
    print(f"{len(files)} files in {n_units} units: {len(set(problems))} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
