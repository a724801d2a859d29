"""A node's life in the cluster: it joins, claims its share of the integrations, and on
every heartbeat renews its leases, ends the jobs of those it lost and takes up those it
newly claimed; on a graceful stop, once its jobs stopped, it leaves.

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
    handed back."""

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
        """Heartbeat until cancelled (never, for a node alone). A store out of reach is
        logged and tried again at the next heartbeat: the leases run out meanwhile."""
        if math.isinf(self.coordinator.heartbeat):
            await trio.sleep_forever()
        while True:
            await trio.sleep(self.coordinator.heartbeat)
            try:
                lost = await self.coordinator.renew()
                if lost:
                    log.warning(
                        "leases lost; their jobs end on this node", integrations=sorted(lost)
                    )
                    await self.on_lost(lost)
                if surplus := self.coordinator.surplus():
                    spare = [i for i in sorted(self.coordinator.held) if self.idle(i)][:surplus]
                    if spare:
                        log.info("leases handed back to even the shares", integrations=spare)
                        await self.coordinator.release(spare)
                claimed = await self.coordinator.claim(self.known())
                if claimed:
                    log.info("leases claimed", integrations=sorted(claimed))
                    await self.on_claimed(sorted(claimed))
            except StoreUnavailable as exc:
                log.error("cannot renew the leases; trying again", error=str(exc))

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
