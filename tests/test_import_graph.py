"""The control plane imports in one direction: the API talks to the control interface,
the control layer does not import the supervisor, the runner imports neither. Checked
on the source (every import, those under ``if TYPE_CHECKING:`` and inside functions
included) and by importing each module first in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

DAEMON = Path(__file__).resolve().parent.parent / "daemon"
#: The control plane: a cycle through any of these is refused.
WATCHED = (
    "sluiced.api",
    "sluiced.control",
    "sluiced.controller",
    "sluiced.ctl",
    "sluiced.hookspecs",
    "sluiced.pluginmanager",
    "sluiced.runner",
    "sluiced.supervisor",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(DAEMON).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["sluiced", *parts])


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of daemon/ it imports. ``from .pkg import sub`` counts as
    importing ``pkg.sub`` when that is a module, else ``pkg``."""
    files = {module_name(p): p for p in DAEMON.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in files]
                names = subs or [target]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            graph[module].update(n for n in names if n in files and n != module)
    return graph


def cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                yield from visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                yield sorted(component)

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


def watched(module: str) -> bool:
    return any(module == w or module.startswith(w + ".") for w in WATCHED)


def test_no_import_cycle_through_the_control_plane() -> None:
    found = [c for c in cycles(import_graph()) if any(watched(m) for m in c)]
    assert found == []


def reached(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module *start* imports, directly or not."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_layers_import_downwards_only() -> None:
    """The control interface and the runner know neither the supervisor nor the API;
    the API knows the control interface, not its implementation nor the supervisor."""
    graph = import_graph()
    for low in ("sluiced.control", "sluiced.controller", "sluiced.runner"):
        above = {m for m in reached(graph, low) if m.startswith("sluiced.api")}
        above |= {"sluiced.supervisor"} & reached(graph, low)
        assert above == set(), low
    for module in (m for m in graph if m.startswith("sluiced.api")):
        assert {"sluiced.supervisor", "sluiced.controller"} & reached(graph, module) == set()


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert list(cycles(graph)) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    "module",
    ["sluiced.control", "sluiced.supervisor", "sluiced.runner", "sluiced.api", "sluiced.ctl"],
)
def test_each_imports_first(module: str) -> None:
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=60)
