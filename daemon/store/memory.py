"""An in-memory store for fast unit tests. Same contract as the SQLite store."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import trio

from ..changes import Change, ChangeQuery, at_text
from ..models import Escrow, IntegrationState, Job, JobStatus, Link, LogEntry
from .abc import BatchCommit, JobHistory, StagedDeletion, Store
from .history import history_of

__all__ = ["MemoryStore"]

_Key = tuple[str, str]


class MemoryStore(Store):
    def __init__(self, *, log_limit: int = 1000) -> None:
        self.log_limit = log_limit
        self._jobs: dict[str, Job] = {}
        self._logs: dict[str, deque[LogEntry]] = {}
        self._log_seq: dict[str, int] = {}
        self._states: dict[str, IntegrationState] = {}
        self._watermarks: dict[_Key, str] = {}
        self._links: dict[_Key, dict[str, Link]] = {}
        self._escrows: dict[_Key, dict[str, Escrow]] = {}
        self._staged: dict[str, dict[tuple[str, str], StagedDeletion]] = {}
        self._definitions: dict[str, dict[str, Any]] = {}
        #: The provisioning log by integration, in commit order.
        self._changes: dict[str, list[Change]] = {}
        #: The keys of the changes added under one (kept once).
        self._change_keys: set[str] = set()
        self._change_id = 0

    async def _tick(self) -> None:
        # A checkpoint like the real store's, so callers see the same scheduling.
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await self._tick()

    async def save_job(self, job: Job) -> None:
        self._jobs[job.id] = job
        await self._tick()
        self._saw_job(job)

    async def get_job(self, job_id: str) -> Job | None:
        await self._tick()
        return self._jobs.get(job_id)

    async def list_jobs(
        self,
        *,
        statuses: Collection[JobStatus] | None = None,
        integration_id: str | None = None,
        limit: int | None = 20,
    ) -> tuple[list[Job], int]:
        await self._tick()
        found = [
            j
            for j in self._jobs.values()
            if (statuses is None or j.status in statuses)
            and (integration_id is None or j.integration_id == integration_id)
        ]
        found.sort(key=lambda j: (j.created_at, j.id), reverse=True)
        return (found if limit is None else found[:limit]), len(found)

    async def delete_job(self, job_id: str, *, delete_logs: bool) -> bool:
        await self._tick()
        if delete_logs:
            self._logs.pop(job_id, None)
            self._log_seq.pop(job_id, None)
        return self._jobs.pop(job_id, None) is not None

    async def append_logs(self, job_id: str, entries: Sequence[LogEntry]) -> None:
        start = self._log_seq.get(job_id, 0) + 1
        numbered = [replace(e, seq=start + i) for i, e in enumerate(entries)]
        self._log_seq[job_id] = start - 1 + len(numbered)
        self._logs.setdefault(job_id, deque(maxlen=self.log_limit)).extend(numbered)
        await self._tick()
        self._saw_logs(job_id, numbered)

    async def get_logs(
        self, job_id: str, *, limit: int | None = None, after: int | None = None
    ) -> list[LogEntry]:
        await self._tick()
        logs = [e for e in self._logs.get(job_id, ()) if after is None or e.seq > after]
        return logs if limit is None else logs[-limit:] if limit else []

    async def job_history(self, integration_id: str) -> JobHistory:
        await self._tick()
        return history_of(j for j in self._jobs.values() if j.integration_id == integration_id)

    async def get_state(self, integration_id: str) -> IntegrationState:
        await self._tick()
        return self._states.get(integration_id) or IntegrationState(integration_id=integration_id)

    async def put_state(self, state: IntegrationState) -> None:
        self._states[state.integration_id] = state
        await self._tick()

    async def list_states(self) -> list[IntegrationState]:
        await self._tick()
        return [self._states[k] for k in sorted(self._states)]

    async def delete_integration(self, integration_id: str, *, keep_changes: bool = False) -> None:
        self._states.pop(integration_id, None)
        for job_id in [j.id for j in self._jobs.values() if j.integration_id == integration_id]:
            del self._jobs[job_id]
            self._logs.pop(job_id, None)
            self._log_seq.pop(job_id, None)
        for table in (self._watermarks, self._links, self._escrows):
            for key in [k for k in table if k[0] == integration_id]:
                del table[key]
        self._staged.pop(integration_id, None)
        self._definitions.pop(integration_id, None)
        if not keep_changes:
            self._changes.pop(integration_id, None)
        await self._tick()

    async def put_definition(self, integration_id: str, table: Mapping[str, Any]) -> None:
        self._definitions[integration_id] = json.loads(json.dumps(table))
        await self._tick()

    async def list_definitions(self) -> dict[str, dict[str, Any]]:
        await self._tick()
        return json.loads(json.dumps(self._definitions))  # type: ignore[no-any-return]

    async def get_watermarks(self, integration_id: str) -> Mapping[str, str]:
        await self._tick()
        return {k[1]: v for k, v in self._watermarks.items() if k[0] == integration_id}

    async def clear_watermarks(self, integration_id: str) -> None:
        for key in [k for k in self._watermarks if k[0] == integration_id]:
            del self._watermarks[key]
        await self._tick()

    async def get_links(
        self, integration_id: str, entity_type: str, source_ids: Collection[str]
    ) -> dict[str, Link]:
        await self._tick()
        links = self._links.get((integration_id, entity_type), {})
        return {i: links[i] for i in source_ids if i in links}

    async def unseen_links(
        self, integration_id: str, entity_type: str, pass_id: str, *, after: str | None, limit: int
    ) -> list[Link]:
        await self._tick()
        links = self._links.get((integration_id, entity_type), {})
        ids = sorted(
            i
            for i, link in links.items()
            if link.seen_pass != pass_id and (after is None or i > after)
        )
        return [links[i] for i in ids[:limit]]

    async def count_links(self, integration_id: str, entity_type: str) -> int:
        await self._tick()
        return len(self._links.get((integration_id, entity_type), {}))

    async def clear_links(self, integration_id: str) -> None:
        for key in [k for k in self._links if k[0] == integration_id]:
            del self._links[key]
        await self._tick()

    async def list_escrows(
        self,
        integration_id: str,
        *,
        entity_type: str | None = None,
        kind: str | None = None,
        due_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[Escrow]:
        await self._tick()
        found = [
            e
            for (iid, et), table in self._escrows.items()
            if iid == integration_id and (entity_type is None or et == entity_type)
            for e in table.values()
            if (kind is None or e.kind == kind)
            and (due_before is None or e.next_retry <= due_before)
        ]
        found.sort(key=lambda e: (e.next_retry, e.entity_type, e.object_id))
        return found if limit is None else found[:limit]

    async def count_escrows(self) -> dict[tuple[str, str], int]:
        await self._tick()
        return {key: len(table) for key, table in sorted(self._escrows.items()) if table}

    async def drop_escrow(
        self,
        integration_id: str,
        entity_type: str,
        object_id: str,
        *,
        log: Callable[[Escrow], Change] | None = None,
    ) -> bool:
        await self._tick()
        escrow = self._escrows.get((integration_id, entity_type), {}).pop(object_id, None)
        if escrow is not None and log is not None:
            self._change_id += 1
            change = replace(log(escrow), id=self._change_id)
            self._changes.setdefault(integration_id, []).append(change)
        return escrow is not None

    async def retry_escrow_at(
        self, integration_id: str, entity_type: str, object_id: str, when: datetime
    ) -> bool:
        await self._tick()
        table = self._escrows.get((integration_id, entity_type), {})
        if object_id not in table:
            return False
        table[object_id] = replace(table[object_id], next_retry=when)
        return True

    async def clear_escrows(
        self, integration_id: str, *, log: Callable[[Escrow], Change] | None = None
    ) -> None:
        for key in [k for k in self._escrows if k[0] == integration_id]:
            table = self._escrows.pop(key)
            if log is None:
                continue
            for escrow in table.values():
                self._change_id += 1
                change = replace(log(escrow), id=self._change_id)
                self._changes.setdefault(integration_id, []).append(change)
        await self._tick()

    async def list_staged_deletions(self, integration_id: str) -> list[StagedDeletion]:
        await self._tick()
        staged = self._staged.get(integration_id, {})
        return [staged[k] for k in sorted(staged)]

    async def clear_staged_deletions(self, integration_id: str) -> None:
        self._staged.pop(integration_id, None)
        await self._tick()

    async def list_changes(self, integration_id: str, query: ChangeQuery) -> list[Change]:
        await self._tick()
        q = query
        since = at_text(q.since) if q.since is not None else None
        until = at_text(q.until) if q.until is not None else None
        found = []
        for c in self._changes.get(integration_id, ()):
            at = at_text(c.at)
            if (
                (q.object_id is None or q.object_id in (c.source_id, c.target_id))
                and (q.entity_type is None or c.entity_type == q.entity_type)
                and (not q.actions or c.action in q.actions)
                and (q.job_id is None or c.job_id == q.job_id)
                and (since is None or at >= since)
                and (until is None or at <= until)
                and (q.before is None or (at, c.id or 0) < q.before)
            ):
                found.append((at, c.id or 0, c))
        found.sort(key=lambda f: f[:2], reverse=True)
        return [f[2] for f in found[: q.limit]]

    async def add_changes(self, changes: Sequence[tuple[str, Change]]) -> int:
        await self._tick()
        return self._add_keyed(changes)

    def _add_keyed(self, changes: Sequence[tuple[str, Change]]) -> int:
        added = 0
        for key, change in changes:
            if key in self._change_keys:
                continue
            self._change_keys.add(key)
            self._change_id += 1
            log = self._changes.setdefault(change.integration_id, [])
            log.append(replace(change, id=self._change_id))
            added += 1
        return added

    async def logged_integrations(self) -> list[str]:
        await self._tick()
        return sorted(ident for ident, log in self._changes.items() if log)

    async def prune_changes(self, integration_id: str, before: datetime, *, limit: int) -> int:
        await self._tick()
        log = self._changes.get(integration_id, [])
        cutoff = at_text(before)
        old = sorted((at_text(c.at), c.id or 0) for c in log if at_text(c.at) < cutoff)[:limit]
        gone = {i for _, i in old}
        self._changes[integration_id] = [c for c in log if c.id not in gone]
        return len(gone)

    async def commit_batch(self, batch: BatchCommit) -> None:
        iid = batch.job.integration_id
        key = (iid, batch.entity_type)
        links = self._links.setdefault(key, {})
        escrows = self._escrows.setdefault(key, {})
        logged = [  # a drop only of an escrow still there (see BatchCommit.changes)
            ch
            for ch in batch.changes
            if ch.action != "drop" or ch.source_id in self._escrows.get((iid, ch.entity_type), {})
        ]
        self._jobs[batch.job.id] = batch.job
        for link in batch.upsert_links:
            links[link.source_id] = link
        for sid in batch.delete_links:
            links.pop(sid, None)
        if batch.seen_pass is not None:
            for sid in batch.seen_ids:
                if sid in links:
                    links[sid] = replace(links[sid], seen_pass=batch.seen_pass)
        for oid in batch.remove_escrows:
            escrows.pop(oid, None)
        for escrow in batch.add_escrows:
            escrows[escrow.object_id] = escrow
        staged = self._staged.setdefault(iid, {})
        for d in batch.staged_deletions:
            staged[(d.entity_type, d.source_id)] = d
        for stale in batch.stale_watermarks:
            self._watermarks.pop((iid, stale), None)
        if batch.pass_complete and batch.watermark is not None:
            self._watermarks[key] = batch.watermark
        if batch.pass_complete and batch.exhaustive:
            for oid in [
                o for o, e in escrows.items() if e.kind == "source" and e.pass_id != batch.seen_pass
            ]:
                del escrows[oid]
        log = self._changes.setdefault(iid, [])
        for change in logged:
            self._change_id += 1
            log.append(replace(change, id=self._change_id))
        self._add_keyed(batch.keyed_changes)
        await self._tick()
        self._saw_job(batch.job)
