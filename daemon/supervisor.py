"""The daemon: one nursery for its lifetime, holding the job runner, the scheduling
loop and the signal handler.

Start-up: open the store, validate every integration's connectors, resume jobs that
were running when the daemon last died (status ``running``/``stopping``/``queued``, or
``stopped`` by a shutdown) from their checkpoints, then schedule.

SIGTERM and SIGINT stop gracefully: retry waits end at once, running jobs finish their
batch, checkpoint and end ``stopped`` (marked to resume at the next start) within
``shutdown_grace``; then the process exits. A second SIGTERM or SIGINT while stopping
stops at once: jobs are cancelled as by an immediate stop (each keeps its last
checkpoint and is recorded ``stopped``, to resume at the next start).
"""

from __future__ import annotations

import fcntl
import signal
import socket
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pluggy
import trio

from .api import Metrics, build_app, serve
from .api.server import bind_unix, require_token, systemd_sockets, tcp_socket
from .clock import Clock, SystemClock
from .config import Config, load_config, parse_config
from .connectors import parse_connector, raise_problems
from .control import PROVISION_JOB, Controller
from .errors import ConfigError
from .events import JobEvent
from .jobfeed import JobFeed
from .logs import get_logger
from .mapping import SchemaError, functions_from, parse_schema
from .models import JobStatus
from .notify import Notifier
from .pluginmanager import Registry, build_plugin_manager, build_registry
from .runner import JobRunner, Resolved, new_job
from .schedule import next_due
from .store import Store, StoreUnavailable
from .store.opening import open_daemon_store
from .tables import Problems

__all__ = ["API_ORIGIN", "Daemon", "StateDirInUse", "resolve_integrations"]

#: The "file" named in problems with integrations defined through the API.
API_ORIGIN = "(api)"

log = get_logger("sluiced.daemon")

#: How long the scheduler waits before it tries a store it could not write again.
STORE_RETRY = timedelta(seconds=30)
#: The scheduler looks at the schedule at least this often (its heartbeat in ``/healthz``).
TICK = timedelta(seconds=60)


class StateDirInUse(RuntimeError):
    """Another daemon holds the state directory."""


