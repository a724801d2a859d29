"""The reconciler of the Stash source and the mirror: what the engine calls at set
points of every pass to find what Stash changes without a trace.

* before a pass, :meth:`StashReconciler.survey` reads the newest ``updated_at`` (the
  watermark) and, in the same request, Stash's counts of the type (and, for scenes, of
  markers): the facts detection compares;
* at the start of every pass, :meth:`StashReconciler.owed` says in the job's log that
  the type's tables were migrated, at its first pass since (``schema.py``), and does
  the re-reads an earlier deletion owes (``pending.py``);
* after the pass's read phase, :meth:`StashReconciler.reconcile` compares sets and
  deletes, re-reads, fetches what differs (``detect.py``); a full pass has just read
  every scene's markers, so only an incremental one compares markers.

Every write goes through the engine's :class:`~sluiced.connectors.Writes`: counted,
and committed with the job's checkpoint. Every request to Stash goes through
``Writes.call`` (the reconciler is given a source that sends them so): retried once,
by the engine's policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluiced.connectors import Reconciler, Survey, Writes

from .detect import reconcile, reconcile_markers
from .entities import EntityType
from .mirror import Mirror
from .pending import drain
from .schema import MIGRATED
from .source import StashSource

__all__ = ["StashReconciler"]


class StashReconciler(Reconciler):
    def __init__(
        self,
        mirror: Mirror,
        source: StashSource,
        entity_types: Mapping[str, EntityType],
        *,
        page_size: int,
    ) -> None:
        self.mirror = mirror
        self.source = source
        self.entity_types = entity_types
        self.page_size = page_size

    async def survey(self, entity_type: str) -> Survey:
        read = await self.source.newest(entity_type)
        return Survey(
            watermark=read.watermark, facts={"count": read.count, "markers": read.markers}
        )

    async def owed(self, entity_type: str, writes: Writes) -> None:
        key = MIGRATED + entity_type
        if key in await self.mirror.state(key):  # its watermark went with it: a full pass
            await writes.log(
                "info", f"mirror: the {entity_type} tables were migrated to this version"
            )
            await writes.apply(entity_type, [], {key: None})
        await drain(self, writes)

    async def reconcile(
        self, entity_type: str, *, full: bool, facts: Mapping[str, Any], writes: Writes
    ) -> None:
        await reconcile(self, writes, entity_type, full, facts.get("count"))
        if entity_type == "scene" and not full:
            await reconcile_markers(self, writes, facts.get("markers"))
