"""A job's server-sent events (``GET /api/sync/jobs/{jobId}/events``), pushed from the
daemon's :class:`~sluiced.jobfeed.JobFeed` as the store records them.

Events, in order:

* ``progress``: the job (as ``GET /api/sync/jobs/{jobId}`` shows it, without its log),
  first as it is, then whenever it changes (saved, or its progress in memory, looked at
  every second; a job another node runs, whose writes this node's feed does not see, is
  read from the store every second, its log lines too);
* ``log``: one per log line, ``id:`` its number in the job's log. A client that
  reconnects with ``Last-Event-ID`` gets the lines after that one (and the job as it
  is), none twice and none missing;
* ``error``: ``{"code": "LogsTrimmed", "missed": n, ...}`` when lines the client has
  not seen are no longer in the store (``job_log_limit``); the stream goes on;
* ``end``: ``{"status": ...}`` once the job completed, failed, stopped or paused and its
  run wrote its last line; the stream then closes.

A comment line (``: keep-alive``) is sent after :data:`KEEPALIVE` seconds without an
event, so proxies and clients do not time the stream out. A client too slow to keep up
with the feed loses nothing: it is caught up from the store's log. A stream the web
console opened with a session ends when the session does
(:func:`~sluiced.api.auth.while_session_lasts`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import trio

from ..jobfeed import FellBehind, JobFeed, JobUpdate
from ..models import Job, JobStatus, LogEntry
from .views import job_json, stamp

__all__ = ["KEEPALIVE", "LIVE_EVERY", "JobRecords", "job_event_stream", "last_event_id"]


class JobRecords(Protocol):
    """Where a job and its log are read from (the store, or the control interface)."""

    async def get_job(self, job_id: str) -> Job | None: ...

    async def get_logs(self, job_id: str, *, after: int | None = None) -> list[LogEntry]: ...


KEEPALIVE = 15.0
LIVE_EVERY = 1.0


def last_event_id(header: str | None) -> int:
    """The log line a client saw last, from its ``Last-Event-ID`` (0: none, or not ours)."""
    value = (header or "").strip()
    return int(value) if value.isdigit() and len(value) < 19 else 0


def _event(name: str, data: Any, ident: int | None = None) -> str:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n"


def _over(job: Job) -> bool:
    return job.status.terminal or job.status is JobStatus.PAUSED


async def job_event_stream(
    job_id: str,
    *,
    store: JobRecords,
    feed: JobFeed,
    running: Callable[[str], trio.Event | None],
    live: Callable[[Job], Job] = lambda job: job,
    after: int = 0,
    keepalive: float = KEEPALIVE,
) -> AsyncIterator[str]:
    """The events of *job_id* after log line *after* (see the module docstring).

    *running* gives the event set when the job's run has ended (everything it logs is
    logged by then), or None if it is not running here (then the job and its log are
    read from *store* every :data:`LIVE_EVERY` seconds: another node may run it); *live*
    overlays a running job's progress as its run holds it in memory (looked at as
    often).
    """
    last_seq = after
    shown: dict[str, Any] | None = None

    def lines(entries: Any) -> list[str]:
        nonlocal last_seq
        out: list[str] = []
        fresh: list[LogEntry] = [e for e in entries if e.seq > last_seq]
        if fresh and last_seq and fresh[0].seq > last_seq + 1:
            missed = fresh[0].seq - last_seq - 1
            out.append(
                _event(
                    "error",
                    {
                        "code": "LogsTrimmed",
                        "missed": missed,
                        "message": f"{missed} log lines are no longer in the store"
                        " (job_log_limit keeps the newest)",
                    },
                )
            )
        for e in fresh:
            data = {"timestamp": stamp(e.timestamp), "level": e.level, "message": e.message}
            out.append(_event("log", data, e.seq))
            last_seq = e.seq
        return out

    def progress(job: Job) -> list[str]:
        nonlocal shown
        current = job_json(job)
        if current == shown:
            return []
        shown = current
        return [_event("progress", current)]

    while True:  # once, and again each time the client fell behind the feed
        with feed.subscribe(job_id) as sub:
            job = await store.get_job(job_id)
            if job is None:  # deleted meanwhile
                yield _event("end", {"status": "deleted"})
                return
            for text in progress(live(job)) + lines(await store.get_logs(job_id, after=last_seq)):
                yield text
            quiet_since = trio.current_time()
            draining = False  # the run ended: read what is buffered, then end
            try:
                while True:
                    if not draining and _over(job):
                        done = running(job_id)
                        if done is not None:
                            await done.wait()  # its last lines are in the buffer by then
                        draining = True
                    if draining:
                        next_update = sub.receive_nowait()
                        if next_update is None:
                            break
                        update = next_update
                    else:
                        with trio.move_on_after(min(keepalive, LIVE_EVERY)) as waited:
                            update = await sub.receive()
                        if waited.cancelled_caught and running(job_id) is None:
                            stored = await store.get_job(job_id)
                            if stored is None:  # deleted meanwhile
                                yield _event("end", {"status": "deleted"})
                                return
                            job = stored
                            logged = await store.get_logs(job_id, after=last_seq)
                            for text in progress(live(job)) + lines(logged):
                                yield text
                                quiet_since = trio.current_time()
                        if waited.cancelled_caught:
                            # The run's progress moves in memory between its saves.
                            for text in progress(live(job)):
                                yield text
                                quiet_since = trio.current_time()
                            if trio.current_time() - quiet_since >= keepalive:
                                yield ": keep-alive\n\n"
                                quiet_since = trio.current_time()
                            continue
                    quiet_since = trio.current_time()
                    if isinstance(update, JobUpdate):
                        job = update.job
                        for text in progress(live(job)):
                            yield text
                    else:
                        for text in lines(update.entries):
                            yield text
            except FellBehind:
                continue  # read what was missed from the store
        yield _event("end", {"status": job.status.value})
        return