def resolve_integrations(
    config: Config, registry: Registry, *, confine: tuple[Path, ...] | None = None
) -> dict[str, Resolved]:
    """Validate every integration's source and target settings with their connectors;
    with *confine*, their paths must lie inside those directories.

    Raises:
        ConfigError: listing every problem, in the same format as the config's own.
    """
    problems = Problems(str(config.path))
    base_dir = config.path.parent.resolve()
    functions = functions_from(registry.functions)
    out: dict[str, Resolved] = {}
    for ident, cfg in config.integrations.items():
        source, target = (
            parse_connector(
                c, role, registry.connectors, problems=problems, base_dir=base_dir, confine=confine
            )
            for c, role in ((cfg.source, "source"), (cfg.target, "target"))
        )
        if cfg.schema is not None:
            try:
                parse_schema(cfg.schema, functions, cfg.entity_types)
            except SchemaError as exc:
                where = exc.path.removeprefix("schema")
                problems.add(f"integrations.{ident}.schema{where}", "a schema", exc.message)
        if source is not None and target is not None:
            out[ident] = Resolved(cfg=cfg, source=source, target=target)
    raise_problems(problems)
    return out


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        pm: pluggy.PluginManager | None = None,
        store: Store | None = None,
        fresh_store: bool = False,
    ) -> None:
        """Raises :class:`~sluiced.store.StoreRefused` or ``StoreUnavailable`` when it
        opens the store itself (*fresh_store*: see :func:`open_daemon_store`)."""
        self.config = config
        self.clock = clock or SystemClock()
        self.registry = build_registry(
            pm or build_plugin_manager(disabled=config.daemon.disabled_plugins)
        )
        self.integrations: dict[str, Resolved] = resolve_integrations(config, self.registry)
        self._owns_store = store is None
        self.store = store or open_daemon_store(
            config.daemon.store_path,
            state_dir=config.daemon.state_dir,
            log_limit=config.daemon.job_log_limit,
            fresh=fresh_store,
        )
        self.runner = JobRunner(
            store=self.store,
            clock=self.clock,
            resolve=lambda ident: self.integrations.get(ident),
            max_concurrent=config.daemon.max_concurrent_jobs,
            state_dir=config.daemon.state_dir,
            emit=self._emit,
            on_job_end=self.wake,
            functions=functions_from(self.registry.functions),
            entity_types=self.registry.entity_types,
        )
        self.started: datetime = self.clock.now()
        self._wake = trio.Event()
        self._cancel = trio.CancelScope()
        self.notifier = Notifier()
        self._bound_socket: Path | None = None
        self._quarantined: set[str] = set()
        self._stopping = False
        self.metrics = Metrics()
        self.feed = JobFeed()
        self.store.watcher = self.feed
        #: When the scheduler last looked at the schedule, and what failed then, if anything.
        self.last_tick: datetime | None = None
        self.tick_error: str | None = None
        self.controller = Controller(self)

    def wake(self) -> None:
        """Re-evaluate the schedule now (a job ended, a setting changed)."""
        self._wake.set()

    def _emit(self, event: JobEvent) -> None:
        self.metrics.observe(event)
        if event.kind == "quarantine" and event.state is not None:
            if event.state.quarantine is not None:
                self._quarantined.add(event.integration_id)
            else:
                self._quarantined.discard(event.integration_id)
        self.notifier.status(self.status_line())
        resolved = self.integrations.get(event.integration_id)
        if resolved is not None:
            event = replace(event, notify=resolved.cfg.notify.over(self.config.notify))
        try:
            self.registry.pm.hook.sluiced_job_event(event=event)
        except Exception:
            log.exception("a plugin's sluiced_job_event failed")

    def status_line(self) -> str:
        """The systemd ``STATUS=`` text: running jobs and quarantined integrations."""
        text = f"{len(self.runner.handles)} jobs active, {len(self.integrations)} integrations"
        if self._quarantined:
            text += f", quarantined: {', '.join(sorted(self._quarantined))}"
        return text

    async def run(
        self,
        *,
        once: bool = False,
        api: bool = True,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> int:
        """Run until stopped (or, with *once*, until one job of each integration ended).

        With *api* (and not *once*) the control API is served; ``READY=1`` is sent to
        systemd once everything is up. Returns the exit status: 0, or with *once* 1 if
        any of those jobs did not complete.
        """
        self.started = self.clock.now()
        self._cancel = trio.CancelScope()
        lock = self._lock_state_dir()
        try:
            sockets = self._api_sockets() if api and not once else []
        except BaseException:
            lock.close()
            raise
        log.info(
            "sluiced starting",
            integrations=sorted(self.integrations),
            plugins=[p.name for p in self.registry.plugins],
            store=str(self.config.daemon.store_path),
        )
        status = 0
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    await self._load_definitions()
                    await nursery.start(self.runner.run)
                    resumed = await self._resume_jobs()
                    self._quarantined = {
                        s.integration_id
                        for s in await self.store.list_states()
                        if s.quarantine is not None
                    }
                    nursery.start_soon(self._signals, name="signals")
                    nursery.start_soon(self.notifier.watchdog_loop, name="watchdog")
                    if sockets:
                        await self._serve_api(nursery, sockets)
                    self.notifier.ready(self.status_line())
                    task_status.started()
                    if once:
                        status = await self._run_once(resumed)
                        nursery.cancel_scope.cancel()
                    else:
                        nursery.start_soon(self._schedule, name="scheduler")
        finally:
            if self._bound_socket is not None:
                self._bound_socket.unlink(missing_ok=True)
                self._bound_socket = None
            if self._owns_store:
                with trio.CancelScope(shield=True):
                    await self.store.aclose()
            lock.close()
            log.info("sluiced stopped")
        return status

    async def stop(self) -> None:
        """Graceful stop: checkpoint running jobs, then end ``run``."""
        self._stopping = True
        log.info(
            "stopping: running jobs checkpoint and stop",
            grace_s=self.config.daemon.shutdown_grace.total_seconds(),
        )
        self.notifier.stopping()
        await self.runner.shutdown(self.config.daemon.shutdown_grace.total_seconds())
        self._cancel.cancel()

    def _lock_state_dir(self) -> IO[bytes]:
        """Hold an exclusive lock on the state directory for the daemon's lifetime, so
        that two daemons never run the same integrations on one store.

        Raises:
            StateDirInUse: another process holds it.
        """
        state_dir = self.config.daemon.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = (state_dir / "sluiced.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StateDirInUse(
                f"another sluiced is running on the state directory {state_dir}"
            ) from None
        return handle

    def _api_sockets(self) -> list[socket.socket]:
        """The control socket systemd passed, or a new one at ``control_socket``.

        Raises:
            SocketInUse: another process listens on ``control_socket``.
        """
        sockets = systemd_sockets()
        if not sockets:
            sockets = [bind_unix(self.config.daemon.control_socket)]
            self._bound_socket = self.config.daemon.control_socket
        return sockets

    async def _serve_api(self, nursery: trio.Nursery, sockets: list[socket.socket]) -> None:
        app = build_app(self.controller)
        await nursery.start(serve, app, sockets)
        d = self.config.daemon
        if d.tcp_listen is not None and d.api_token is not None:
            await nursery.start(
                serve, require_token(app, d.api_token.reveal()), [tcp_socket(d.tcp_listen)]
            )

    # -- integrations that change while the daemon runs -----------------------------------
    def _parse_definition(self, integration_id: str, table: Mapping[str, Any]) -> Resolved:
        """Validate an integration defined through the API like one from the config,
        every path it names confined to ``[daemon] allowed_paths``.

        Raises:
            ConfigError: problems keyed ``integrations.<id>.<key>``, file ``(api)``.
        """
        confine = self.config.daemon.api_paths
        config = parse_config(
            {"integrations": {integration_id: dict(table)}},
            path=self.config.path.parent / API_ORIGIN,
            confine=confine,
        )
        resolved = resolve_integrations(config, self.registry, confine=confine)[integration_id]
        return replace(resolved, cfg=replace(resolved.cfg, origin="api"))

    async def add_integration(self, integration_id: str, table: Mapping[str, Any]) -> Resolved:
        """Add and persist an integration created through the API."""
        resolved = self._parse_definition(integration_id, table)
        await self.store.put_definition(integration_id, dict(table))
        self.integrations[integration_id] = resolved
        self.wake()
        return resolved

    async def remove_integration(self, integration_id: str) -> None:
        self.integrations.pop(integration_id, None)
        self.wake()

    async def _load_definitions(self) -> None:
        for ident, table in (await self.store.list_definitions()).items():
            if ident in self.integrations:
                log.warning(
                    "an API-defined integration is shadowed by the config", integration_id=ident
                )
                continue
            try:
                self.integrations[ident] = self._parse_definition(ident, table)
            except ConfigError as exc:
                log.error(
                    "a stored integration is invalid and not loaded",
                    integration_id=ident,
                    error=str(exc),
                )

    async def reload(self) -> bool:
        """Read the config file again. Added, removed and changed integrations take
        effect without touching the others; an invalid config is logged and the running
        one kept. Returns whether the new config was applied."""
        self.notifier.reloading()
        try:
            config = load_config(self.config.path)
            fresh = resolve_integrations(config, self.registry)
        except ConfigError as exc:
            log.error(
                "reload refused: the new config is invalid; keeping the running one",
                problems=[str(p) for p in exc.problems],
            )
            self.notifier.ready("reload refused: invalid config")
            return False
        old = {k for k, v in self.integrations.items() if v.cfg.origin == "config"}
        for ident in old - set(fresh):
            for handle in list(self.runner.handles.values()):
                if handle.integration_id == ident:
                    self.runner.stop(handle.job_id, graceful=True)
            del self.integrations[ident]
        changed = [i for i in fresh if i in old and fresh[i].cfg != self.integrations[i].cfg]
        self.integrations.update(fresh)
        self.config = replace(self.config, integrations=config.integrations, notify=config.notify)
        self.runner.limiter.total_tokens = config.daemon.max_concurrent_jobs
        log.info(
            "config reloaded",
            added=sorted(set(fresh) - old),
            removed=sorted(old - set(fresh)),
            changed=sorted(changed),
        )
        self.wake()
        self.notifier.ready(self.status_line())
        return True

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        await self.reload()
                    elif not self._stopping:
                        self._stopping = True
                        nursery.start_soon(self.stop, name="stop")
                    else:
                        log.warning(
                            "stopping now: running jobs are cancelled at their last checkpoint",
                            signal=signal.Signals(signum).name,
                        )
                        self.runner.hurry()

    async def _resume_jobs(self) -> list[str]:
        """Queue again the jobs a crash or shutdown interrupted; return their ids."""
        interrupted = {JobStatus.RUNNING, JobStatus.STOPPING, JobStatus.QUEUED, JobStatus.STOPPED}
        jobs, _ = await self.store.list_jobs(statuses=interrupted, limit=None)
        resumed = []
        for job in sorted(jobs, key=lambda j: j.created_at):
            if job.status is JobStatus.STOPPED and not job.interrupted:
                continue
            error = None
            if job.integration_id not in self.integrations:
                error = "its integration is no longer configured"
            elif job.type == PROVISION_JOB:
                error = "the daemon stopped while it ran; provision the object again"
            if error is not None:
                await self.store.save_job(
                    replace(
                        job, status=JobStatus.FAILED, completed_at=self.clock.now(), error=error
                    )
                )
                continue
            log.info(
                "resuming job",
                job_id=job.id,
                integration_id=job.integration_id,
                was=job.status.value,
            )
            await self.runner.submit(job)
            resumed.append(job.id)
        return resumed

    async def _run_once(self, resumed: list[str]) -> int:
        """One job per integration (the interrupted one if there is one), to the end."""
        submitted = list(resumed)
        for ident, resolved in list(self.integrations.items()):
            if self.runner.busy(ident):
                continue
            now = self.clock.now()
            due = next_due(resolved.cfg, await self.store.get_state(ident), now=now, started=now)
            if due is not None:
                submitted.append(
                    (await self.runner.submit(new_job(ident, due.job_type.value, now))).id
                )
        await self.runner.wait_idle()
        outcomes = [await self.store.get_job(j) for j in submitted]
        return 0 if all(j is not None and j.status is JobStatus.COMPLETED for j in outcomes) else 1

    def scheduler_health(self) -> dict[str, Any]:
        """``ok`` when the scheduler's last look at the schedule succeeded and is no
        older than three ticks (or it has not had its first yet, at start)."""
        since = self.last_tick or self.started
        fresh = self.clock.now() - since <= 3 * TICK
        return {
            "ok": fresh and self.tick_error is None,
            "lastTick": self.last_tick.isoformat() if self.last_tick else None,
            "error": self.tick_error or (None if fresh else "the scheduler has not run lately"),
        }

    async def _schedule(self) -> None:
        while True:
            self._wake = trio.Event()
            now = self.clock.now()
            try:
                earliest = await self._start_due(now)
                self.tick_error = None
            except StoreUnavailable as exc:  # a full disk: stay up, try again later
                log.error(
                    "the scheduler cannot use the store; trying again",
                    error=str(exc),
                    retry_in_s=STORE_RETRY.total_seconds(),
                )
                self.tick_error = str(exc)
                earliest = now + STORE_RETRY
            self.last_tick = self.clock.now()
            delay = (
                TICK.total_seconds()
                if earliest is None
                else max(0.0, min(TICK, earliest - self.clock.now()).total_seconds())
            )
            with trio.move_on_after(delay):
                await self._wake.wait()

    async def _start_due(self, now: datetime) -> datetime | None:
        """Start the jobs due at *now*; return when the next one is due, if any."""
        earliest: datetime | None = None
        for ident, resolved in list(self.integrations.items()):  # changes while we await
            # A job finishing up counts: its run's end is not in the state yet, and the
            # scheduler is woken again when its task is over.
            if self.runner.busy(ident, finishing=True):
                continue
            state = await self.store.get_state(ident)
            due = next_due(resolved.cfg, state, now=now, started=self.started)
            if due is None or ident not in self.integrations:
                continue
            if due.at <= now:
                # Claimed only if still idle: start may have run it while we awaited.
                job = await self.runner.submit_if_idle(
                    new_job(ident, due.job_type.value, now), finishing=True
                )
                if job is None:
                    continue
                log.info(
                    "scheduled job started", integration_id=ident, job_id=job.id, type=job.type
                )
            elif earliest is None or due.at < earliest:
                earliest = due.at
        return earliest
