"""The lease contract every node follows, and the coordinator of a node alone.

A node runs an integration only while it holds the integration's lease. Each lease it is
given carries a fencing *epoch*, larger than any given before for that integration; the
store refuses a job's write unless the node still holds that epoch, so a node that lost
a lease (it was frozen, cut off, too slow to renew) can write nothing more to the store,
and :meth:`Coordinator.valid_for` tells the engine, without asking the database, for how
long it may still write to a target: a job's :class:`LeaseFence`.
"""

from __future__ import annotations

import math
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import trio

from ..retrying import Interrupted

__all__ = [
    "Coordinator",
    "Elsewhere",
    "LeaseExpired",
    "LeaseFence",
    "LocalCoordinator",
    "NodeInfo",
]


class LeaseExpired(Interrupted):
    """A job's fence found its integration's lease no longer valid on this node: the job
    stops at once and ends on this node, writing nothing more (its store writes would be
    refused); the node that holds the lease now resumes it from its last checkpoint."""

    def __init__(self, integration_id: str) -> None:
        super().__init__("lease")
        self.integration_id = integration_id

    def __str__(self) -> str:
        return f"lease lost: this node no longer holds the integration {self.integration_id}"


class Elsewhere(Exception):
    """A command for *integration_id*, which this node does not hold (*holder* does,
    or None: no node holds it now): the control API sends it to the holder through the
    store (:mod:`sluiced.cluster.commands`)."""

    def __init__(self, integration_id: str, holder: str | None) -> None:
        where = f"held by node {holder}" if holder else "held by no node now"
        super().__init__(f"the integration {integration_id} is {where}")
        self.integration_id = integration_id
        self.holder = holder


@dataclass(frozen=True)
class NodeInfo:
    """A node that joined the store: when it started, its last heartbeat, its process,
    when it left (or was found dead: no heartbeat for a lease's TTL), whether it is live,
    and how many unexpired leases it holds."""

    node_id: str
    started_at: datetime
    heartbeat_at: datetime
    pid: int
    host: str
    left_at: datetime | None
    live: bool
    leases: int


class Coordinator(ABC):
    """This node's leases. ``ttl`` is a lease's life after each renewal and ``heartbeat``
    how often :meth:`renew` should be called, in seconds.

    The database operations raise ``StoreUnavailable`` when the store cannot be reached;
    the leases then simply run out (:meth:`locally_valid` turns False on its own).
    """

    node_id: str
    ttl: float
    heartbeat: float

    @property
    @abstractmethod
    def held(self) -> Mapping[str, int]:
        """The integrations this node holds, each with its epoch."""

    @abstractmethod
    async def join(self) -> None:
        """Announce this node (and attach its fencing to the store, where there is one).

        Raises:
            StoreInUse: another live process uses this node's ``node_id``.
        """

    @abstractmethod
    async def claim(self, known_ids: Collection[str]) -> dict[str, int]:
        """Claim free or expired leases among *known_ids* (the configured integrations),
        up to this node's fair share; returns those newly claimed with their epochs."""

    @abstractmethod
    async def renew(self) -> set[str]:
        """Heartbeat: renew every held lease; returns the integrations whose lease was
        lost (another node claimed it, or it was reaped): they are no longer held, and
        their jobs must end at once."""

    @abstractmethod
    async def release(self, ids: Collection[str]) -> None:
        """Hand back the leases of *ids* at once (their jobs have stopped)."""

    @abstractmethod
    async def leave(self) -> None:
        """Graceful shutdown, once every job stopped: hand back every lease at once and
        mark this node gone."""

    def surplus(self) -> int:
        """How many leases this node holds beyond its fair share as last claimed (a node
        that started first holds every integration until others join): the caller hands
        back that many of those it is not running, for the others to claim."""
        return 0

    @abstractmethod
    def locally_valid(self, integration_id: str) -> bool:
        """Whether the lease is held and, on this host's monotonic clock, its last
        successful renewal plus the TTL less a safety margin has not passed. Asks no
        database."""

    def valid_for(self, integration_id: str) -> float:
        """How many seconds the lease stays :meth:`locally_valid` without a renewal
        (0: not valid now). Asks no database. This default is for leases that never run
        out while held: infinite while :meth:`locally_valid` holds."""
        return math.inf if self.locally_valid(integration_id) else 0.0

    async def renewed(self) -> None:
        """Wait for the end of this node's next renewal (:meth:`renew`, successful or
        not), or for a bounded time when none comes: returns at once in this default,
        for leases that are never renewed. Cancellation ends the wait."""
        await trio.lowlevel.checkpoint()

    def fence(self, integration_id: str) -> LeaseFence:
        """The fence of a job of *integration_id* on this node."""
        return LeaseFence(self, integration_id)

    @abstractmethod
    async def nodes(self) -> list[NodeInfo]:
        """Every node that joined the store, by ``node_id``."""

    @abstractmethod
    async def holders(self, ids: Collection[str]) -> dict[str, str]:
        """The node that holds an unexpired lease on each of *ids* (those no node holds
        are left out), as the store knows it now: the node that runs its jobs."""

    async def aclose(self) -> None:
        """Release what the coordinator holds open (not its leases: see :meth:`leave`)."""
        return None


class LeaseFence:
    """The fence of a job of *integration_id* on the node of *coordinator*: called,
    whether the node may write for the integration now (its lease is locally valid);
    :meth:`valid_for` says for how long, :meth:`renewed` waits for the next renewal.
    Asks no database."""

    def __init__(self, coordinator: Coordinator, integration_id: str) -> None:
        self.coordinator = coordinator
        self.integration_id = integration_id

    def __call__(self) -> bool:
        return self.coordinator.locally_valid(self.integration_id)

    def valid_for(self) -> float:
        """Seconds the lease stays locally valid (0: not now; infinite on a node alone)."""
        return self.coordinator.valid_for(self.integration_id)

    async def renewed(self) -> None:
        """Wait for the end of the node's next renewal of its leases, a bounded time at
        most (see :meth:`Coordinator.renewed`)."""
        await self.coordinator.renewed()


class LocalCoordinator(Coordinator):
    """A node alone on its store (SQLite or memory): it holds every integration it knows,
    at epoch 1, forever; nothing is ever lost."""

    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id or socket.gethostname()
        self.ttl = float("inf")
        self.heartbeat = float("inf")
        self._held: dict[str, int] = {}
        self._started = datetime.now(UTC)
        self._left: datetime | None = None

    @property
    def held(self) -> Mapping[str, int]:
        return self._held

    async def join(self) -> None:
        self._left = None

    async def claim(self, known_ids: Collection[str]) -> dict[str, int]:
        new = {iid: 1 for iid in known_ids if iid not in self._held}
        self._held.update(new)
        return new

    async def renew(self) -> set[str]:
        return set()

    async def release(self, ids: Collection[str]) -> None:
        for iid in ids:
            self._held.pop(iid, None)

    async def leave(self) -> None:
        self._held.clear()
        self._left = datetime.now(UTC)

    def locally_valid(self, integration_id: str) -> bool:
        return True

    async def holders(self, ids: Collection[str]) -> dict[str, str]:
        return {} if self._left is not None else dict.fromkeys(ids, self.node_id)

    async def nodes(self) -> list[NodeInfo]:
        return [
            NodeInfo(
                node_id=self.node_id,
                started_at=self._started,
                heartbeat_at=datetime.now(UTC),
                pid=os.getpid(),
                host=socket.gethostname(),
                left_at=self._left,
                live=self._left is None,
                leases=len(self._held),
            )
        ]
