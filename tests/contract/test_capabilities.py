"""The contracts of the capabilities of targets (:mod:`sluiced.connectors.mirrors`), run
over every target offering them: :class:`~sluiced.connectors.TransactionalTarget` (rows,
the job's checkpoint and the outbox's rows commit all or none; the checkpoint and the
outbox read back are what was committed, after reopening too; the outbox is moved into
the store exactly once; checkpoints are dropped exactly as ``over`` says; watermarks)
and :class:`~sluiced.connectors.SourceKeyedTarget` (which ids it lacks)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pytest
import trio

from sluiced.changes import Change, ChangeQuery
from sluiced.connectors import Checkpoint, Op, SourceKeyedTarget, TransactionalTarget
from sluiced.models import JobStats
from sluiced.store import MemoryStore
from sluiced.sync._changes import outboxed
from sluiced.sync._outbox import move_outbox

from .test_targets import apply, creates


def checkpoint(
    job_id: str,
    seq: int,
    *,
    changes: int = 0,
    logged: tuple[str, ...] = (),
    **watermarks: str,
) -> Checkpoint:
    """The checkpoint of *job_id*'s commit *seq*, with *changes* rows for the outbox
    (see :func:`change_keys`) and the keys *logged* to remove from it."""
    return Checkpoint(
        job_id=job_id,
        position={"v": 1, "seq": seq, "cursor": f"c{seq}"},
        stats=asdict(JobStats(processed=seq, created=seq)),
        watermarks=watermarks,
        changes={k: outboxed(change(k)) for k in change_keys(job_id, seq, changes)},
        logged=logged,
    )


def change_keys(job_id: str, seq: int, n: int) -> list[str]:
    return [f"{job_id}/r/{seq}/{i}" for i in range(n)]


def change(key: str) -> Change:
    job_id, _, seq, i = key.split("/")
    return Change(
        integration_id="mirror",
        job_id=job_id,
        entity_type="performer",
        source_id=f"{seq}{i}",
        target_id=f"{seq}{i}",
        action="create",
        at=datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
    )


class _Ctx:
    """What :func:`move_outbox` uses of a job's context: the store, the job's log."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.logs: list[str] = []

    async def log(self, level: str, message: str) -> None:
        self.logs.append(message)


def transactional(peer: Any) -> Any:
    target = peer.open()
    assert isinstance(target, TransactionalTarget) and isinstance(target, SourceKeyedTarget)
    return target


async def test_the_checkpoint_read_back_is_the_one_committed_last(keyed_target_peer: Any) -> None:
    peer = keyed_target_peer
    target = transactional(peer)
    try:
        assert await target.checkpoint("job-1") is None
        first = checkpoint("job-1", 1)
        await target.apply(peer.entity_type, creates(peer, range(2)), checkpoint=first)
        found = await target.checkpoint("job-1")
        assert found is not None
        assert (found.job_id, dict(found.position), dict(found.stats)) == (
            "job-1",
            dict(first.position),
            dict(first.stats),
        )
        later = checkpoint("job-1", 2)
        await target.apply(peer.entity_type, [], checkpoint=later)  # no ops: the checkpoint
        found = await target.checkpoint("job-1")
        assert found is not None and dict(found.position) == dict(later.position)
        assert await target.checkpoint("job-2") is None
    finally:
        await target.aclose()
    reopened = transactional(peer)  # it is the target's: it outlives the connection
    try:
        found = await reopened.checkpoint("job-1")
        assert found is not None and dict(found.stats) == dict(later.stats)
    finally:
        await reopened.aclose()


@pytest.mark.parametrize("ops", [0, 2])
async def test_a_failure_inside_the_transaction_commits_neither_rows_nor_checkpoint(
    keyed_target_peer: Any, ops: int
) -> None:
    peer = keyed_target_peer
    target = transactional(peer)
    try:
        await target.apply(
            peer.entity_type,
            creates(peer, [0]),
            checkpoint=checkpoint("job-1", 1, changes=2, tag="w1"),
        )
        before = await peer.state(target)
        peer.fail_inside(target)
        failed = checkpoint(
            "job-1",
            2,
            changes=3,
            logged=("job-1/r/1/0",),
            **{peer.entity_type: "w2", "tag": "w2"},
        )
        with pytest.raises(Exception, match="injected"):
            await target.apply(
                peer.entity_type, creates(peer, range(1, 1 + ops)), checkpoint=failed
            )
        assert await peer.state(target) == before
        assert list(await target.outbox(100)) == change_keys("job-1", 1, 2)
        found = await target.checkpoint("job-1")
        assert found is not None and found.position["seq"] == 1
        assert dict(await target.watermarks()) == {"tag": "w1"}
        assert await target.missing(peer.entity_type, [peer.source_id(1)]) == [peer.source_id(1)]
    finally:
        await target.aclose()


async def test_forget_checkpoints_drops_exactly_those_over_says(keyed_target_peer: Any) -> None:
    peer = keyed_target_peer
    target = transactional(peer)
    jobs = [f"job-{n}" for n in range(5)]
    try:
        for n, job in enumerate(jobs):
            await target.apply(peer.entity_type, [], checkpoint=checkpoint(job, n + 1))
        asked: list[str] = []

        async def over(job_id: str) -> bool:
            asked.append(job_id)
            await trio.lowlevel.checkpoint()
            return job_id in ("job-1", "job-3")

        assert await target.forget_checkpoints(over) == 2
        assert sorted(asked) == jobs
        held = {j: await target.checkpoint(j) for j in jobs}
        assert sorted(j for j, cp in held.items() if cp is not None) == ["job-0", "job-2", "job-4"]
        kept = held["job-2"]
        assert kept is not None and kept.position["seq"] == 3

        async def never(job_id: str) -> bool:
            return False

        assert await target.forget_checkpoints(never) == 0
    finally:
        await target.aclose()


