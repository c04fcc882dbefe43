"""No import cycle among the project's own modules (``shared/``, ``functions/``, ``devtools/``).

Every module is parsed with :mod:`ast`, and *every* import counts: top-level ones, those inside
functions and ``if TYPE_CHECKING:`` blocks (a cycle hidden there still couples the modules), and
``importlib.import_module("literal")``. Relative imports are resolved against the module's package.
An import names the most specific project module it reaches (``from a.b import c`` is ``a.b.c``
when that is a module, else ``a.b``); parent packages are not edges, since Python initialises them
before the child and they do not form a cycle of their own.

A strongly connected component of more than one module is a cycle; the failure shows one path
through it with the file and line of each import.
"""
from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "functions", "devtools")

Edge = tuple[str, str]
Where = dict[Edge, list[str]]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(package):
        raise ValueError(f"relative import beyond the top level in {module}")
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imported_names(tree: ast.AST, module: str, is_package: bool):
    """``(dotted name, line)`` for every import in ``tree``, wherever it is."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(module, is_package, node.level, node.module) if node.level
                    else node.module or "")
            for alias in node.names:  # a submodule if ``base.name`` is one, else an attribute of ``base``
                yield (f"{base}.{alias.name}" if alias.name != "*" else base), node.lineno
        elif isinstance(node, ast.Call) and _is_import_module(node):
            yield node.args[0].value, node.lineno


def _is_import_module(call: ast.Call) -> bool:
    """``importlib.import_module("a.b")`` (or a bare ``import_module``) with a literal name."""
    called = getattr(call.func, "attr", getattr(call.func, "id", None))
    return (called == "import_module" and bool(call.args) and isinstance(call.args[0], ast.Constant)
            and isinstance(call.args[0].value, str))


def import_graph(root: Path, packages=PACKAGES) -> tuple[dict[str, set[str]], Where]:
    """The project's module graph: importer -> imported project modules, and where each import is."""
    files = {module_name(p, root): p for package in packages for p in sorted((root / package).rglob("*.py"))
             if "node_modules" not in p.parts}
    graph: dict[str, set[str]] = {name: set() for name in files}
    where: Where = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for dotted, line in _imported_names(tree, name, path.name == "__init__.py"):
            target = _project_module(dotted, files)
            if target is None or target == name:
                continue
            graph[name].add(target)
            places = where.setdefault((name, target), [])
            if f"{path.relative_to(root)}:{line}" not in places:
                places.append(f"{path.relative_to(root)}:{line}")
    return graph, where


def _project_module(dotted: str, files) -> str | None:
    """The most specific project module ``dotted`` names (``a.b.attr`` -> ``a.b``); None outside."""
    parts = dotted.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in files:
            return candidate
        parts.pop()
    return None


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle from the component's first module back to it (BFS inside the component)."""
    members, start = set(component), component[0]
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return path[::-1] + [start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"{component} is not strongly connected")


def describe_cycles(graph: dict[str, set[str]], where: Where) -> list[str]:
    lines = []
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue
        cycle = cycle_through(component, graph)
        steps = [f"    {a} -> {b}  ({', '.join(where[(a, b)])})" for a, b in zip(cycle, cycle[1:])]
        lines.append(f"cycle among {len(component)} modules {component}:\n" + "\n".join(steps))
    return lines


def test_no_import_cycles():
    graph, where = import_graph(ROOT)
    assert "shared.adapters.m365_probe" in graph and "devtools.local_host.workers" in graph  # it did look
    cycles = describe_cycles(graph, where)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


# --- the detector itself ------------------------------------------------------------------------

def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("a_imports_b", [
    "from pkg import b",
    "from . import b",
    "from .b import thing",
    "import pkg.b",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import thing",
    "def later():\n    from pkg.b import thing",
    "import importlib\nB = importlib.import_module('pkg.b')",
])
def test_the_detector_finds_a_cycle_however_it_is_imported(tmp_path, a_imports_b):
    root = _tree(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": a_imports_b,
                            "pkg/b.py": "def f():\n    from ..pkg import a\n", "pkg/c.py": "from pkg import a"})
    graph, where = import_graph(root, packages=("pkg",))
    cycles = describe_cycles(graph, where)
    assert len(cycles) == 1 and "['pkg.a', 'pkg.b']" in cycles[0]
    assert "pkg/a.py:" in cycles[0] and "pkg/b.py:2" in cycles[0]


def test_the_detector_accepts_a_package_that_imports_its_children(tmp_path):
    root = _tree(tmp_path, {"pkg/__init__.py": "from pkg.a import x\n", "pkg/a.py": "from pkg.b import y\nx = 1",
                            "pkg/b.py": "import os\ny = 2", "pkg/sub/__init__.py": "from .. import a"})
    graph, where = import_graph(root, packages=("pkg",))
    assert describe_cycles(graph, where) == []
    assert graph["pkg"] == {"pkg.a"} and graph["pkg.sub"] == {"pkg.a"}
