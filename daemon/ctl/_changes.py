"""``sluicectl changes``: an integration's provisioning log, newest first, as a table
(time, action, entity type, object, what changed) or as JSON."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from ..changes import ACTIONS
from ..durations import DurationError, parse_duration
from ._client import Client, UsageError
from ._output import EXIT_OK, short_time, show, table

__all__ = ["add_arguments", "cmd_changes"]

#: The most changes the daemon answers in one page.
_PAGE = 1000
#: What one cell of "what changed" shows at most.
_WIDTH = 72


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the options of ``sluicectl changes``."""
    p.add_argument("--object", metavar="ID", help="only this object (a source or target id)")
    p.add_argument("--entity-type", metavar="TYPE", help="only objects of this entity type")
    p.add_argument(
        "--action",
        action="extend",
        nargs="+",
        choices=ACTIONS,
        metavar="ACTION",
        help=f"only these actions, one or more of {', '.join(ACTIONS)}",
    )
    p.add_argument("--job", metavar="JOB", help="only the changes of this job")
    for flag, what in (("--since", "at or after"), ("--until", "at or before")):
        p.add_argument(
            flag,
            metavar="T",
            help=f"only changes {what} T: an ISO 8601 time (UTC without an offset) "
            'or a duration ago ("2h", "7d")',
        )
    p.add_argument(
        "--limit", type=int, default=100, metavar="N", help="at most N changes (default 100)"
    )


def _time(flag: str, text: str | None, now: datetime) -> str | None:
    """*text* as the RFC 3339 time the API takes: a duration counts back from *now*."""
    if text is None:
        return None
    try:
        return _stamp(now - parse_duration(text))
    except DurationError:
        pass
    try:
        at = datetime.fromisoformat(text.upper())  # RFC 3339 allows "t" and "z"
    except ValueError:
        raise UsageError(
            f'{flag}: "{text}" is neither an ISO 8601 time nor a duration like "2h"'
        ) from None
    return _stamp(at if at.tzinfo is not None else at.replace(tzinfo=UTC))


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def cmd_changes(c: Client, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    now = datetime.now(UTC)
    params: dict[str, Any] = {
        k: v
        for k, v in (
            ("objectId", args.object),
            ("entityType", args.entity_type),
            ("action", ",".join(args.action) if args.action else None),
            ("jobId", args.job),
            ("since", _time("--since", args.since, now)),
            ("until", _time("--until", args.until, now)),
        )
        if v is not None
    }
    changes: list[Any] = []
    answer: dict[str, Any] = {}
    while len(changes) < args.limit:
        page_params = {**params, "limit": min(_PAGE, args.limit - len(changes))}
        answer = c.request("GET", f"/api/sync/integrations/{args.id}/changes", params=page_params)
        changes += answer["changes"]
        if answer["nextCursor"] is None:
            break
        params["cursor"] = answer["nextCursor"]
    data = {**answer, "integrationId": args.id, "changes": changes}
    show(args, data, _text)
    return EXIT_OK


def _text(d: Any) -> str:
    rows = [
        (
            short_time(c["at"]),
            c["action"],
            c["entityType"],
            c["sourceId"]
            if c.get("targetId") in (None, c["sourceId"])
            else f"{c['sourceId']} -> {c['targetId']}",
            _what(c),
        )
        for c in d["changes"]
    ]
    more = "; more with --limit" if d.get("nextCursor") else ""
    return (
        table(rows, ["time", "action", "entity", "object", "what changed"])
        + f"\n({len(rows)} changes{more})"
    )


def _what(c: dict[str, Any]) -> str | None:
    """One line: a create's attributes, an update's changes before → after, an
    escrow's kind and reason."""
    if "changes" in c:
        text = "; ".join(
            f"{k}: {_value(v.get('from'))} → {_value(v.get('to'))}" for k, v in c["changes"].items()
        )
    elif "attributes" in c:
        text = ", ".join(f"{k}={_value(v)}" for k, v in c["attributes"].items())
    elif "reason" in c:
        text = f"{c.get('kind', '?')}: {c['reason']}"
    else:
        return None
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
