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

SIGHUP reads the config again. :mod:`sluiced.liveintegrations` keeps the integrations
that change while the daemon runs; :mod:`sluiced.serving` serves the control API.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pluggy
import trio
from starlette.applications import Starlette

from .api import Metrics
from .api.replay import replay
from .api.server import control_sockets
from .clock import Clock, SystemClock
from .cluster.membership import Membership, command_bus_for, coordinator_for
from .config import Config, load_config
from .controller import Controller
from .definitions import resolve_integrations
from .errors import ConfigError
from .events import JobEvent
from .jobfeed import JobFeed
from .liveintegrations import LiveIntegrations
from .logs import get_logger
from .mapping import functions_from
from .notify import Notifier
from .oneshot import OneShot
from .pluginmanager import build_plugin_manager
from .resolved import Resolved
from .retention import ChangesPruner
from .runner import JobRunner
from .scheduler import Scheduler
from .serving import checked_registry, control_app, serve_control_api
from .statelock import StateDirInUse, lock_state_dir
from .store import Store
from .store.opening import open_configured_store, store_name

__all__ = ["Daemon", "StateDirInUse", "checked_registry"]

log = get_logger("sluiced.daemon")


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
        opens the store itself (*fresh_store*: see :func:`open_daemon_store`), and
        :class:`~sluiced.store.StoreInUse` (from :meth:`run`) when another live process uses
        this node's ``node_id`` on a PostgreSQL store."""
        self.config = config
        self.clock = clock or SystemClock()
        self.registry = checked_registry(
            pm or build_plugin_manager(disabled=config.daemon.disabled_plugins)
        )
        self.integrations: dict[str, Resolved] = resolve_integrations(config, self.registry)
        self._owns_store = store is None
        self.store = store or open_configured_store(config.daemon, fresh=fresh_store)
        coordinator = coordinator_for(self.store, config.daemon)
        self.commands = command_bus_for(self.store, coordinator)
        self.membership = Membership(
            coordinator,
            known=lambda: list(self.integrations),
            on_claimed=self._claimed,
            on_lost=self._lost,
            idle=lambda ident: not self.runner.busy(ident, finishing=True),
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
            fence_for=coordinator.fence,
            on_lease_end=self.membership.take_up,
            node=coordinator.node_id,
        )
        self.started: datetime = self.clock.now()
        self.scheduler = Scheduler(
            integrations=self.integrations,
            runner=self.runner,
            store=self.store,
            clock=self.clock,
            started=lambda: self.started,
            holds=coordinator.locally_valid,
            ready=self.membership.ready,
        )
        self.pruner = ChangesPruner(
            store=self.store,
            clock=self.clock,
            integrations=lambda: self.integrations,
            retention=lambda: self.config.daemon.changes_retention,
        )
        self._cancel = trio.CancelScope()
        self.notifier = Notifier()
        self._bound_socket: Path | None = None
        self._quarantined: set[str] = set()
        self._stopping = False
        self.metrics = Metrics()
        self.feed = JobFeed()
        self.store.watcher = self.feed
        self.live = LiveIntegrations(
            integrations=self.integrations,
            config=lambda: self.config,
            registry=self.registry,
            store=self.store,
            runner=self.runner,
            wake=self.wake,
        )
        self.controller = Controller(
            host=self,
            runner=self.runner,
            store=self.store,
            clock=self.clock,
            coordinator=coordinator,
            bus=self.commands,
        )

    # -- what the controller asks of the daemon (its Host) ---------------------------------
    @property
    def config_path(self) -> Path:
        return self.config.path

    def connector_names(self, role: str) -> list[str]:
        return sorted(n for n, f in self.registry.connectors.items() if role in f.roles)

    async def render_metrics(self) -> bytes:
        return await self.metrics.render(self.store, self.integrations)

    def wake(self) -> None:
        """Re-evaluate the schedule now (a job ended, a setting changed), and prune the
        provisioning log."""
        self.scheduler.wake()
        self.pruner.wake()

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
        text = f"{len(self.runner.tasks())} jobs active, {len(self.integrations)} integrations"
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
        """Run until stopped (or, with *once*, until one job of each integration ended:
        see :mod:`sluiced.oneshot`).

        With *api* (and not *once*) the control API is served; ``READY=1`` is sent to
        systemd once everything is up. Returns the exit status: 0, or with *once* 1 if
        any of those jobs did not complete.
        """
        self.started = self.clock.now()
        self._cancel = trio.CancelScope()
        lock = lock_state_dir(self.config.daemon.state_dir)
        sockets: list[socket.socket] = []
        try:
            if api and not once:
                sockets, self._bound_socket = control_sockets(self.config.daemon.control_socket)
        except BaseException:
            lock.close()
            raise
        log.info(
            "sluiced starting",
            integrations=sorted(self.integrations),
            plugins=[p.name for p in self.registry.plugins],
            store=store_name(self.config.daemon),
        )
        status = 0
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    await self.live.load()
                    await nursery.start(self.runner.run)
                    await nursery.start(self.controller.run)
                    await self.membership.start(settle=not once)
                    resumed = await self.scheduler.resume_interrupted()
                    self._quarantined = {
                        s.integration_id
                        for s in await self.store.list_states()
                        if s.quarantine is not None
                    }
                    nursery.start_soon(self._signals, name="signals")
                    nursery.start_soon(self.notifier.watchdog_loop, name="watchdog")
                    if sockets:
                        await serve_control_api(
                            nursery, self.app(), sockets, self.config.daemon, self.registry
                        )
                    self.notifier.ready(self.status_line())
                    task_status.started()
                    if once:
                        status = await OneShot(
                            coordinator=self.membership.coordinator,
                            runner=self.runner,
                            store=self.store,
                            clock=self.clock,
                            integrations=lambda: self.integrations,
                            resume=lambda ids: self.scheduler.resume_interrupted(only=ids),
                        ).run(resumed)
                        await self.pruner.prune_logged()
                        nursery.cancel_scope.cancel()
                    else:
                        nursery.start_soon(self.scheduler.run, name="scheduler")
                        nursery.start_soon(self.pruner.run, name="changes retention")
                        nursery.start_soon(self.membership.run, name="leases")
                        if self.commands is not None:  # other nodes share the store
                            nursery.start_soon(
                                self.live.follow,
                                lambda: self.membership.coordinator.heartbeat,
                                name="definitions",
                            )
                            nursery.start_soon(self.commands.run, partial(replay, self.app()))
        finally:
            await self.membership.leave()
            if self.commands is not None:
                await self.commands.aclose()
            if self._bound_socket is not None:
                self._bound_socket.unlink(missing_ok=True)
                self._bound_socket = None
            if self._owns_store:
                with trio.CancelScope(shield=True):
                    await self.store.aclose()
            lock.close()
            log.info("sluiced stopped")
        return status

    async def _claimed(self, integration_ids: list[str]) -> None:
        """Take up integrations this node newly holds: resume their interrupted jobs."""
        await self.scheduler.resume_interrupted(only=integration_ids)
        self.scheduler.wake()

    async def _lost(self, integration_ids: set[str]) -> None:
        """End at once the jobs of integrations whose leases this node lost."""
        self.runner.end_jobs(integration_ids)

    async def stop(self) -> None:
        """Graceful stop: checkpoint running jobs, then end ``run``."""
        self._stopping = True
        self.membership.stop_claiming()
        log.info(
            "stopping: running jobs checkpoint and stop",
            grace_s=self.config.daemon.shutdown_grace.total_seconds(),
        )
        self.notifier.stopping()
        await self.runner.shutdown(self.config.daemon.shutdown_grace.total_seconds())
        self._cancel.cancel()

    def app(self) -> Starlette:
        """The control API: the core's routes and job types and the plugins'."""
        return control_app(self.controller, self.registry)

    # -- integrations that change while the daemon runs -----------------------------------
    async def add_integration(self, integration_id: str, table: Mapping[str, Any]) -> Resolved:
        """Add and persist an integration created through the API (see
        :meth:`~sluiced.liveintegrations.LiveIntegrations.add`)."""
        return await self.live.add(integration_id, table)

    async def remove_integration(self, integration_id: str) -> None:
        await self.live.remove(integration_id)

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
        changes = self.live.take_config(fresh)
        self.config = replace(self.config, integrations=config.integrations, notify=config.notify)
        self.runner.limiter.total_tokens = config.daemon.max_concurrent_jobs
        log.info("config reloaded", **changes)
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

    def scheduler_health(self) -> dict[str, Any]:
        return self.scheduler.health()
