"""Built-in plugin ``notify``: a webhook and/or an e-mail when a job fails, an
integration enters or leaves quarantine, or the deletion threshold stops a run.

Settings: the config's ``[notify]`` table and each integration's
``[integrations.<id>.notify]`` (see :mod:`sluiced.notifications`). At most one
notification per integration and kind (``failed``, ``quarantined``, ``recovered``,
``deletions``) is sent per ``every``; the others are logged and dropped. Plans (dry
runs) notify nothing.

The hook only builds the notification and queues it: a worker thread sends it (see
:mod:`.sender`), so a slow or failing server never delays or fails a job.

The webhook receives one JSON object::

    {"kind": "failed", "integrationId": "hr", "summary": "...", "time": "...",
     "jobId": "...", "status": "failed", "error": "...", "errorCode": "...",
     "quarantine": {"reason", "since", "nextAttempt"} or null}
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from sluiced.events import JobEvent
from sluiced.hookspecs import hookimpl
from sluiced.logs import get_logger
from sluiced.models import JobStatus
from sluiced.redact import redact_text

from .sender import Notification, Sender

__all__ = ["RateLimit", "notification_for", "sender", "sluiced_job_event"]

log = get_logger("sluiced.notify")

#: The kind of notification and the ``on`` setting that asks for it.
_SETTING = {
    "failed": "failed",
    "deletions": "deletions",
    "quarantined": "quarantine",
    "recovered": "quarantine",
}


class RateLimit:
    """At most one notification per key per interval (monotonic time)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def allow(self, key: tuple[str, str], interval_s: float, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < interval_s:
                return False
            self._last[key] = now
            return True


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def notification_for(event: JobEvent) -> tuple[str, str, dict[str, Any]] | None:
    """``(kind, summary, payload)`` if *event* is notified, else None."""
    iid = event.integration_id
    payload: dict[str, Any] = {"integrationId": iid, "time": datetime.now(UTC).isoformat()}
    job, state = event.job, event.state
    if event.kind == "job" and job is not None and job.status is JobStatus.FAILED:
        if job.params.get("dry_run"):
            return None
        error = redact_text(job.error or "")
        kind = "deletions" if job.error_code == "TooManyDeletes" else "failed"
        summary = (
            f"{iid}: the deletion threshold stopped job {job.id}: {error}"
            if kind == "deletions"
            else f"{iid}: job {job.id} ({job.type}) failed: {error}"
        )
        payload.update(jobId=job.id, status=job.status.value, error=error, errorCode=job.error_code)
    elif event.kind == "quarantine" and state is not None:
        q = state.quarantine
        kind = "quarantined" if q is not None else "recovered"
        if q is not None:
            summary = f"{iid}: in quarantine ({q.reason}); next attempt {_stamp(q.next_attempt) or 'when started'}"
            payload["quarantine"] = {
                "reason": q.reason,
                "since": _stamp(q.series_began),
                "nextAttempt": _stamp(q.next_attempt),
                "error": redact_text(q.error.message) if q.error is not None else None,
            }
        else:
            summary = f"{iid}: out of quarantine, syncing again"
            payload["quarantine"] = None
    else:
        return None
    payload.update(kind=kind, summary=summary)
    return kind, summary, payload


#: One sender and one rate limit per process (the daemon's).
sender = Sender()
limits = RateLimit()


@hookimpl
def sluiced_job_event(event: JobEvent) -> None:
    settings = event.notify
    if settings is None or not settings.active:
        return
    found = notification_for(event)
    if found is None:
        return
    kind, summary, payload = found
    if not settings.wants(_SETTING[kind]):
        return
    if not limits.allow((event.integration_id, kind), settings.interval.total_seconds()):
        log.info(
            "notification not sent: one was sent lately",
            integration_id=event.integration_id,
            kind=kind,
        )
        return
    body = "\n".join(
        [summary, ""]
        + [
            f"{k}: {v}"
            for k, v in payload.items()
            if k not in ("summary", "kind") and v is not None
        ]
    )
    sender.submit(
        Notification(
            integration_id=event.integration_id,
            kind=kind,
            subject=f"[sluiced] {summary}"[:200],
            body=body,
            payload=payload,
            settings=settings,
        )
    )
