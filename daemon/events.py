"""Events passed to the ``sluiced_job_event`` hook."""

from __future__ import annotations

from dataclasses import dataclass

from .models import IntegrationState, Job

__all__ = ["JobEvent"]


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    """``kind`` is ``job`` (``job`` changed status), ``quarantine`` (the integration
    entered or left quarantine) or ``disabled``."""

    kind: str
    integration_id: str
    job: Job | None = None
    state: IntegrationState | None = None
