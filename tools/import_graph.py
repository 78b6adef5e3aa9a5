"""The import graph of `src/twotower`, checked by `make lint`: no circles, no arrow from a lower layer up.

    python tools/import_graph.py            # check; exit 1 naming each offending arrow or circle
    python tools/import_graph.py --dot      # the package graph in Graphviz dot, to look at

Every `import twotower...` counts, at module level or inside a function: an import hidden in a function
still ties two modules together. Layers, lowest first; a module may import its own layer and those below:
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "twotower"

# Top-level subpackage (or root module) -> layer. Lower layers never import higher ones.
LAYERS: dict[str, int] = {
    "errors": 0,
    "io": 0,
    "conf": 0,
    "retrieval": 1,
    "models": 2,
    "losses": 2,
    "data": 3,
    "evaluation": 4,
    "training": 5,
    "search": 5,
    "deep_memory": 5,
    "emb_opt": 5,
    "reporting": 6,
    "serve": 7,
    "api": 8,
    "cli": 8,
    "sweep": 8,  # the 0.1 name of reporting.sweep, kept as an alias
    "__init__": 9,
}
ROOT_MODULES_MAX = 5
LINES_MAX = 300


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The twotower modules `name` imports anywhere in its file (relative imports resolved)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join(here + ([base] if base else []))
            # `from pkg import module` names a module; `from module import thing` the module itself.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE + ".") and target != name:
                out.add(target)
    return out


def top(name: str) -> str:
    """`twotower.search.store` -> `search`; a root module -> its own name."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def problems() -> list[str]:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    out = []
    for component in cycles(graph):
        out.append("import circle: " + " <-> ".join(component))
    for name, targets in sorted(graph.items()):
        source = top(name)
        if source not in LAYERS:
            out.append(f"{name}: package '{source}' has no layer in tools/import_graph.py LAYERS")
            continue
        for target in sorted(targets):
            dest = top(target)
            if dest != source and LAYERS.get(dest, 99) > LAYERS[source]:
                out.append(
                    f"upward import: {name} ({source}, layer {LAYERS[source]}) -> {target} ({dest}, layer {LAYERS.get(dest)})"
                )
    root = [p.name for p in (SRC / PACKAGE).glob("*.py")]
    if len(root) > ROOT_MODULES_MAX:
        out.append(f"{len(root)} modules at the package root (at most {ROOT_MODULES_MAX}): {', '.join(sorted(root))}")
    for path in known.values():
        lines = len(path.read_text().splitlines())
        if lines > LINES_MAX:
            out.append(f"{path.relative_to(SRC.parent)}: {lines} lines (at most {LINES_MAX}; split by idea)")
    return out


def dot() -> str:
    known = modules()
    edges = {(top(a), top(b)) for a, path in known.items() for b in imports(a, path, known) if top(a) != top(b)}
    lines = ["digraph twotower {", "  rankdir=BT;"]
    lines += [f'  "{a}" -> "{b}";' for a, b in sorted(edges)]
    return "\n".join(lines + ["}"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", action="store_true", help="print the package graph in Graphviz dot")
    args = parser.parse_args()
    if args.dot:
        print(dot())
        return 0
    found = problems()
    for line in found:
        print(line)
    print(f"import graph: {len(modules())} modules, {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
