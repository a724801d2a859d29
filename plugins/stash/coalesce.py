"""Many hook calls, few jobs: the changes Stash's hooks report (``hooks.py``) are
gathered per integration and synced together.

The first change of a quiet integration opens a window; what comes meanwhile joins it.
The window closes once no change came for ``hook_delay`` (a setting of the
stash-mirror target, 1 s by default) or, when longer, for a quarter of the time it has
been open, up to five delays (a burst with pauses stays one), and at the latest ``hook_max_delay`` (1
minute) after it opened, so that a long burst (Stash runs its hooks one after the other: a
bulk edit of a thousand scenes reports them over a minute or more) is synced in parts
as it goes. Once no job of the integration is active (a
``sync`` running: changes keep gathering until it ends), what the window gathered
becomes at most two jobs, the second started when the first ended (never two at once,
nor alongside another job of the integration):

* one ``sync_changes`` job reading by id the union of the objects created or updated,
  type by type (performers, tags, studios, then scenes, as a ``sync`` orders them);
* one incremental ``sync`` of the types whose objects were destroyed or merged (and of
  scenes when a marker changed without naming its scene). Its reconciliation confirms
  each vanished object with Stash before removing it, and reads again what linked to
  it. A type it passes over is not also read by id.

Changes reported while those jobs run gather for the next window. Nothing is kept
across a restart: hooks reported while sluiced is down, or gathered when it stops, are
lost, and the scheduled incremental pass (the backstop) syncs those objects.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from sluiced.cluster import Elsewhere
from sluiced.control import Conflict, Control, NotFound
from sluiced.durations import DurationError, parse_duration
from sluiced.logs import get_logger
from sluiced.models import JobStatus
from sluiced.schedule import effective_state
from sluiced.store import StoreUnavailable

from .routes import TARGETS
from .target import SYNC_CHANGES

__all__ = ["DELAY", "LONGEST", "Changes", "Coalescer", "HookTarget", "coalescer"]

log = get_logger("sluiced.plugins.stash")

#: ``hook_delay`` and ``hook_max_delay`` when the target's table sets none, in seconds.
DELAY = 1.0
LONGEST = 60.0
#: A window open for *t* seconds closes after ``t / STRETCH`` quiet seconds when that
#: is longer than ``hook_delay`` (a burst with pauses is not cut at each pause), but
#: never waits more than ``PATIENCE`` delays of quiet.
STRETCH = 4
PATIENCE = 5
#: How long what is known of an integration (its target, types, delay) is reused.
KNOWN_FOR = 5.0
#: The built-in types, whose ``include_<type>s`` a ``sync`` job takes.
ORDER = ("performer", "tag", "studio", "scene")
_ACTIVE = [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.STOPPING]
#: Marks the jobs hooks started (a parameter; the engine ignores it).
TRIGGER = {"trigger": "stash-hooks"}


#: The most ids of one entity type gathered for reads by id; more make a pass instead.
MAX_READS = 10_000


@dataclass
class Changes:
    """What gathered changes ask for: objects to read by id, by entity type, and
    entity types to pass over incrementally."""

    reads: dict[str, set[str]] = field(default_factory=dict)
    passes: set[str] = field(default_factory=set)

    def read(self, kind: str, ident: str) -> None:
        self._add(kind, {ident})

    def merge(self, other: Changes) -> None:
        for kind, ids in other.reads.items():
            self._add(kind, ids)
        self.passes |= other.passes

    def _add(self, kind: str, ids: set[str]) -> None:
        """Gather *ids* of *kind*; past :data:`MAX_READS` of one type (a flood while a
        long sync runs), an incremental pass over the type replaces them."""
        if kind in self.passes:
            return  # the pass reads what changed of the type
        gathered = self.reads.setdefault(kind, set())
        gathered |= ids
        if len(gathered) > MAX_READS:
            del self.reads[kind]
            self.passes.add(kind)

    def __bool__(self) -> bool:
        return bool(self.passes or any(self.reads.values()))

    def jobs(self) -> list[tuple[str, dict[str, Any]]]:
        """The jobs that sync them, in order: ``(job type, params)``."""
        out: list[tuple[str, dict[str, Any]]] = []
        reads = {
            k: sorted(ids, key=int)
            for k, ids in sorted(self.reads.items())
            if ids and k not in self.passes
        }
        if reads:
            out.append((SYNC_CHANGES, {"ids": reads, **TRIGGER}))
        if self.passes:
            include = {f"include_{k}s": k in self.passes for k in ORDER}
            out.append(("sync", {**include, "entity_types": sorted(self.passes), **TRIGGER}))
        return out


@dataclass(frozen=True)
class HookTarget:
    """What the coalescer knows of an integration writing to the Stash mirror."""

    id: str
    entity_types: Sequence[str]
    #: The quiet time that closes a window, and its longest, in seconds.
    delay: float
    longest: float


def _seconds(settings: Any, name: str, default: float) -> float:
    """The duration *name* of a target's table, in seconds."""
    value = settings.get(name) if hasattr(settings, "get") else None
    if value is None:
        return default
    try:
        return parse_duration(value).total_seconds()
    except DurationError:  # refused when the config was read: not reached
        return default


