"""``sluicectl stash-plugin``: Stash's plugin (the repository's ``stash-plugin/sluiced/``)
written into Stash's plugins directory, byte for byte, never over other files without
``--force``. (tests/test_packaging.py checks that a wheel carries the files, and that the
command of an installed wheel writes them.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluiced.ctl import main
from sluiced.plugins.stash.ctl import PLUGIN_FILES, plugin_file

PLUGIN = Path(__file__).resolve().parent.parent / "stash-plugin" / "sluiced"


def test_the_plugins_files_are_the_repositorys() -> None:
    assert sorted(PLUGIN_FILES) == sorted(p.name for p in PLUGIN.iterdir())
    for name in PLUGIN_FILES:
        assert plugin_file(name) == (PLUGIN / name).read_bytes()


def test_the_command_writes_the_plugin_and_keeps_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    assert main(["stash-plugin", str(plugins)]) == 0
    out = capsys.readouterr().out
    for name in PLUGIN_FILES:
        assert (plugins / "sluiced" / name).read_bytes() == (PLUGIN / name).read_bytes()
        assert f"written: {plugins / 'sluiced' / name}" in out
    assert "Reload plugins" in out

    # Again: nothing to do.
    assert main(["--json", "stash-plugin", str(plugins)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "folder": str(plugins / "sluiced"),
        "files": dict.fromkeys(PLUGIN_FILES, "unchanged"),
    }

    # A file edited there is kept, and nothing is written, unless --force.
    edited = plugins / "sluiced" / "sluiced.yml"
    edited.write_text("name: mine\n")
    (plugins / "sluiced" / "sluiced.py").unlink()
    assert main(["stash-plugin", str(plugins)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"sluicectl: {edited} differs from this version's plugin; --force replaces it\n"
    )
    assert edited.read_text() == "name: mine\n"
    assert not (plugins / "sluiced" / "sluiced.py").exists()
    assert main(["--json", "stash-plugin", str(plugins), "--force"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == {
        "sluiced.yml": "replaced",
        "sluiced.py": "written",
    }
    for name in PLUGIN_FILES:
        assert (plugins / "sluiced" / name).read_bytes() == (PLUGIN / name).read_bytes()


def test_a_plugins_directory_that_is_not_there_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stash-plugin", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("link", ["folder", "dangling", "existing"])
def test_a_symbolic_link_in_the_way_is_refused_and_nothing_written_through_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], link: str
) -> None:
    plugins, outside = tmp_path / "plugins", tmp_path / "outside"
    plugins.mkdir()
    outside.mkdir()
    precious = outside / "precious.conf"
    precious.write_text("keep me\n")
    if link == "folder":
        (plugins / "sluiced").symlink_to(outside)
    else:
        (plugins / "sluiced").mkdir()
        aim = outside / "victim.txt" if link == "dangling" else precious
        (plugins / "sluiced" / "sluiced.yml").symlink_to(aim)
    assert main(["stash-plugin", str(plugins), "--force"]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert sorted(p.name for p in outside.iterdir()) == ["precious.conf"]
    assert precious.read_text() == "keep me\n"
