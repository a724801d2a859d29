"""Re-reads owed after a deletion, kept in the mirror's ``sync_state`` until done.

When detection deletes a tag, performer or studio (``detect.py``), what linked to it
and, for a tag, the tags having its name as an alias (a merge's destination) must be
read again: nothing in Stash bumps them. Counts alone would never find them again
once the deletion is committed, so the re-reads owed are written in the same
transaction as the deletion, under ``pending:<kind>:<n>`` (a JSON list of ids of
*kind*: ``scene``, ``performer``, ``studio``) and ``pending:alias:<n>`` (a JSON list
of tag names), at most a page of them a key. Each key is removed in the transaction
that writes the last of its rows. :func:`drain` does what is owed: right after the
deletion, and at the start of every pass, so a crash, a pause or stop, or a failure
in between is made good by the resumed job or the next one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluiced.connectors import Writes

    from .reconcile import StashReconciler

__all__ = ["PREFIX", "drain", "owe", "reread"]

PREFIX = "pending:"
ALIAS = "alias"
#: The order re-reads are done in: a merge's destination first.
_ORDER = (ALIAS, "tag", "performer", "studio", "scene")

State = Mapping[str, str | None]


def _parse(key: str) -> tuple[str, int]:
    kind, _, n = key[len(PREFIX) :].rpartition(":")
    return kind, int(n) if n.isdigit() else 0


async def owe(
    r: StashReconciler, linking: Mapping[str, Sequence[int]], names: Sequence[str]
) -> dict[str, str]:
    """The ``sync_state`` entries recording the re-reads of *linking* (ids by entity
    type) and of the tags having one of *names* as alias, numbered after those already
    owed. Commit them with the deletion."""
    held = [_parse(k)[1] for k in await r.mirror.state(PREFIX)]
    n = max(held, default=0)
    state: dict[str, str] = {}
    step = max(r.page_size, 1)
    lists: list[tuple[str, list[Any]]] = [(ALIAS, sorted(set(names)))]
    lists += [(kind, sorted({int(i) for i in ids})) for kind, ids in linking.items()]
    for kind, values in lists:
        for start in range(0, len(values), step):
            n += 1
            state[f"{PREFIX}{kind}:{n}"] = json.dumps(values[start : start + step])
    return state


async def drain(r: StashReconciler, writes: Writes, *, note: bool = True) -> int:
    """Do the re-reads owed (see the module), each key dropped with its last rows,
    logged if *note*. Returns how many keys were done."""
    owed = await r.mirror.state(PREFIX)
    keys = sorted(
        owed, key=lambda k: (_ORDER.index(_parse(k)[0]) if _parse(k)[0] in _ORDER else 99, k)
    )
    done = 0
    for key in keys:
        kind, _ = _parse(key)
        values = json.loads(owed[key])
        if kind == ALIAS:
            tags = await r.source.tags_by_alias([str(v) for v in values])
            await apply(r, writes, "tag", tags, {key: None})
        elif kind in r.entity_types:
            await reread(r, writes, kind, [int(v) for v in values], {key: None})
        else:  # a type no longer configured: nothing to read it into
            await r.mirror.save_state({key: None})
        if note:
            await writes.log("info", f"{kind}: re-read {len(values)} owed since a deletion")
        done += 1
    return done


async def reread(
    r: StashReconciler, writes: Writes, kind: str, ids: Iterable[int], done: State | None = None
) -> None:
    """Read these records again by id; those Stash no longer has leave the mirror.
    *done* (``sync_state`` entries) commits with the last of the writes."""
    wanted = sorted(set(ids))
    starts = range(0, len(wanted), r.page_size)
    if not starts and done:
        await r.mirror.save_state(done)
    for n in starts:
        last = n + r.page_size >= len(wanted)
        chunk = [str(i) for i in wanted[n : n + r.page_size]]
        page, vanished = await r.source.by_ids(kind, chunk)
        if vanished:
            await writes.delete(kind, vanished, done if last and not page else None)
        await apply(r, writes, kind, page, done if last and page else None)


async def apply(
    r: StashReconciler,
    writes: Writes,
    kind: str,
    records: Sequence[dict[str, Any]],
    done: State | None = None,
) -> None:
    """Apply records read outside the pass's pages, a page a transaction, their links
    fetched first; *done* commits with the last page (alone if there is none)."""
    if not records and done:
        await r.mirror.save_state(done)
    for n in range(0, len(records), r.page_size):
        page = records[n : n + r.page_size]
        last = n + r.page_size >= len(records)
        await writes.apply(kind, page, done if last else None)
