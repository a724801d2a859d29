"""The contracts of the capabilities of targets (:mod:`sluiced.connectors.mirrors`), run
over every target offering them: :class:`~sluiced.connectors.TransactionalTarget` (rows
and the job's checkpoint commit both or neither; the checkpoint read back is what was
committed; checkpoints are dropped exactly as ``over`` says; watermarks) and
:class:`~sluiced.connectors.SourceKeyedTarget` (which ids it lacks)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest
import trio

from sluiced.connectors import Checkpoint, Op, SourceKeyedTarget, TransactionalTarget
from sluiced.models import JobStats

from .test_targets import apply, creates


def checkpoint(job_id: str, seq: int, **watermarks: str) -> Checkpoint:
    return Checkpoint(
        job_id=job_id,
        position={"v": 1, "seq": seq, "cursor": f"c{seq}"},
        stats=asdict(JobStats(processed=seq, created=seq)),
        watermarks=watermarks,
    )


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
            peer.entity_type, creates(peer, [0]), checkpoint=checkpoint("job-1", 1, tag="w1")
        )
        before = await peer.state(target)
        peer.fail_inside(target)
        failed = checkpoint("job-1", 2, **{peer.entity_type: "w2", "tag": "w2"})
        with pytest.raises(Exception, match="injected"):
            await target.apply(
                peer.entity_type, creates(peer, range(1, 1 + ops)), checkpoint=failed
            )
        assert await peer.state(target) == before
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
