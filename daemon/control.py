"""What an operator can ask of a running daemon: :class:`Control`, the one interface the
control API (the core's routes and the plugins') talks to.

Each operation checks the request against the current state and raises
:class:`NotFound` (HTTP 404) or :class:`Conflict` (HTTP 409) rather than doing half of
it; :class:`Unavailable` (502) when the source or target could not be used. The
daemon's implementation is :class:`~sluiced.controller.Controller`; it reaches the
daemon through :class:`Host` and the job runner through :class:`Runner`, the two small
interfaces of :mod:`sluiced.control_ports` (re-exported here; neither module imports
the supervisor or the API).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import trio

from .changes import Change, ChangeQuery
from .cluster import NodeInfo
from .config import IntegrationConfig
from .control_ports import Host, Runner
from .jobfeed import JobFeed
from .models import RESET_SCOPES, Escrow, IntegrationState, Job, JobStatus, JobType, LogEntry
from .ondemand import PROVISION_JOB
from .schedule import effective_interval
from .store import JobHistory

__all__ = [
    "PROVISION_JOB",
    "RESET_SCOPES",
    "Conflict",
    "Control",
    "Host",
    "IntegrationView",
    "NodeStop",
    "NotFound",
    "Runner",
    "Unavailable",
]


class NotFound(LookupError):
    """No such job or integration."""


class Conflict(Exception):
    """The request is valid but not allowed in the current state."""


class Unavailable(Exception):
    """The source or target could not be used for the request (502)."""


@dataclass(frozen=True, kw_only=True)
class IntegrationView:
    """Everything shown about one integration."""

    cfg: IntegrationConfig
    state: IntegrationState
    next_run: datetime | None
    current_job: Job | None
    history: JobHistory
    synced: Mapping[str, int]
    #: The node that holds the integration's lease and runs its jobs (None: no node now).
    node: str | None = None

    @property
    def interval(self) -> timedelta:
        """The interval between its runs (the one set through the API, else the config's)."""
        return effective_interval(self.cfg, self.state)


@dataclass(frozen=True)
class NodeStop:
    """What one node answered to a stop of every job of the cluster: the ids of the
    jobs it stopped, or why it did not answer (*error*: its jobs may still run)."""

    node: str
    jobs: list[str]
    error: str | None = None


class Control(ABC):
    """The operations of the control API. Unless said otherwise, each raises
    :class:`NotFound` for an unknown job or integration and :class:`Conflict` for a
    request the current state does not allow."""

    # -- jobs ---------------------------------------------------------------------------
    @abstractmethod
    async def job(self, job_id: str) -> Job:
        """The job, with a running job's progress as its run holds it in memory."""

    @abstractmethod
    async def get_job(self, job_id: str) -> Job | None:
        """The job as stored, or None."""

    @abstractmethod
    async def get_logs(self, job_id: str, *, after: int | None = None) -> list[LogEntry]:
        """The job's log lines (after line *after*), oldest first."""

    @abstractmethod
    def live(self, job: Job) -> Job:
        """*job* with its progress, stage and estimate as its run holds them in memory."""

    @abstractmethod
    def task_ended(self, job_id: str) -> trio.Event | None:
        """Set when the job's run has ended; None if it is not running."""

    @property
    @abstractmethod
    def feed(self) -> JobFeed:
        """Every job saved and log line appended, as the store records them."""

    @abstractmethod
    async def job_with_logs(
        self, job_id: str, *, log_limit: int = 100
    ) -> tuple[Job, list[LogEntry]]: ...

    @abstractmethod
    async def list_jobs(
        self, *, statuses: Collection[JobStatus] | None, integration_id: str | None, limit: int
    ) -> tuple[list[Job], int]:
        """A page of jobs, newest first, and how many match in all."""

    @abstractmethod
    async def create_job(
        self,
        integration_id: str,
        job_type: JobType,
        *,
        force: bool = False,
        entity_types: Sequence[str] = (),
        batch_size: int | None = None,
        extra: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[Job, float | None]:
        """Queue a sync job; returns it and its estimated duration in ms (from past
        runs). Without *force*, a job while another of the integration is active is a
        conflict."""

    @abstractmethod
    async def queue_job(
        self,
        integration_id: str | None,
        job_type: str,
        params: Mapping[str, Any],
        *,
        targets: Collection[str],
    ) -> Job:
        """Queue a job of a plugin's type on an integration whose target connector is
        one of *targets*: the one named, or the only one there is. It waits for any job
        of the integration that is running."""

    @abstractmethod
    async def resume(self, job_id: str) -> Job:
        """Queue a paused or failed job again, from its checkpoint."""

    @abstractmethod
    async def stop_job(self, job_id: str, *, graceful: bool) -> Job: ...

    @abstractmethod
    async def stop_all(self, integration_id: str | None = None) -> list[str]:
        """Stop every running job of this node (of one integration: on the node that
        holds it, see :meth:`forward`); returns their ids."""

    @abstractmethod
    async def stop_cluster(self) -> list[NodeStop] | None:
        """Stop every running job on every node of the store: this node's here, and
        each other node's that holds integrations through a command sent to it, all at
        once; returns each node's answer, this node's first. On a node alone it stops
        nothing and returns None: there, :meth:`stop_all` is the whole of it.

        Raises:
            StoreUnavailable: the store cannot be reached to find the nodes.
        """

    @abstractmethod
    async def delete_job(self, job_id: str, *, delete_logs: bool) -> None: ...

    @abstractmethod
    async def set_interval(
        self, job_id: str, seconds: float
    ) -> tuple[float, float, datetime | None]:
        """Change the interval of the job's integration (kept across restarts); returns
        the old and new intervals in seconds and the next run."""

    @abstractmethod
    async def plan(self, job_id: str, *, offset: int, limit: int) -> dict[str, Any]:
        """A page of a dry run's plan."""

    # -- integrations --------------------------------------------------------------------
    @abstractmethod
    async def view(self, integration_id: str) -> IntegrationView: ...

    @abstractmethod
    async def views(self) -> list[IntegrationView]:
        """Every integration, by id."""

    @abstractmethod
    async def create_integration(
        self, integration_id: str, table: Mapping[str, Any]
    ) -> IntegrationView:
        """Raises :class:`~sluiced.errors.ConfigError` for an invalid definition."""

    @abstractmethod
    async def delete_integration(self, integration_id: str) -> None:
        """Stop an integration defined through the API and delete all its state but its
        provisioning log (kept for the daemon's ``changes_retention``)."""

    @abstractmethod
    async def start(
        self, integration_id: str, *, job_type: JobType | None = None, immediate: bool = True
    ) -> Job | None:
        """Resume a paused integration (and its paused job), lift quarantine, and, if
        *immediate*, run a job now; returns the job."""

    @abstractmethod
    async def pause(self, integration_id: str) -> list[str]:
        """Pause the schedule and the active job; returns the paused jobs' ids."""

    @abstractmethod
    async def stop_integration(self, integration_id: str) -> list[str]:
        """Stop the integration's jobs and its schedule; returns the stopped jobs' ids."""

    @abstractmethod
    async def restart(self, integration_id: str, scopes: Sequence[str]) -> Job:
        """Stop what runs, forget the state *scopes* name, and run a full sync."""

    @abstractmethod
    async def reload(self) -> bool:
        """Read the config again; returns whether it was applied."""

    @abstractmethod
    async def get_schema(self, integration_id: str) -> Mapping[str, Any]: ...

    @abstractmethod
    async def put_schema(self, integration_id: str, data: Any) -> Mapping[str, Any]:
        """Raises :class:`~sluiced.mapping.SchemaError` for an invalid schema, and for
        any schema of an integration whose target is keyed by source ids."""

    @abstractmethod
    async def escrows(self, integration_id: str) -> list[Escrow]: ...

    @abstractmethod
    async def retry_escrow(
        self, integration_id: str, entity_type: str, object_id: str
    ) -> Job | None:
        """Make one escrowed object due now; returns the job started for it, if any."""

    @abstractmethod
    async def drop_escrow(self, integration_id: str, entity_type: str, object_id: str) -> None: ...

    @abstractmethod
    async def changes(self, integration_id: str, query: ChangeQuery) -> list[Change]:
        """The integration's provisioning log, newest first, as *query* selects (any
        node of a shared store answers: the log is in the store). The log of an
        integration removed or deleted is answered until retention prunes it."""

    @abstractmethod
    async def validate_credentials(self, integration_id: str) -> dict[str, dict[str, Any]]:
        """Check the source and target; each answers ``{"ok", "message"}``."""

    @abstractmethod
    async def provision(
        self,
        integration_id: str,
        object_id: str,
        *,
        entity_type: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Sync one source object now (or say what would happen) and trace each step.

        Raises:
            Unavailable: the source or target could not be used.
        """

    # -- the daemon ------------------------------------------------------------------------
    @abstractmethod
    async def health(self) -> dict[str, Any]:
        """``{"ok", "integrations", "activeJobs", "store", "scheduler"}``."""

    @abstractmethod
    async def metrics(self) -> bytes:
        """The Prometheus exposition text."""

    @abstractmethod
    def connectors(self, role: str) -> list[str]:
        """The names of the loaded connectors that can be a ``source`` or ``target``."""

    @abstractmethod
    def integration_ids(self) -> list[str]: ...

    @abstractmethod
    async def nodes(self) -> list[NodeInfo]:
        """Every node that joined the store (this one alone, on SQLite or memory).

        Raises:
            StoreUnavailable: the store cannot be reached.
        """

    @abstractmethod
    async def forward(
        self, integration_id: str, kind: str, body: Mapping[str, Any]
    ) -> tuple[int, Any]:
        """Send a request the control API got for an integration another node holds
        (``"METHOD /path?query"`` and its checked body) to that node, and return its
        answer there: the HTTP status and JSON body.

        Raises:
            StoreUnavailable: no answer came in time, or the store cannot be reached.
        """

    # -- for plugins' routes ----------------------------------------------------------------
    async def here(self, integration_id: str) -> None:
        """Return if this node runs *integration_id* (it holds its lease, or is alone, or
        knows no such integration). Otherwise raise
        :class:`~sluiced.cluster.Elsewhere`: a route whose handler calls this before
        doing anything is answered by the node that runs the integration."""
        return None

    def start_soon(self, work: Callable[[], Awaitable[None]], *, name: str) -> None:
        """Run ``await work()`` in the background, for as long as the daemon runs (it is
        cancelled when the daemon stops): what a plugin's route starts that must outlive
        its request. An exception it raises is logged, and ends only *work*.

        Raises:
            Conflict: the daemon runs no background work (it is not running).
        """
        raise Conflict("this control interface runs no background work")

    @abstractmethod
    async def holders(self) -> dict[str, str]:
        """The node that runs each integration now (its lease's holder); those no node
        holds are left out.

        Raises:
            StoreUnavailable: the store cannot be reached.
        """
