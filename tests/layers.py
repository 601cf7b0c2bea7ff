#!/usr/bin/env python3
"""The project's structure check, run by tests/all.sh. Fails (exit 1) on:

1. an import cycle between the modules of one crate (shared, host, firmware, and the helper crates
   beside them): layers import downward only;
2. a function longer than LIMIT lines outside tests, benches and fuzz targets;
3. a lint list in one of the separate workspaces (the firmware, its host tools, the QEMU kernel
   runner) that differs from the root workspace's: they cannot inherit `[workspace.lints]`, so
   they repeat it, and this keeps the copies equal.

Usage: python3 tests/layers.py [ROOT] [--limit N] [--graph] [--self-test]

An edge A -> B exists when module A's code (before its `#[cfg(test)]` part) names B through a
`crate::` or `super::` path, including grouped `use crate::{b::X, c}` trees. A module naming one
of its own ancestors is not an edge: the ancestor declared it, and `mod.rs` files re-export their
children. `--graph` prints every crate's edges; `--self-test` checks the checker on small made-up trees
(a cycle through a grouped `use`, a cycle through `super::`, an ancestor import that is not one).
"""
import argparse
import os
import re
import sys
import tomllib

CRATES = ["shared/src", "host/src", "firmware/src", "firmware/tools/src", "shared/qemu/src"]
SKIP_DIRS = {"tests", "benches", "fuzz", "target", "examples"}
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def rust_files(top):
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith(".rs"):
                yield os.path.join(dirpath, name)


def module_of(src, path):
    parts = os.path.relpath(path, src)[:-3].split(os.sep)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    if parts and parts[0] == "bin":  # each bin/*.rs is its own crate root
        return None
    return tuple(parts)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def non_test_part(text):
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]":
            return "\n".join(lines[:i])
    return text


def expand_tree(text, pos, prefix, out):
    """Expands the use tree starting at text[pos] into full paths appended to `out`."""
    path = list(prefix)
    while pos < len(text):
        m = re.match(r"\s*(" + IDENT + r")\s*", text[pos:])
        if m:
            path.append(m.group(1))
            pos += m.end()
            if text.startswith("::", pos):
                pos += 2
                continue
            out.append(tuple(path))
            return pos
        m = re.match(r"\s*\{", text[pos:])
        if not m:
            out.append(tuple(path))
            return pos
        pos += m.end()
        while True:
            pos = expand_tree(text, pos, path, out)
            m = re.match(r"\s*,?\s*", text[pos:])
            pos += m.end()
            if pos >= len(text) or text[pos] == "}":
                return pos + 1
    return pos


def referenced_paths(text):
    """(kind, path) pairs for every `crate::...` and `super::...` path in `text`."""
    found = []
    for m in re.finditer(r"\b(crate|super)::", text):
        paths = []
        expand_tree(text, m.end(), [], paths)
        found += [(m.group(1), p) for p in paths if p]
    return found


def resolve(mods, here, kind, path):
    base = () if kind == "crate" else here[:-1]
    full = base + path
    for k in range(len(full), len(base), -1):
        target = full[:k]
        if target in mods:
            return target
    return None


def module_graph(src):
    mods = {}
    for path in rust_files(src):
        mod = module_of(src, path)
        if mod is not None:
            mods[mod] = path
    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        with open(path, encoding="utf-8") as f:
            text = non_test_part(strip_comments(f.read()))
        for kind, ref in referenced_paths(text):
            target = resolve(mods, mod, kind, ref)
            if target is None or target == mod or mod[: len(target)] == target:
                continue
            graph[mod].add(target)
    return graph


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


FN_START = re.compile(
    r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+\w+"
)


