"""The daemon/ and plugins/ directories install as sluiced and sluiced.plugins only."""

from __future__ import annotations

import tomllib
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
