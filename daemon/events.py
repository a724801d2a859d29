"""Events passed to the ``sluiced_job_event`` hook."""

from __future__ import annotations

from dataclasses import dataclass

from .models import IntegrationState, Job
from .notifications import NotifySettings

__all__ = ["JobEvent"]


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    """``kind`` is ``job`` (``job`` changed status), ``quarantine`` (the integration
    entered or left quarantine: ``state.quarantine`` says which) or ``disabled``.

    ``notify`` is the integration's notification settings (its ``notify`` table over
    the config's), filled in by the daemon when it passes the event to plugins.
    """

    kind: str
    integration_id: str
    job: Job | None = None
    state: IntegrationState | None = None
    notify: NotifySettings | None = None
