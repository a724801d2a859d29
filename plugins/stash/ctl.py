"""``sluicectl sync`` and ``sluicectl sync-scenes``: the Stash jobs of seeds 000 and 001
from the command line; ``sluicectl stash-plugin``: Stash's plugin that reports changes
(hook ``sluiced_ctl_commands``).

The plugin's one source is the repository's ``stash-plugin/sluiced/``. A wheel carries
its files as package data in ``sluiced/share/stash_plugin/`` (see ``[tool.setuptools]``
in pyproject.toml); a source checkout or an editable install reads them from the
repository next to ``plugins/``.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from sluiced.ctl import FOLLOW_HELP, Command, Session

__all__ = ["COMMANDS", "PLUGIN_FILES", "plugin_file"]

#: The files of Stash's plugin, as Stash's plugins directory holds them (in ``sluiced/``).
PLUGIN_FOLDER = "sluiced"
PLUGIN_FILES = ("sluiced.yml", "sluiced.py")

_TYPES = ("performer", "tag", "studio", "scene")
_INTEGRATION_HELP = "the Stash integration, if there are several"


def _sync_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--full", action="store_true", help="a full resync (ignore timestamps)")
    p.add_argument("--only", help="comma-separated entity types, e.g. performers,tags")
    p.add_argument("--integration", help=_INTEGRATION_HELP)
    p.add_argument("--follow", action="store_true", help=FOLLOW_HELP)


def run_sync(session: Session, args: argparse.Namespace) -> int:
    """Seed 000's sync job of the Stash integration."""
    body: dict[str, Any] = {"full_resync": args.full}
    if args.only:
        chosen = {t.strip().rstrip("s") for t in args.only.split(",") if t.strip()}
        unknown = chosen - set(_TYPES)
        if unknown:
            raise session.usage(
                f"--only takes performers, tags, studios, scenes (not {', '.join(sorted(unknown))})"
            )
        body |= {f"include_{t}s": t in chosen for t in _TYPES}
    if args.integration:
        body["integrationId"] = args.integration
    data = session.request("POST", "/api/sync", body)
    return session.created(data["id"], data)


def _sync_scenes_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "scene_ids", nargs="+", metavar="SCENE", help="Stash scene ids (commas separate too)"
    )
    p.add_argument("--integration", help=_INTEGRATION_HELP)
    p.add_argument("--follow", action="store_true", help=FOLLOW_HELP)


def run_sync_scenes(session: Session, args: argparse.Namespace) -> int:
    """Seed 001's sync_scenes job: the given scenes, fully."""
    # "1, 2 3" and "1,2" name scenes as the console's field does: commas separate too
    ids = [i for given in args.scene_ids for i in given.split(",") if i.strip()]
    body: dict[str, Any] = {"scene_ids": [i.strip() for i in ids]}
    if args.integration:
        body["integrationId"] = args.integration
    data = session.request("POST", "/api/sync/scenes", body)
    return session.created(data["id"], data)


def plugin_file(name: str) -> bytes:
    """The content of the plugin's file *name* (one of :data:`PLUGIN_FILES`).

    Raises:
        FileNotFoundError: this installation lacks it (a broken install).
    """
    installed = files("sluiced").joinpath("share", "stash_plugin", name)
    if installed.is_file():
        return installed.read_bytes()
    checkout = Path(__file__).resolve().parents[2] / "stash-plugin" / PLUGIN_FOLDER / name
    if checkout.is_file():
        return checkout.read_bytes()
    raise FileNotFoundError(f"this installation of sluiced lacks the Stash plugin's {name}")


def _plugin_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "plugins_dir",
        metavar="PLUGINS_DIR",
        help="Stash's plugins directory (plugins_path in Stash's config.yml)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace plugin files that differ from these"
    )


def run_stash_plugin(session: Session, args: argparse.Namespace) -> int:
    """Write the plugin's files into ``PLUGINS_DIR/sluiced/``. Files already there with
    other content are kept unless ``--force`` (exit 1, nothing written)."""
    plugins = Path(args.plugins_dir)
    if not plugins.is_dir():
        raise session.usage(f"{plugins} is not a directory (Stash's plugins directory)")
    folder = plugins / PLUGIN_FOLDER
    links = [p for p in (folder, *(folder / n for n in PLUGIN_FILES)) if p.is_symlink()]
    if links:  # a link would have the files written wherever it points
        raise session.usage(f"{links[0]} is a symbolic link: remove it, or install elsewhere")
    if folder.exists() and not folder.is_dir():
        raise session.usage(f"{folder} is not a directory")
    shipped = {name: plugin_file(name) for name in PLUGIN_FILES}
    done: dict[str, str] = {}
    for name, content in shipped.items():
        path = folder / name
        if not path.exists():
            done[name] = "written"
        elif path.is_file() and path.read_bytes() == content:
            done[name] = "unchanged"
        else:
            done[name] = "replaced"
    differ = [str(folder / n) for n, what in done.items() if what == "replaced"]
    if differ and not args.force:
        print(
            f"sluicectl: {', '.join(differ)} {'differs' if len(differ) == 1 else 'differ'}"
            " from this version's plugin;"
            f" --force replaces {'it' if len(differ) == 1 else 'them'}",
            file=sys.stderr,
        )
        return 1
    try:
        folder.mkdir(exist_ok=True)
        for name, content in shipped.items():
            if done[name] != "unchanged":
                _replace(folder / name, content)
    except OSError as exc:
        raise session.usage(
            f"cannot write the plugin into {folder}: {exc.strerror or exc}"
        ) from None
    session.show(
        {"folder": str(folder), "files": done},
        lambda d: (
            "\n".join(f"{what}: {Path(d['folder']) / n}" for n, what in d["files"].items())
            + "\nIn Stash: Settings > Plugins > Reload plugins, then set sluiced's URL and token."
        ),
    )
    return 0


COMMANDS = (
    Command(
        name="sync",
        help="Stash: sync performers, tags, studios and scenes into the mirror",
        arguments=_sync_arguments,
        run=run_sync,
    ),
    Command(
        name="sync-scenes",
        help="Stash: sync the given scenes fully",
        arguments=_sync_scenes_arguments,
        run=run_sync_scenes,
    ),
    Command(
        name="stash-plugin",
        help="Stash: put the plugin that reports Stash's changes into Stash's plugins directory",
        arguments=_plugin_arguments,
        run=run_stash_plugin,
    ),
)


def _replace(path: Path, content: bytes) -> None:
    """Write *content* to *path* whole or not at all: a new file beside it, renamed over
    it (a link or file at *path* is replaced, never written through).

    Raises:
        OSError: nothing was written to *path*.
    """
    spare = path.with_name(f".{path.name}.sluiced-new")
    spare.unlink(missing_ok=True)
    fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(spare, path)
    except BaseException:
        spare.unlink(missing_ok=True)
        raise
