"""The daemon/ and plugins/ directories install as sluiced and sluiced.plugins only."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import sluiced
from sluiced.plugins.stash.ctl import PLUGIN_FILES

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
    # data only (see daemon/shipped.py): the example config and the systemd units; and
    # the Stash plugin's folder (see plugins/stash/ctl.py)
    data = {"sluiced.share", "sluiced.share.systemd", "sluiced.share.stash_plugin"}
    assert found | data == listed


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


def test_graphql_core_is_the_extra_fake_stash_not_a_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("graphql")]
    assert project["optional-dependencies"]["fake-stash"] == ["graphql-core>=3.2"]
    assert "sluiced[fake-stash]" in project["optional-dependencies"]["dev"]


WITHOUT_GRAPHQL = """
import runpy, sys
sys.modules["graphql"] = None  # as if graphql-core were not installed
import sluiced.cli, sluiced.ctl, sluiced.plugins.files, sluiced.plugins.scim, sluiced.plugins.stash
from sluiced.plugins.stash.fake import generate
generate(scenes=3, performers=2, tags=2, studios=1)
try:
    from sluiced.plugins.stash.fake import FakeStash
except ImportError as error:
    print(error)
else:
    raise AssertionError("imported without graphql")
sys.argv = ["fake", "--port", "0"]
runpy.run_module("sluiced.plugins.stash.fake", run_name="__main__")
"""


def test_without_graphql_core_the_daemon_works_and_the_fake_names_the_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_GRAPHQL], capture_output=True, text=True, timeout=60
    )
    message = "the fake Stash needs graphql-core: pip install 'sluiced[fake-stash]'"
    assert (done.returncode, done.stdout, done.stderr) == (2, message + "\n", f"error: {message}\n")


def test_the_license_file_is_the_declared_license() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (project["license"], project["license-files"]) == ("MIT", ["LICENSE"])
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def pulled_by(requirement: str) -> set[str]:
    """The installed distributions (normalized names) that *requirement* pulls, itself
    included, following the extras it names."""
    found: set[str] = set()
    todo = [Requirement(requirement)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in found:
            continue
        found.update({key, name})
        try:
            listed = requires(name) or []
        except PackageNotFoundError:
            continue  # not for this Python or platform
        for line in listed:
            sub = Requirement(line)
            envs = [{"extra": e} for e in req.extras] or [{"extra": ""}]
            if sub.marker is None or any(sub.marker.evaluate(env) for env in envs):
                todo.append(sub)
    return {n for n in found if "[" not in n}


def pinned() -> set[str]:
    """The (normalized) names constraints.txt pins, each with a version."""
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert all(version.strip() for version in pins.values())
    return {canonicalize_name(name) for name in pins}


def test_constraints_pin_everything_the_dev_extra_pulls() -> None:
    assert pulled_by("sluiced[dev]") - {"sluiced"} <= pinned()


def test_constraints_pin_what_the_dev_and_ldap_extras_pull_and_nothing_else() -> None:
    # What python-ldap pulls is known only where it is installed (it may not build).
    try:
        requires("python-ldap")
    except PackageNotFoundError:
        pytest.skip("python-ldap is not installed (pip install 'sluiced[ldap]')")
    assert pinned() == pulled_by("sluiced[dev,ldap]") - {"sluiced"}
    assert "python-ldap" in pinned()


def test_python_ldap_is_the_extra_ldap_not_a_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if "ldap" in d]
    assert project["optional-dependencies"]["ldap"] == ["python-ldap>=3.4.4,<3.5"]
    assert "python-ldap" not in str(project["optional-dependencies"]["dev"])


def test_ldap_is_imported_by_the_ldap_plugin_only() -> None:
    # python-ldap is the extra sluiced[ldap]: the daemon and the other plugins run without it.
    plugin = ROOT / "plugins" / "ldap"
    importers = {
        path.relative_to(ROOT).as_posix()
        for top in ("daemon", "plugins")
        for path, module, _ in imports(top)
        if module.split(".")[0] == "ldap" and plugin not in path.parents
    }
    assert not importers


def test_run_time_dependencies_take_the_newest_release() -> None:
    # Pins belong in constraints.txt (CI), not in what `pip install sluiced` resolves.
    for dependency in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]:
        assert "==" not in dependency and "<" not in dependency, dependency


#: What a wheel is built from (the tests and the virtual environment left out).
SOURCES = (
    "pyproject.toml",
    "MANIFEST.in",
    "README.md",
    "LICENSE",
    "config.toml.example",
    "daemon",
    "plugins",
    "systemd",
    "stash-plugin",
)


def test_a_wheel_carries_the_stash_plugin_and_its_command_writes_it(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=skip)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = dist.glob("sluiced-*.whl")
    plugin = ROOT / "stash-plugin" / "sluiced"
    with zipfile.ZipFile(wheel) as archive:
        for name in PLUGIN_FILES:  # the plugin's files, not what an editor left beside them
            shipped = archive.read(f"sluiced/share/stash_plugin/{name}")
            assert shipped == (plugin / name).read_bytes(), name
    # Installed from the wheel (no repository next to it), sluicectl writes them.
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    plugins = tmp_path / "stash" / "plugins"
    plugins.mkdir(parents=True)
    script = (
        "import sys, sluiced.plugins.stash.ctl as c; from sluiced.ctl import main;"
        " assert c.__file__.startswith(sys.argv[1]), c.__file__;"
        " sys.exit(main(['stash-plugin', sys.argv[2]]))"
    )
    wrote = subprocess.run(
        [sys.executable, "-c", script, str(target), str(plugins)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert wrote.returncode == 0, wrote.stderr
    for path in plugin.iterdir():
        assert (plugins / "sluiced" / path.name).read_bytes() == path.read_bytes(), path.name
