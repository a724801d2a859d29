"""The daemon/ and plugins/ directories install as sluiced and sluiced.plugins only."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import sluiced

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = set()
    for top, name in (("daemon", "sluiced"), ("plugins", "sluiced.plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    # data only (see daemon/shipped.py): the example config and the systemd units
    assert found | {"sluiced.share", "sluiced.share.systemd"} == listed


def test_public_modules_declare_all() -> None:
    for path in (ROOT / "daemon").rglob("*.py"):
        if path.name in ("__main__.py", "__init__.py") and path.parent.name == "daemon":
            continue
        assert "__all__" in path.read_text(), f"{path.relative_to(ROOT)} has no __all__"


def test_version() -> None:
    assert sluiced.__version__ == "0.1.0"


def imports(top: str) -> Iterator[tuple[Path, str, str]]:
    """(file, module, name) for every import under *top* (``import m`` gives name "")."""
    for path in (ROOT / top).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name, ""
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    yield path, node.module, alias.name


def test_hypercorn_is_used_through_its_public_api_only() -> None:
    public = {("hypercorn.config", "Config"), ("hypercorn.trio", "serve")}
    used = {
        (module, name)
        for top in ("daemon", "plugins")
        for _, module, name in imports(top)
        if module.split(".")[0] == "hypercorn"
    }
    assert used and used <= public, used - public


def test_graphql_is_imported_by_the_fake_stash_only() -> None:
    # graphql-core is the extra sluiced[fake-stash], not a run-time dependency.
    fake = ROOT / "plugins" / "stash" / "fake"
    importers = {
        path.relative_to(ROOT).as_posix()
        for top in ("daemon", "plugins")
        for path, module, _ in imports(top)
        if module.split(".")[0] == "graphql" and fake not in path.parents
    }
    assert not importers
