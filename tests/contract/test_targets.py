"""The target contract (:class:`sluiced.connectors.Target`), run over every target: in
memory, JSONL and CSV files, a SCIM server, and (for what applies to a target keyed by
source ids, which keeps nothing disabled) the Stash mirror."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio

from sluiced.connectors import Op, OpResult, Target


async def apply(target: Target, entity_type: str, ops: Sequence[Op]) -> list[OpResult]:
    with trio.fail_after(60):
        results = list(await target.apply(entity_type, ops))
    assert len(results) == len(ops)
    return results


def creates(peer: Any, ns: Sequence[int]) -> list[Op]:
    return [Op(kind="create", source_id=peer.source_id(n), data=peer.data(n)) for n in ns]


async def test_create_update_disable_enable_and_delete(target_peer: Any) -> None:
    peer = target_peer
    target = peer.open()
    try:
        results = await apply(target, peer.entity_type, creates(peer, range(3)))
        assert all(r.ok and r.target_id for r in results)
        tids = [r.target_id for r in results]
        state = await peer.state(target)
        assert sorted(state) == sorted(tids)
        assert [peer.view(state[t]).name for t in tids] == ["person 0", "person 1", "person 2"]

        changed = peer.data(1, name="renamed")
        update = Op(
            kind="update",
            source_id=peer.source_id(1),
            target_id=tids[1],
            data=changed,
            previous=peer.data(1),
        )
        disable = Op(
            kind="disable", source_id=peer.source_id(2), target_id=tids[2], previous=peer.data(2)
        )
        assert all(r.ok for r in await apply(target, peer.entity_type, [update, disable]))
        state = await peer.state(target)
        assert peer.view(state[tids[1]]).name == "renamed"
        assert peer.view(state[tids[2]]).active is False
        assert peer.view(state[tids[0]]).active is True

        enable = Op(
            kind="update",
            source_id=peer.source_id(2),
            target_id=tids[2],
            data=peer.data(2),
            previous=peer.data(2),
            enable=True,
        )
        delete = Op(kind="delete", source_id=peer.source_id(0), target_id=tids[0])
        assert all(r.ok for r in await apply(target, peer.entity_type, [enable, delete]))
        state = await peer.state(target)
        assert sorted(state) == sorted(tids[1:])
        assert peer.view(state[tids[2]]).active is True
    finally:
        await target.aclose()


async def test_create_update_and_delete_by_a_target_keyed_by_source_ids(
    keyed_target_peer: Any,
) -> None:
    peer = keyed_target_peer
    target = peer.open()
    try:
        results = await apply(target, peer.entity_type, creates(peer, range(3)))
        assert all(r.ok for r in results)
        tids = [r.target_id for r in results]
        assert tids == [peer.source_id(n) for n in range(3)]
        state = await peer.state(target)
        assert sorted(state) == sorted(tids)
        update = Op(
            kind="update",
            source_id=tids[1],
            target_id=tids[1],
            data=peer.data(1, name="renamed"),
            previous=peer.data(1),
        )
        delete = Op(kind="delete", source_id=tids[0], target_id=tids[0])
        disable = Op(kind="disable", source_id=tids[2], target_id=tids[2])
        assert all(r.ok for r in await apply(target, peer.entity_type, [update, delete, disable]))
        state = await peer.state(target)
        assert sorted(state) == [tids[1]] and peer.view(state[tids[1]]).name == "renamed"
        gone = [Op(kind="delete", source_id=tids[0], target_id=tids[0])]  # already gone
        assert all(r.ok for r in await apply(target, peer.entity_type, gone))
        assert sorted(await peer.state(target)) == [tids[1]]
    finally:
        await target.aclose()


async def test_applying_the_same_ops_twice_leaves_what_applying_them_once_did(
    any_target_peer: Any,
) -> None:
    """A batch is replayed after a crash or a cancellation, before its checkpoint: with
    the ops as they were, so a create comes again without a target id."""
    peer = any_target_peer
    target = peer.open()
    try:
        batch = creates(peer, range(3))
        first = await apply(target, peer.entity_type, batch)
        once = await peer.state(target)
        again = await apply(target, peer.entity_type, batch)
        assert [r.ok for r in again] == [True] * 3
        assert [r.target_id for r in again] == [r.target_id for r in first]
        assert await peer.state(target) == once

        tids = [r.target_id for r in first]
        later = [
            Op(
                kind="update",
                source_id=peer.source_id(0),
                target_id=tids[0],
                data=peer.data(0, name="renamed"),
                previous=peer.data(0),
            ),
            Op(
                kind="disable",
                source_id=peer.source_id(1),
                target_id=tids[1],
                previous=peer.data(1),
            ),
            Op(kind="delete", source_id=peer.source_id(2), target_id=tids[2]),
        ]
        assert all(r.ok for r in await apply(target, peer.entity_type, later))
        once = await peer.state(target)
        assert all(r.ok for r in await apply(target, peer.entity_type, later))
        assert await peer.state(target) == once
    finally:
        await target.aclose()


@pytest.mark.parametrize("after", [0.0, 0.002, 0.02])
async def test_an_apply_cancelled_mid_batch_and_replayed_leaves_the_whole_batch(
    any_target_peer: Any, after: float
) -> None:
    peer = any_target_peer
    target = peer.open()
    try:
        batch = creates(peer, range(6))
        with trio.move_on_after(after):
            await target.apply(peer.entity_type, batch)
        results = await apply(target, peer.entity_type, batch)
        assert all(r.ok for r in results)
        state = await peer.state(target)
        assert sorted(state) == sorted(r.target_id for r in results)
        assert sorted(peer.view(o).key for o in state.values()) == sorted(
            peer.view(peer.data(n)).key for n in range(6)
        )
    finally:
        await target.aclose()


async def test_find_and_count_answer_what_the_target_holds_where_it_offers_them(
    any_target_peer: Any,
) -> None:
    peer = any_target_peer
    target = peer.open()
    try:
        with trio.fail_after(30):
            assert await target.count(peer.entity_type) in (0, None)
        tids = [r.target_id for r in await apply(target, peer.entity_type, creates(peer, range(3)))]
        await target.flush()
        with trio.fail_after(30):
            count = await target.count(peer.entity_type)
            keys = [peer.data(0)[peer.key], peer.data(2)[peer.key], "nobody@example.org"]
            found = await target.find(peer.entity_type, peer.key, keys)
        assert count in (3, None)
        if found is not None:
            assert {k: list(v) for k, v in found.items() if v} == {
                keys[0]: [tids[0]],
                keys[1]: [tids[2]],
            }
    finally:
        await target.aclose()


async def test_validate_says_what_it_found(any_target_peer: Any) -> None:
    target = any_target_peer.open()
    try:
        with trio.fail_after(30):
            found = await target.validate()
        assert isinstance(found, str) and found
    finally:
        await target.aclose()


async def test_a_refused_object_is_a_failed_result_and_the_rest_is_applied(
    refusing_target_peer: Any,
) -> None:
    peer = refusing_target_peer
    target = peer.open()
    try:
        batch = [*creates(peer, [0]), peer.refused(), *creates(peer, [1])]
        results = await apply(target, peer.entity_type, batch)
        assert [r.ok for r in results] == [True, False, True]
        assert results[1].error and results[1].target_id is None
        state = await peer.state(target)
        assert sorted(state) == sorted([results[0].target_id, results[2].target_id])
    finally:
        await target.aclose()