class Coalescer:
    """The changes gathered for each integration of one daemon (one per
    :class:`~sluiced.control.Control`, see :func:`coalescer`)."""

    def __init__(self) -> None:
        self.pending: dict[str, Changes] = {}
        #: Integrations whose changes a background task is syncing.
        self.flushing: set[str] = set()
        #: When the first and the last change gathered for each integration came
        #: (trio's clock): its window opened with the first.
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self._known: dict[str | None, tuple[float, HookTarget]] = {}

    async def integration(self, ctl: Control, integration_id: str | None) -> HookTarget:
        """The integration *integration_id* names, or the only one writing to the Stash
        mirror.

        Raises:
            NotFound: no such integration.
            Conflict: it does not write to the Stash mirror, or none or several do
                and none was named.
        """
        now = time.monotonic()
        known = self._known.get(integration_id)
        if known is not None and now - known[0] < KNOWN_FOR:
            return known[1]
        ids = ctl.integration_ids()
        if integration_id is not None and integration_id not in ids:
            raise NotFound(f"no integration {integration_id!r}")
        names = " or ".join(sorted(TARGETS))
        views = [await ctl.view(i) for i in ids if integration_id in (None, i)]
        fitting = [v for v in views if v.cfg.target.connector in TARGETS]
        if integration_id is not None and not fitting:
            raise Conflict(f"integration {integration_id!r} does not write to {names}")
        if len(fitting) != 1:
            raise Conflict(
                f"{len(fitting)} integrations write to {names} "
                f"({', '.join(v.cfg.id for v in fitting) or 'none'}); name one with integrationId"
            )
        cfg = fitting[0].cfg
        settings = cfg.target.settings
        target = HookTarget(
            id=cfg.id,
            entity_types=tuple(cfg.entity_types),
            delay=_seconds(settings, "hook_delay", DELAY),
            longest=_seconds(settings, "hook_max_delay", LONGEST),
        )
        self._known[integration_id] = (now, target)
        return target

    def add(self, ctl: Control, target: HookTarget, changes: Changes) -> None:
        """Gather *changes* for *target*; the first of a window starts the task that
        syncs them (see the module).

        Raises:
            Conflict: the daemon runs no background work.
        """
        if not changes:
            return
        now = trio.current_time()
        if target.id not in self.pending:
            self.pending[target.id] = Changes()
            self.first[target.id] = now
        self.pending[target.id].merge(changes)
        self.last[target.id] = now
        if target.id in self.flushing:
            return
        ctl.start_soon(lambda: self._flush(ctl, target), name=f"stash hooks {target.id}")
        self.flushing.add(target.id)

    async def _flush(self, ctl: Control, target: HookTarget) -> None:
        """Sync what is gathered for *target*, window after window, until a window
        gathered nothing. Cancelled (the daemon stops): what is gathered is lost."""
        try:
            while target.id in self.pending:
                await self._window(target)
                await _idle(ctl, target.id)
                changes = self.pending.pop(target.id)
                try:
                    for job_type, params in changes.jobs():
                        # looked at before each job: a pause during the first holds the next
                        if held := await _held_back(ctl, target.id):
                            log.info(
                                "changes reported by Stash's hooks left to the integration's"
                                " next run",
                                integration_id=target.id,
                                reason=held,
                            )
                            break
                        job = await ctl.queue_job(target.id, job_type, params, targets=TARGETS)
                        ended = ctl.task_ended(job.id)
                        if ended is not None:
                            await ended.wait()
                except (NotFound, Conflict, Elsewhere, StoreUnavailable) as exc:
                    # The integration went, changed or moved, or the store is out of reach:
                    # its next scheduled pass reads these changes.
                    log.warning("changes reported by Stash's hooks dropped", error=str(exc))
        finally:
            self.flushing.discard(target.id)

    async def _window(self, target: HookTarget) -> None:
        """Return when the window open for *target* closes (see the module)."""
        opened = self.first.get(target.id, trio.current_time())
        latest = opened + target.longest
        while True:
            now = trio.current_time()
            wait = max(target.delay, min((now - opened) / STRETCH, PATIENCE * target.delay))
            closes = min(self.last.get(target.id, opened) + wait, latest)
            if closes <= now:
                return
            await trio.sleep_until(closes)


async def _held_back(ctl: Control, integration_id: str) -> str | None:
    """Why the integration runs nothing now (stopped or paused, quarantined, disabled),
    or None: a hook starts no job its schedule would not; the run that follows its
    ``start`` reads what changed meanwhile (an incremental pass)."""
    view = await ctl.view(integration_id)
    state = view.state
    if state.disabled_reason:
        return f"it is disabled: {state.disabled_reason}"
    schedule = effective_state(view.cfg, state)  # the API's, else the config file's
    if schedule == "Disabled":
        return "it is disabled"
    if schedule == "Paused":
        return "it is paused"
    if state.quarantine is not None:
        return f"it is quarantined: {state.quarantine.reason}"
    if view.cfg.expiration is not None and view.cfg.expiration <= datetime.now(UTC):
        return "its schedule expired"
    return None


async def _idle(ctl: Control, integration_id: str) -> None:
    """Return once no job of the integration is active on this node."""
    while True:
        jobs, _ = await ctl.list_jobs(statuses=_ACTIVE, integration_id=integration_id, limit=20)
        ends = [e for j in jobs if (e := ctl.task_ended(j.id)) is not None]
        if not ends:
            return
        await ends[0].wait()


_COALESCERS: weakref.WeakKeyDictionary[Control, Coalescer] = weakref.WeakKeyDictionary()


def coalescer(ctl: Control) -> Coalescer:
    """The coalescer of the daemon whose control interface is *ctl*."""
    found = _COALESCERS.get(ctl)
    if found is None:
        found = _COALESCERS[ctl] = Coalescer()
    return found
