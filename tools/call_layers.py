#!/usr/bin/env python3
"""call_layers.py — which source file calls functions defined in which, per
folder, from the object files of a build; fails when files call each other in
a loop (a folder should be layered: helpers at the bottom, entry points on top).

    tools/call_layers.py [BUILD_DIR [FOLDER_PREFIX]] [--all]

Reads every .o under BUILD_DIR/*/CMakeFiles/*.dir (default build/) with `nm`:
a global symbol one object defines and another leaves undefined is a call (or
a data reference) from the second file to the first. Prints, per folder, each
file's dependencies and its layer (0 = calls no other file of the folder),
then any cycle, i.e. any strongly connected set of files, within a folder or
through several folders. Exit status 1 when there is a cycle. --all also lists
references to other folders. With FOLDER_PREFIX (e.g. engine), only folders
starting with it are listed and checked.
"""
import collections
import glob
import os
import subprocess
import sys


def objects(build):
    for o in sorted(glob.glob(os.path.join(build, "**", "CMakeFiles", "*.dir", "**", "*.o"),
                              recursive=True)):
        rel = o.split(".dir" + os.sep, 1)[1][:-2]  # source path relative to the target dir
        target_dir = os.path.dirname(o.split(os.sep + "CMakeFiles" + os.sep, 1)[0])
        top = os.path.relpath(o.split(os.sep + "CMakeFiles" + os.sep, 1)[0], build)
        yield o, os.path.normpath(os.path.join(top, rel))


def symbols(obj):
    out = subprocess.run(["nm", "-P", "-g", obj], capture_output=True, text=True, check=True)
    defined, undefined = set(), set()
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        (undefined if kind in "Uw" else defined).add(name)
    return defined, undefined


def sccs(nodes, edges):
    """Tarjan: strongly connected components with more than one node."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show_all = "--all" in sys.argv
    build = args[0] if args else "build"
    prefix = args[1] if len(args) > 1 else ""
    owner, need = {}, {}
    for obj, src in objects(build):
        if "onnxgen" in src or src.startswith("tests") or "/tests/" in src:
            continue
        d, u = symbols(obj)
        for s in d:
            owner.setdefault(s, src)
        need[src] = u
    edges = collections.defaultdict(set)
    for src, u in need.items():
        for s in u:
            if s in owner and owner[s] != src:
                edges[src].add(owner[s])
    folders = collections.defaultdict(list)
    for src in need:
        folders[os.path.dirname(src)].append(src)
    bad = False
    for folder in sorted(folders):
        if not folder.startswith(prefix):
            continue
        files = sorted(folders[folder])
        inside = {f: {g for g in edges[f] if os.path.dirname(g) == folder} for f in files}
        cyc = sccs(files, inside)
        layer = {}

        def depth(f, seen=()):
            if f in layer:
                return layer[f]
            if f in seen:
                return 0
            layer[f] = 1 + max((depth(g, seen + (f,)) for g in inside[f]), default=-1)
            return layer[f]

        for f in files:
            depth(f)
        print(f"{folder}/")
        for f in sorted(files, key=lambda f: (layer[f], f)):
            deps = sorted(os.path.basename(g) for g in inside[f])
            other = sorted(g for g in edges[f] if os.path.dirname(g) != folder)
            line = f"  [{layer[f]}] {os.path.basename(f)}" + (" -> " + ", ".join(deps) if deps else "")
            if show_all and other:
                line += "   (+ " + ", ".join(other) + ")"
            print(line)
        for c in cyc:
            bad = True
            print("  CYCLE: " + " <-> ".join(os.path.basename(f) for f in c))
    # Loops through files of several folders are loops too.
    for c in sccs(sorted(need), edges):
        if len({os.path.dirname(f) for f in c}) > 1 and any(f.startswith(prefix) for f in c):
            bad = True
            print("CYCLE across folders: " + " <-> ".join(c))
    # Folders may call each other both ways while their files stay layered
    # (engine.c reads quant/quant_file.c, quant/quant.c calibrates through
    # engine.c): reported, not an error.
    fedges = collections.defaultdict(set)
    for f, gs in edges.items():
        for g in gs:
            if os.path.dirname(f) != os.path.dirname(g):
                fedges[os.path.dirname(f)].add(os.path.dirname(g))
    for c in sccs(sorted(folders), fedges):
        if any(f.startswith(prefix) for f in c):
            print("note: folders calling each other both ways (files layered): " + " <-> ".join(c))
    sys.exit(1 if bad else 0)


main()
