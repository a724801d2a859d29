"""Work on one integration outside its jobs: provisioning one object now, with a trace
of each step, and checking that its source and target can be used.

Both open the integration's connectors themselves and close them whatever happens.
The runner calls them (:meth:`~sluiced.runner.JobRunner.provision`,
:meth:`~sluiced.runner.JobRunner.validate`), holding the integration where needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import trio

from .clock import Clock
from .config import IntegrationConfig
from .connectors import ConnectorContext
from .jobhandle import new_job
from .mapping import Schema
from .mapping.mapper import SchemaMapper
from .models import IntegrationState, Job, JobStatus
from .redact import redact_text, redact_value
from .resolved import Resolved
from .retrying import Breakers
from .store import Store
from .sync import JobControl, SyncEngine

__all__ = ["PROVISION_JOB", "provision_object", "validate_connectors"]

#: The type of the job that records a provisioning on demand (it is never resumed).
PROVISION_JOB = "provision_on_demand"
#: How long a provisioning may take before it fails.
PROVISION_TIMEOUT = 120
#: How long each end may take to answer a check.
VALIDATE_TIMEOUT = 60


class _NoPlan:
    """A dry run of one object: the trace says what would happen; nothing is kept."""

    async def add(self, entries: Sequence[Mapping[str, Any]]) -> None:
        return None


async def provision_object(
    resolved: Resolved,
    ctx: ConnectorContext,
    *,
    entity_type: str,
    object_id: str,
    dry_run: bool,
    store: Store,
    clock: Clock,
    breakers: Breakers,
    schema_of: Callable[[IntegrationConfig, IntegrationState], Schema],
    fence: Callable[[], bool] | None = None,
    node: str | None = None,
) -> tuple[Job, list[dict[str, Any]]]:
    """Sync the object through the engine (or, *dry_run*, say what would happen) and
    return the job that records it (of type :data:`PROVISION_JOB`, run by *node*) and
    the trace of its steps (secrets redacted). Read retries are capped at two attempts.
    Each write to the target is made only while *fence* holds (the engine's, as for a
    job).

    Unless it is a dry run, the job is saved at the end as the record of what was done
    (``completed``, or ``failed`` with the error), whatever happened, cancellation
    included.

    Raises:
        SyncError: the source or target could not be used.
        LeaseExpired: the fence did not hold.
        trio.TooSlowError: it took longer than :data:`PROVISION_TIMEOUT` seconds.
    """
    cfg = resolved.cfg
    now = clock.now()
    params = {"object_id": object_id, "entity_type": entity_type, "dry_run": dry_run}
    job = replace(
        new_job(cfg.id, PROVISION_JOB, now, params),
        status=JobStatus.RUNNING,
        started_at=now,
        node=node,
    )
    schema = schema_of(cfg, await store.get_state(cfg.id))
    source = resolved.source.factory.open_source(resolved.source.settings, ctx)
    target = resolved.target.factory.open_target(resolved.target.settings, ctx)
    logs: list[str] = []

    async def log(level: str, message: str) -> None:
        logs.append(redact_text(message))

    engine = SyncEngine(
        job=job,
        cfg=replace(cfg, retry=replace(cfg.retry, attempts=min(cfg.retry.attempts, 2))),
        source=source,
        target=target,
        store=store,
        clock=clock,
        log=log,
        control=JobControl(),
        breakers=breakers,
        mapper=SchemaMapper(schema),
        plan=_NoPlan() if dry_run else None,
        fence=fence,
    )
    error: Exception | None = None
    steps: list[dict[str, Any]] = []
    try:
        with trio.fail_after(PROVISION_TIMEOUT):
            steps = await engine.provision(entity_type, object_id)
    except Exception as exc:  # recorded with its reason (not as "cancelled"), and raised
        error = exc
        raise
    finally:
        with trio.CancelScope(shield=True):
            await source.aclose()
            await target.aclose()
            if not dry_run:  # the record of what was done, whatever happened
                failed = error is not None or steps == []
                done = replace(
                    engine.job,
                    status=JobStatus.FAILED if failed else JobStatus.COMPLETED,
                    completed_at=clock.now(),
                    progress=100.0,
                    error=redact_text(str(error or "cancelled")) if failed else None,
                    error_code=getattr(error, "code", None) if error else None,
                )
                await store.save_job(done)
    redacted: list[dict[str, Any]] = redact_value(steps)
    return job, redacted


async def validate_connectors(
    resolved: Resolved, ctx: ConnectorContext
) -> dict[str, dict[str, Any]]:
    """Open the integration's source and target and check each; each answers
    ``{"ok", "message"}``, or ``{"ok": false, "code", "message"}`` (never a secret).
    Each is closed after its check."""
    out: dict[str, dict[str, Any]] = {}
    for end, ref in (("source", resolved.source), ("target", resolved.target)):
        try:
            opened = (
                ref.factory.open_source(ref.settings, ctx)
                if end == "source"
                else ref.factory.open_target(ref.settings, ctx)
            )
        except Exception as exc:  # a connector that cannot even be opened fails its check
            out[end] = _failed(exc)
            continue
        try:
            with trio.fail_after(VALIDATE_TIMEOUT):
                out[end] = {"ok": True, "message": redact_text(await opened.validate())}
        except Exception as exc:  # SyncError, OSError, a timeout, or a connector's defect
            out[end] = _failed(exc)
        finally:
            with trio.CancelScope(shield=True):
                await opened.aclose()
    return out


def _failed(exc: Exception) -> dict[str, Any]:
    """A check's answer for *exc*: its code (the error's, else its type) and message."""
    code = getattr(exc, "code", type(exc).__name__)
    return {"ok": False, "code": code, "message": redact_text(str(exc) or code)}
