"""The import structure: floors hold (nothing below train/ imports it), no module circles, and
only the CLI layer renders.

Read statically from the source (every import statement, also those inside functions; type-only
imports under ``if TYPE_CHECKING`` are left out), so an import added anywhere counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "caspo_lite": ROOT / "caspo_lite",
    "caspo_lite.tui": ROOT / "tui",
    "caspo_lite.quant": ROOT / "quant",
}
# the command layer, allowed to reach every floor
TOP = {"caspo_lite.cli", "caspo_lite.demo"}
RENDERERS = ("caspo_lite.cli", "caspo_lite.render", "caspo_lite.tui")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg, root in PACKAGES.items():
        for f in root.rglob("*.py"):
            parts = [p for p in f.relative_to(root).with_suffix("").parts if p != "__init__"]
            mods[".".join([pkg, *parts])] = f
    return mods


def _type_only(tree: ast.Module) -> set[int]:
    ids = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids.update(id(n) for n in ast.walk(node))
    return ids


def _imports(file: Path, mods: dict[str, Path]) -> set[str]:
    tree = ast.parse(file.read_text(encoding="utf-8"))
    skip = _type_only(tree)
    out: set[str] = set()
    for n in ast.walk(tree):
        if id(n) in skip:
            continue
        if isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            subs = {f"{n.module}.{a.name}" for a in n.names} & mods.keys()
            out |= subs
            if len(subs) < len(n.names):
                out.add(n.module)
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {t for t in _imports(f, mods) if t in mods and t != m} for m, f in mods.items()}


def test_nothing_below_the_trainer_imports_it() -> None:
    upward = {
        m: sorted(t for t in targets if t.startswith("caspo_lite.train"))
        for m, targets in _graph().items()
        if not m.startswith("caspo_lite.train") and m not in TOP
    }
    assert {m: t for m, t in upward.items() if t} == {}


def test_no_module_circles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert circles == []


def test_only_the_cli_layer_renders() -> None:
    mods = _modules()
    printing = sorted(
        m
        for m, f in mods.items()
        if not m.startswith(RENDERERS) and any(t.startswith("rich") for t in _imports(f, {}))
    )
    assert printing == []