def long_functions(path, limit):
    with open(path, encoding="utf-8") as f:
        lines = non_test_part(f.read()).split("\n")
    out, i = [], 0
    while i < len(lines):
        if not FN_START.match(lines[i]):
            i += 1
            continue
        depth, opened, j = 0, False, i
        while j < len(lines):
            code = re.sub(r"//.*", "", lines[j])
            code = re.sub(r"'.'|\"(\\.|[^\"])*\"", "", code)
            depth += code.count("{") - code.count("}")
            opened = opened or "{" in code
            if (opened and depth <= 0) or (not opened and code.rstrip().endswith(";")):
                break
            j += 1
        length = j - i + 1
        if opened and length > limit:
            out.append((length, f"{path}:{i + 1}: {lines[i].strip()[:70]}"))
        i = j + 1 if opened else i + 1
    return out


LINT_COPIES = ["firmware/Cargo.toml", "firmware/tools/Cargo.toml", "shared/qemu/Cargo.toml"]


def lint_mismatches(root):
    """(manifest, its lints, the workspace's) for every copy that differs."""
    with open(os.path.join(root, "Cargo.toml"), "rb") as f:
        workspace = tomllib.load(f)["workspace"].get("lints", {})
    out = []
    for manifest in LINT_COPIES:
        with open(os.path.join(root, manifest), "rb") as f:
            lints = tomllib.load(f).get("lints", {})
        if lints != workspace:
            out.append((manifest, lints, workspace))
    return out


def self_test():
    import tempfile

    cases = [
        ({"lib.rs": "mod a; mod b;", "a.rs": "use crate::{b::{X, Y}, c};", "b.rs": "use crate::a::Z;"}, 1),
        ({"lib.rs": "mod k;", "k/mod.rs": "pub mod x; pub mod y;", "k/x.rs": "use super::y::A;",
          "k/y.rs": "fn f() { super::x::g() }"}, 1),
        ({"lib.rs": "mod k;", "k/mod.rs": "pub mod x; pub use x::A;", "k/x.rs": "use crate::k::B;"}, 0),
        ({"lib.rs": "mod a; mod b;", "a.rs": "use crate::b::X;", "b.rs": "// crate::a::Y\n#[cfg(test)]\nuse crate::a::Z;"}, 0),
    ]
    for files, want in cases:
        with tempfile.TemporaryDirectory() as top:
            for name, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(top, name)), exist_ok=True)
                with open(os.path.join(top, name), "w", encoding="utf-8") as f:
                    f.write(text.replace("\\n", "\n"))
            got = len(cycles(module_graph(top)))
            if got != want:
                print(f"self-test failed: {files} gave {got} cycles, expected {want}")
                return 1
    print(f"layers: self-test passed ({len(cases)} cases)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", nargs="?", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--limit", type=int, default=150)
    ap.add_argument("--graph", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    root = os.path.abspath(args.root)
    problems = 0

    for crate in CRATES:
        src = os.path.join(root, crate)
        if not os.path.isdir(src):
            continue
        graph = module_graph(src)
        if args.graph:
            for mod in sorted(graph):
                deps = ", ".join("::".join(d) for d in sorted(graph[mod]))
                print(f"{crate}: {'::'.join(mod) or 'crate'} -> {deps}")
        for comp in cycles(graph):
            problems += 1
            print(f"import cycle in {crate}: " + ", ".join("::".join(m) or "crate" for m in comp))

    long_fns = []
    for crate in CRATES:
        top = os.path.join(root, crate)
        if os.path.isdir(top):
            for path in rust_files(top):
                long_fns += long_functions(os.path.relpath(path, root), args.limit)
    for length, where in sorted(long_fns, reverse=True):
        problems += 1
        print(f"function of {length} lines (limit {args.limit}): {where}")

    for manifest, lints, workspace in lint_mismatches(root):
        problems += 1
        print(f"{manifest} [lints] differs from the root Cargo.toml's [workspace.lints]:")
        print(f"  root: {workspace}\n  here: {lints}")

    if problems:
        print(f"layers: {problems} problem(s)")
        return 1
    print("layers: no import cycles, no function over "
          f"{args.limit} lines, lint lists equal the workspace's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
