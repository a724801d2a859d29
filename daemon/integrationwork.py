"""What the job runner does for an integration besides running its jobs: the schema,
the connectors' context and a dry run's plan path every job of it is given, and the
work on it outside a job (provisioning one object now, validating its connectors,
telling whether its target is keyed by source ids).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from .clock import Clock
from .cluster import Elsewhere, LeaseExpired
from .config import IntegrationConfig
from .connectors import ConnectorContext
from .mapping import Schema, default_schema, parse_schema
from .mapping.expressions import Function
from .models import IntegrationState, Job
from .ondemand import provision_object, validate_connectors
from .resolved import Resolved
from .retrying import Breakers
from .store import Store

__all__ = ["IntegrationWork"]


@dataclass(frozen=True, kw_only=True)
class IntegrationWork:
    """The integrations' schemas, contexts and work outside a job, for one runner."""

    store: Store
    clock: Clock
    resolve: Callable[[str], Resolved | None]
    state_dir: Any
    functions: Mapping[str, Function]
    entity_types: Mapping[str, Any]
    breakers: Breakers
    fence_for: Callable[[str], Callable[[], bool]] | None = None
    node: str | None = None

    def schema_of(self, cfg: IntegrationConfig, state: IntegrationState) -> Schema:
        """The integration's schema: the one set through the API, else the config's, or
        objects copied as they are. (A stored schema was validated when it was set.)"""
        data = state.schema if state.schema is not None else cfg.schema
        if data is None:
            data = default_schema(cfg.entity_types)
        return parse_schema(data, self.functions, cfg.entity_types)

    def check_schema(self, cfg: IntegrationConfig, data: Any) -> Schema:
        """*data* as the integration's schema.

        Raises:
            SchemaError: it is not a valid schema for the integration.
        """
        return parse_schema(data, self.functions, cfg.entity_types)

    def plan_path(self, job_id: str) -> Path:
        """Where a dry run's plan is written."""
        return Path(self.state_dir) / "plans" / f"{job_id}.jsonl"

    def context(self, integration_id: str) -> ConnectorContext:
        """What the integration's connectors are given (their state directory)."""
        return ConnectorContext(
            integration_id=integration_id,
            state_dir=Path(self.state_dir) / "connectors" / integration_id,
            entity_types=self.entity_types,
        )

    def _resolved(self, integration_id: str) -> Resolved:
        resolved = self.resolve(integration_id)
        if resolved is None:
            raise LookupError(integration_id)
        return resolved

    async def provision(
        self,
        integration_id: str,
        entity_type: str,
        object_id: str,
        *,
        dry_run: bool,
        hold: Callable[[str], AbstractAsyncContextManager[None]],
    ) -> tuple[Job, list[dict[str, Any]]]:
        """Sync one object of the integration now (see
        :func:`~sluiced.ondemand.provision_object`). Unless *dry_run*, the integration is
        held for the whole of it, inside ``hold(integration_id)``.

        Raises:
            LookupError: the integration is not configured.
            IntegrationBusy: (from *hold*) not a dry run, and the integration is busy.
            SyncError, trio.TooSlowError: as ``provision_object``.
            Elsewhere: its lease is not valid here (any more); nothing more was written.
        """
        provision = partial(
            provision_object,
            self._resolved(integration_id),
            self.context(integration_id),
            entity_type=entity_type,
            object_id=object_id,
            dry_run=dry_run,
            store=self.store,
            clock=self.clock,
            breakers=self.breakers,
            schema_of=self.schema_of,
            fence=self.fence_for(integration_id) if self.fence_for else None,
            node=self.node,
        )
        if dry_run:  # writes nothing: it may run beside a job
            return await provision()
        try:
            async with hold(integration_id):
                return await provision()
        except LeaseExpired:
            raise Elsewhere(integration_id, None) from None

    async def validate(self, integration_id: str) -> dict[str, dict[str, Any]]:
        """Open the integration's source and target and check them (see
        :func:`~sluiced.ondemand.validate_connectors`).

        Raises:
            LookupError: the integration is not configured.
        """
        resolved = self._resolved(integration_id)
        return await validate_connectors(resolved, self.context(integration_id))

    def source_keyed(self, integration_id: str) -> bool:
        """Whether the integration's target holds objects under their source ids (a
        mirror), as its factory declares
        (:attr:`~sluiced.connectors.ConnectorFactory.keyed_by_source_ids`): the engine
        keeps no links for it, so it has no dry runs and no provisioning on demand,
        only its jobs. Opens nothing.

        Raises:
            LookupError: the integration is not configured.
        """
        return self._resolved(integration_id).target.factory.keyed_by_source_ids
