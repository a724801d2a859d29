"""What sluicectl prints: tables, JSON for scripts, and a job followed to its end."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..progress import Follow, use_colour
from ._client import Client

__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "created",
    "done",
    "follow",
    "short_time",
    "show",
    "status_text",
    "table",
]

#: Exit statuses: success; refused (or a followed job did not complete); usage;
#: the daemon could not be reached.
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def short_time(stamp: str | None) -> str | None:
    return stamp[:19].replace("T", " ") if stamp else None


def show(args: argparse.Namespace, data: Any, human: Callable[[Any], str] | None = None) -> None:
    if args.json or human is None:
        print(json.dumps(data, indent=2))
    else:
        print(human(data))


def status_text(job: dict[str, Any]) -> str:
    """A job's status; ``completed with errors`` when objects of it did not sync."""
    return str(job["status"]) + (" with errors" if job.get("completedWithErrors") else "")


def done(args: argparse.Namespace, data: Any) -> int:
    show(
        args,
        data,
        lambda d: d.get("message", "ok") + (f" (job {d['jobId']})" if d.get("jobId") else ""),
    )
    return EXIT_OK


def created(c: Client, args: argparse.Namespace, job_id: str, data: Any) -> int:
    """After a job was created: follow it (``--follow``) or print what the daemon said."""
    if args.follow:
        return follow(c, args, job_id)
    show(args, data, lambda d: f"{job_id} {d.get('type', '')} {d['status']}".replace("  ", " "))
    return EXIT_OK


def follow(c: Client, args: argparse.Namespace, job_id: str) -> int:
    """Show the job's progress and log until it ends; exit 0 only if it completed."""
    if args.json:
        status = "unknown"
        for event, data in c.events(job_id):
            print(json.dumps({"event": event, "data": data}), flush=True)
            if event == "end":
                status = data["status"]
        return EXIT_OK if status == "completed" else EXIT_REFUSED
    shown = Follow(sys.stdout, tty=sys.stdout.isatty(), colour=use_colour(sys.stdout))
    shown.run(c.events(job_id))
    status = shown.status
    errors = shown.job.get("result", {}).get("errors", 0) if status == "completed" else 0
    ended = f"{status} with errors: {errors} objects not synced" if errors else status
    print(f"job {job_id}: {ended}")
    return EXIT_OK if status == "completed" else EXIT_REFUSED
