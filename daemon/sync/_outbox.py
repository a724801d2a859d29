"""The outbox of a :class:`~sluiced.connectors.TransactionalTarget`: the rows of the
provisioning log its commits made, held in its own transaction until the store has them.

A job writing into such a target saves those rows to the store with its next commit
there, each under its key (the store keeps each key once), and the target's next
commit removes them from the outbox (:mod:`._keyed`). A crash, a store out of reach or
a job's end leaves some in the outbox: at the start of every job of the integration,
before anything else, :func:`move_outbox` copies what is left (any job's) into the
store and then removes it. A change is thus logged exactly once, whatever moment the
process died.
"""

from __future__ import annotations

from datetime import datetime

from ..changes import Change
from ..connectors import TransactionalTarget
from ..logs import get_logger
from ..store import StoreUnavailable
from . import _changes
from ._context import JobContext

log = get_logger("sluiced.engine")

__all__ = ["move_outbox", "new_run"]

#: Rows of the outbox copied into the store in one transaction.
_CHUNK = 1000


def new_run(now: datetime) -> str:
    """The run part of the outbox's keys for a job started from scratch *now*: the
    microseconds since 1970, in hexadecimal, so that a job run again from the start
    never reuses the keys of its earlier run."""
    return f"{int(now.timestamp() * 1_000_000):x}"


async def move_outbox(ctx: JobContext, target: TransactionalTarget, *, logging: bool) -> int:
    """Copy every row of *target*'s outbox into the store (*logging*: else they are
    dropped, the integration keeps no log), a chunk a transaction, each chunk then
    removed from the outbox; returns how many changes the store did not hold yet (they
    are counted in the job's log). A row that cannot be read as a change is dropped
    (logged). A store out of reach leaves the rest in the outbox for the next job
    (logged), and the job goes on.

    Raises:
        Exception: what the target raised (the job fails as on any error of the
            target); what was moved before stays moved. On cancellation: the same.
    """
    added = 0
    while True:
        held = await target.outbox(_CHUNK)
        if not held:
            break
        changes: list[tuple[str, Change]] = []
        for key, text in held.items():
            try:
                changes.append((key, _changes.from_outbox(text)))
            except ValueError as exc:
                log.warning("a row of the target's outbox is not a change", key=key, error=str(exc))
        if logging and changes:
            try:
                added += await ctx.store.add_changes(changes)
            except StoreUnavailable as exc:
                log.warning(
                    "the changes the target's outbox holds could not be logged yet",
                    error=str(exc),
                )
                break
        await target.forget_changes(list(held))
    if added:
        await ctx.log(
            "info",
            f"{added} {'change' if added == 1 else 'changes'} the target committed before the"
            f" store heard of {'it was' if added == 1 else 'them were'}"
            " added to the provisioning log",
        )
    return added
