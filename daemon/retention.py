"""The provisioning log's retention: a daemon task that deletes the changes older than
each integration's ``changes_retention``, a bounded batch per store transaction, when
the daemon starts, after each job and at least every :data:`PRUNE_EVERY` seconds (``run
--once``: after its jobs). The log of an integration the daemon no longer has (removed
from the config, or deleted through the API) is pruned by the daemon's
``changes_retention``.

It runs beside the jobs, never inside their commits: a batch's transaction only ever
appends. Whatever a store holds beyond the retention is gone after the next pruning,
so the log's size is bounded by what the integrations change in their retention time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta

import trio

from .clock import Clock
from .logs import get_logger
from .resolved import Resolved
from .store import Store, StoreUnavailable

__all__ = ["PRUNE_BATCH", "PRUNE_EVERY", "ChangesPruner"]

log = get_logger("sluiced.retention")

#: At most this many changes are deleted in one transaction.
PRUNE_BATCH = 1000
#: Seconds between two prunings when no job ends.
PRUNE_EVERY = 600.0


class ChangesPruner:
    """Prunes the provisioning log: of the integrations *integrations* returns by their
    own retention, of any other integration in the log by the one *retention* returns
    (the daemon's ``changes_retention``)."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        integrations: Callable[[], Mapping[str, Resolved]],
        retention: Callable[[], timedelta],
        batch: int = PRUNE_BATCH,
        every: float = PRUNE_EVERY,
    ) -> None:
        self.store = store
        self.clock = clock
        self.integrations = integrations
        self.retention = retention
        self.batch = batch
        self.every = every
        self._wake = trio.Event()

    def wake(self) -> None:
        """Prune soon (a job ended)."""
        self._wake.set()

    async def prune(self) -> int:
        """Delete every integration's changes older than its retention (the default
        :attr:`retention` for one neither configured nor stored through the API), a
        batch per transaction;
        returns how many were deleted.

        Raises:
            StoreUnavailable: the store cannot be written (what was deleted stays deleted).

        Cancellation: stops between two batches; each batch is deleted whole or not at all.
        """
        deleted = 0
        retentions = {i: r.cfg.changes_retention for i, r in self.integrations().items()}
        # An integration stored through the API that this daemon did not load (a plugin
        # it lacks, a node of another version) keeps its log: its retention is unknown.
        stored = await self.store.list_definitions()
        for ident in await self.store.logged_integrations():
            if ident not in stored:
                retentions.setdefault(ident, self.retention())
        for ident, retention in sorted(retentions.items()):
            before = self.clock.now() - retention
            while True:
                n = await self.store.prune_changes(ident, before, limit=self.batch)
                deleted += n
                if n < self.batch:
                    break
                await trio.lowlevel.checkpoint()
        return deleted

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Prune now, then whenever woken or :attr:`every` seconds have passed, until
        cancelled. A store that cannot be written is logged and tried again next time."""
        task_status.started()
        while True:
            self._wake = trio.Event()
            await self.prune_logged()
            with trio.move_on_after(self.every):
                await self._wake.wait()

    async def prune_logged(self) -> None:
        """:meth:`prune`, logging how many changes were deleted, or that the store could
        not be written (it is tried again next time)."""
        try:
            deleted = await self.prune()
        except StoreUnavailable as exc:
            log.warning("the provisioning log could not be pruned", error=str(exc))
        else:
            if deleted:
                log.info("provisioning log pruned", deleted=deleted)
