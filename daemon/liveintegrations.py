"""The integrations that change while the daemon runs: those created through the API
(persisted in the store, taken up at start and, on a store shared with other nodes,
followed as other nodes create and delete them), and those of the config file when it
is read again.

An integration of the config file with the same id shadows a stored one (a warning
says so); a stored definition that no longer validates is logged and not loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import trio

from .config import Config
from .definitions import parse_definition
from .errors import ConfigError
from .logs import get_logger
from .pluginmanager import Registry
from .resolved import Resolved
from .runner import JobRunner
from .store import Store, StoreUnavailable

__all__ = ["LiveIntegrations"]

log = get_logger("sluiced.daemon")


class LiveIntegrations:
    """Keeps the daemon's *integrations* (changed in place: the scheduler and the runner
    look them up there) in step with the config file and the definitions stored
    through the API."""

    def __init__(
        self,
        *,
        integrations: dict[str, Resolved],
        config: Callable[[], Config],
        registry: Registry,
        store: Store,
        runner: JobRunner,
        wake: Callable[[], None],
    ) -> None:
        self.integrations = integrations
        self.config = config
        self.registry = registry
        self.store = store
        self.runner = runner
        self.wake = wake

    async def add(self, integration_id: str, table: Mapping[str, Any]) -> Resolved:
        """Validate, persist and schedule an integration created through the API.

        Raises:
            ConfigError: the definition is invalid; nothing was stored.
        """
        resolved = parse_definition(self.config(), self.registry, integration_id, table)
        await self.store.put_definition(integration_id, dict(table))
        self.integrations[integration_id] = resolved
        self.wake()
        return resolved

    async def remove(self, integration_id: str) -> None:
        """Take the integration off the schedule."""
        self.integrations.pop(integration_id, None)
        self.wake()

    def take_config(self, fresh: Mapping[str, Resolved]) -> dict[str, list[str]]:
        """Put the config file's integrations *fresh* in place of those read from it
        before: the jobs of those it no longer has stop gracefully and they are dropped;
        the others are added or replaced; those created through the API are kept.
        Returns the ids ``added``, ``removed`` and ``changed``."""
        old = {k for k, v in self.integrations.items() if v.cfg.origin == "config"}
        for ident in old - set(fresh):
            for job_id in self.runner.tasks(ident):
                self.runner.stop(job_id, graceful=True)
            del self.integrations[ident]
        changed = [i for i in fresh if i in old and fresh[i].cfg != self.integrations[i].cfg]
        self.integrations.update(fresh)
        return {
            "added": sorted(set(fresh) - old),
            "removed": sorted(old - set(fresh)),
            "changed": sorted(changed),
        }

    async def follow(self, heartbeat: Callable[[], float]) -> None:
        """On a store shared with other nodes, every heartbeat: take up the integrations
        other nodes created through the API, and drop those they deleted (their holder
        stopped their jobs), so that any node can claim and show them. Until cancelled."""
        while True:
            await trio.sleep(heartbeat())
            try:
                stored = await self.store.list_definitions()
            except StoreUnavailable as exc:
                log.error("cannot read the stored integrations; trying again", error=str(exc))
                continue
            for ident in [
                i
                for i, r in self.integrations.items()
                if r.cfg.origin == "api" and i not in stored and not self.runner.busy(i)
            ]:
                log.info("integration deleted on another node", integration_id=ident)
                del self.integrations[ident]
            if any(i not in self.integrations for i in stored):
                await self.load(stored)
                self.wake()

    async def load(self, stored: Mapping[str, Any] | None = None) -> None:
        """Take up the integrations created through the API (*stored*, else read from the
        store) that this node does not know yet.

        Raises:
            StoreUnavailable: *stored* is None and the store cannot be read.
        """
        if stored is None:
            stored = await self.store.list_definitions()
        for ident, table in stored.items():
            if ident in self.integrations and self.integrations[ident].cfg.origin == "api":
                continue
            if ident in self.integrations:
                log.warning(
                    "an API-defined integration is shadowed by the config", integration_id=ident
                )
                continue
            try:
                self.integrations[ident] = parse_definition(
                    self.config(), self.registry, ident, table
                )
            except ConfigError as exc:
                log.error(
                    "a stored integration is invalid and not loaded",
                    integration_id=ident,
                    error=str(exc),
                )
