"""``sluicectl sync`` and ``sluicectl sync-scenes``: the Stash jobs of seeds 000 and 001
from the command line (hook ``sluiced_ctl_commands``)."""

from __future__ import annotations

import argparse
from typing import Any

from sluiced.ctl import FOLLOW_HELP, Command, Session

__all__ = ["COMMANDS"]

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
    p.add_argument("scene_ids", nargs="+", metavar="SCENE", help="Stash scene ids")
    p.add_argument("--integration", help=_INTEGRATION_HELP)
    p.add_argument("--follow", action="store_true", help=FOLLOW_HELP)


def run_sync_scenes(session: Session, args: argparse.Namespace) -> int:
    """Seed 001's sync_scenes job: the given scenes, fully."""
    body: dict[str, Any] = {"scene_ids": args.scene_ids}
    if args.integration:
        body["integrationId"] = args.integration
    data = session.request("POST", "/api/sync/scenes", body)
    return session.created(data["id"], data)


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
)