async def test_watermarks_are_those_committed_with_the_passes_that_completed(
    keyed_target_peer: Any,
) -> None:
    peer = keyed_target_peer
    target = transactional(peer)
    try:
        assert dict(await target.watermarks()) == {}
        await target.apply(peer.entity_type, creates(peer, [0]), checkpoint=checkpoint("j", 1))
        assert dict(await target.watermarks()) == {}  # a page: no pass completed
        done = checkpoint("j", 2, **{peer.entity_type: "2025-06-01T12:00:00"})
        await target.apply(peer.entity_type, [], checkpoint=done)
        assert dict(await target.watermarks()) == {peer.entity_type: "2025-06-01T12:00:00"}
        other = checkpoint("j", 3, tag="2025-06-02T00:00:00")
        await target.apply("tag", [], checkpoint=other)
        assert dict(await target.watermarks()) == {
            peer.entity_type: "2025-06-01T12:00:00",
            "tag": "2025-06-02T00:00:00",
        }
        again = checkpoint("j", 4, **{peer.entity_type: "2025-06-03T00:00:00"})
        await target.apply(peer.entity_type, [], checkpoint=again)
        assert (await target.watermarks())[peer.entity_type] == "2025-06-03T00:00:00"
    finally:
        await target.aclose()


async def test_missing_names_the_ids_the_target_lacks_in_the_order_given(
    keyed_target_peer: Any,
) -> None:
    peer = keyed_target_peer
    target = transactional(peer)
    try:
        sid = peer.source_id
        assert await target.missing(peer.entity_type, []) == []
        assert await target.missing(peer.entity_type, [sid(4), sid(1)]) == [sid(4), sid(1)]
        await apply(target, peer.entity_type, creates(peer, [0, 2]))
        asked = [sid(5), sid(2), sid(1), sid(0), sid(3)]
        assert await target.missing(peer.entity_type, asked) == [sid(5), sid(1), sid(3)]
        delete = Op(kind="delete", source_id=sid(2), target_id=sid(2))
        await apply(target, peer.entity_type, [delete])
        assert await target.missing(peer.entity_type, [sid(2), sid(0)]) == [sid(2)]
    finally:
        await target.aclose()


async def test_the_outbox_holds_what_was_committed_until_its_rows_are_removed(
    keyed_target_peer: Any,
) -> None:
    peer = keyed_target_peer
    target = transactional(peer)
    try:
        assert dict(await target.outbox(100)) == {}
        await target.apply(peer.entity_type, creates(peer, [0]), checkpoint=checkpoint("a", 1))
        assert dict(await target.outbox(100)) == {}  # a commit without changes
        await target.apply(
            peer.entity_type, creates(peer, [1]), checkpoint=checkpoint("a", 2, changes=3)
        )
        await target.apply(peer.entity_type, [], checkpoint=checkpoint("b", 1, changes=2))
    finally:
        await target.aclose()
    reopened = transactional(peer)  # the outbox is the target's: it outlives the connection
    try:
        held = await reopened.outbox(100)
        keys = [*change_keys("a", 2, 3), *change_keys("b", 1, 2)]
        assert list(held) == keys  # the smallest keys first
        assert held["a/r/2/1"] == outboxed(change("a/r/2/1"))
        assert list(await reopened.outbox(2)) == keys[:2]
        # A commit removes the rows the store has, and adds its own.
        done = checkpoint("a", 3, changes=1, logged=("a/r/2/0", "a/r/2/1", "gone/r/1/0"))
        await reopened.apply(peer.entity_type, [], checkpoint=done)
        assert list(await reopened.outbox(100)) == ["a/r/2/2", "a/r/3/0", *keys[3:]]
        await reopened.forget_changes(["a/r/2/2", "b/r/1/1", "gone/r/1/0"])
        assert list(await reopened.outbox(100)) == ["a/r/3/0", "b/r/1/0"]
    finally:
        await reopened.aclose()


async def test_the_outbox_is_moved_into_the_store_exactly_once(keyed_target_peer: Any) -> None:
    peer = keyed_target_peer
    target = transactional(peer)
    store = MemoryStore()
    try:
        for seq in (1, 2, 3):
            cp = checkpoint("job-1", seq, changes=400)
            await target.apply(peer.entity_type, creates(peer, [seq]), checkpoint=cp)
        # The store saved the first commit's changes before the process died.
        saved = change_keys("job-1", 1, 400)
        assert await store.add_changes([(k, change(k)) for k in saved]) == 400
        ctx = _Ctx(store)
        assert await move_outbox(ctx, target, logging=True) == 800  # type: ignore[arg-type]
        assert dict(await target.outbox(100)) == {}
        assert await move_outbox(ctx, target, logging=True) == 0  # type: ignore[arg-type]
        logged = await store.list_changes("mirror", ChangeQuery(limit=2000))
        assert len(logged) == 1200
        assert len({(c.source_id, c.job_id) for c in logged}) == 1200
        assert ctx.logs == [
            "800 changes the target committed before the store heard of them were added to"
            " the provisioning log"
        ]
    finally:
        await target.aclose()
