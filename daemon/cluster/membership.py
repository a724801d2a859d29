"""A node's life in the cluster: it joins, claims its share of the integrations, and on
every heartbeat renews its leases, ends the jobs of those it lost and takes up those it
newly claimed; on a graceful stop, once its jobs stopped, it leaves.

Taking an integration up (resuming its interrupted jobs) runs beside the heartbeat, never
in it: it waits for the store and for the end of an earlier task of the job, and the
heartbeat must not wait for either, or every lease of the node would run out. What could
not be taken up (the store failed) is tried again at each heartbeat until it is, or until
the lease is lost (its new holder takes it up). A job that ended on this node for its
lease while the node kept the lease (its heartbeat came too late for the job's fence,
then renewed it) is taken up again the same way (:meth:`Membership.take_up`).

A store of one node (SQLite, memory) has a :class:`~.coordinator.LocalCoordinator`: every
integration is held from the start and nothing changes after.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING

import trio

from ..config import DaemonConfig
from ..logs import get_logger
from ..store import Store, StoreUnavailable
from .coordinator import Coordinator, LocalCoordinator

if TYPE_CHECKING:
    from .commands import CommandBus

__all__ = ["Membership", "command_bus_for", "coordinator_for"]

log = get_logger("sluiced.cluster")


def coordinator_for(store: Store, daemon: DaemonConfig) -> Coordinator:
    """The coordinator of a node on *store*: leases in its database for PostgreSQL,
    else a node alone.

    Raises:
        StoreUnavailable: its connection to the database cannot be opened.
    """
    if daemon.store is None:
        return LocalCoordinator(daemon.node_id or None)
    from ..store.postgres_base import PostgresBase  # psycopg: the postgresql extra
    from .postgres import PostgresCoordinator

    assert isinstance(store, PostgresBase)
    return PostgresCoordinator(
        store,
        ttl=daemon.lease_ttl.total_seconds(),
        heartbeat=daemon.heartbeat.total_seconds(),
    )


def command_bus_for(store: Store, coordinator: Coordinator) -> CommandBus | None:
    """Where the commands for integrations other nodes hold go: None for a node alone.

    Raises:
        StoreUnavailable: its connection to the database cannot be opened.
    """
    if isinstance(coordinator, LocalCoordinator):
        return None
    from ..store.postgres_base import PostgresBase
    from .commands import CommandBus

    assert isinstance(store, PostgresBase)
    return CommandBus(store, coordinator)


class Membership:
    """Runs *coordinator* for the integrations *known* returns: *on_claimed* is awaited
    with those newly claimed, *on_lost* with those lost (their jobs must end at once);
    of a surplus over its fair share, the integrations *idle* says run nothing here are
    handed back. *on_claimed* may be called again with integrations it failed on (it
    raised ``StoreUnavailable``)."""

    def __init__(
        self,
        coordinator: Coordinator,
        *,
        known: Callable[[], Collection[str]],
        on_claimed: Callable[[list[str]], Awaitable[None]],
        on_lost: Callable[[set[str]], Awaitable[None]],
        idle: Callable[[str], bool] = lambda integration_id: True,
    ) -> None:
        self.idle = idle
        self.coordinator = coordinator
        self.known = known
        self.on_claimed = on_claimed
        self.on_lost = on_lost
        self._joined = False
        #: Held integrations still to be taken up, and those being taken up now.
        self._pending: set[str] = set()
        self._taking: set[str] = set()
        self._retake = trio.Event()
        self._stopping = False

    def stop_claiming(self) -> None:
        """The node is stopping: from now on it claims nothing and takes nothing up (its
        leases, handed back when it leaves, go to nodes that stay)."""
        self._stopping = True

    def ready(self, integration_id: str) -> bool:
        """Whether this node may start new jobs of the integration: its lease is valid
        here and its interrupted jobs were taken up."""
        return (
            self.coordinator.locally_valid(integration_id)
            and integration_id not in self._pending
            and integration_id not in self._taking
        )

    def take_up(self, integration_id: str) -> None:
        """Take the integration up again (*on_claimed*) once this node holds its lease
        validly (a job of it ended here for the lease); if the lease is lost instead, its
        new holder does."""
        self._pending.add(integration_id)
        self._retake.set()

    async def start(self, *, settle: bool = True) -> list[str]:
        """Join and claim a first share; returns the integrations claimed (their
        interrupted jobs are for the caller to resume). With *settle*, a node of a
        cluster waits a heartbeat (two seconds at most) between joining and claiming,
        so that nodes started together share the integrations from the first.

        Raises:
            StoreInUse: another live process uses this node's ``node_id``.
            StoreUnavailable: the store cannot be reached.
        """
        await self.coordinator.join()
        self._joined = True
        if settle and not math.isinf(self.coordinator.heartbeat):
            await trio.sleep(min(self.coordinator.heartbeat, 2.0))
        return sorted(await self.coordinator.claim(self.known()))

    async def run(self) -> None:
        """Heartbeat until cancelled (never, for a node alone), taking claimed
        integrations up beside it. A store out of reach is logged and tried again at the
        next heartbeat: the leases run out meanwhile."""
        if math.isinf(self.coordinator.heartbeat):
            await trio.sleep_forever()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._taking_up, name="take up claimed integrations")
            while True:
                await trio.sleep(self.coordinator.heartbeat)
                try:
                    await self._beat()
                except StoreUnavailable as exc:
                    log.error("cannot renew the leases; trying again", error=str(exc))
                if self._pending:
                    self._retake.set()

    async def _beat(self) -> None:
        """One heartbeat: renew, end the jobs of the leases lost, hand a surplus back,
        claim; the claimed are left to :meth:`_taking_up`."""
        lost = await self.coordinator.renew()
        if lost:
            log.warning("leases lost; their jobs end on this node", integrations=sorted(lost))
            self._pending -= lost
            await self.on_lost(lost)
        if surplus := self.coordinator.surplus():
            spare = [
                i
                for i in sorted(self.coordinator.held)
                if self.idle(i) and i not in self._pending and i not in self._taking
            ][:surplus]
            if spare:
                log.info("leases handed back to even the shares", integrations=spare)
                await self.coordinator.release(spare)
        if self._stopping:
            return
        claimed = await self.coordinator.claim(self.known())
        if claimed:
            log.info("leases claimed", integrations=sorted(claimed))
            self._pending.update(claimed)
            self._retake.set()

    async def _taking_up(self) -> None:
        """Take up the pending integrations this node holds validly, one batch at a
        time, until cancelled; those no longer held are dropped (their holder takes them
        up), those that failed are tried again when woken (each heartbeat)."""
        while True:
            await self._retake.wait()
            self._retake = trio.Event()
            if self._stopping:
                continue
            self._pending = {i for i in self._pending if i in self.coordinator.held}
            ids = sorted(i for i in self._pending if self.coordinator.locally_valid(i))
            if not ids:
                continue
            self._pending -= set(ids)
            self._taking = set(ids)
            try:
                await self.on_claimed(ids)
            except StoreUnavailable as exc:
                log.error(
                    "cannot resume the jobs of claimed integrations; trying again",
                    integrations=ids,
                    error=str(exc),
                )
                self._pending.update(ids)
            finally:
                self._taking = set()

    async def leave(self) -> None:
        """Hand every lease back (after the jobs stopped) and close the coordinator;
        a store out of reach is logged (the leases then run out)."""
        with trio.CancelScope(shield=True):
            try:
                if self._joined:
                    await self.coordinator.leave()
            except StoreUnavailable as exc:
                log.error("cannot hand the leases back; they run out", error=str(exc))
            finally:
                self._joined = False
                await self.coordinator.aclose()
