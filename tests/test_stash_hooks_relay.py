"""Hooks kept for the node that runs the integration (``plugins/stash/relay.py``), with a
control interface that stands for a node of a cluster: which node holds the integration,
and what the holder answers each batch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from itertools import pairwise
from typing import Any, cast

import trio

from sluiced.cluster import Elsewhere
from sluiced.control import Control
from sluiced.plugins.stash.coalesce import HookTarget, coalescer
from sluiced.plugins.stash.relay import AGAIN, KEEP_TRYING, KIND, relay
from sluiced.store import StoreUnavailable

TARGET = HookTarget(id="stash", entity_types=("performer", "scene"), delay=1.0, longest=60.0)
Answer = tuple[int, Any] | Exception


class Node:
    """A node that does not hold the integration (until ``held``), whose batches the
    holder answers with ``answers`` in turn (then 202), each after ``takes`` seconds."""

    def __init__(self, nursery: trio.Nursery, answers: list[Answer] | None = None) -> None:
        self.nursery = nursery
        self.held = False
        #: How many times the holder cannot be read (the store out of reach).
        self.unreadable = 0
        self.answers = list(answers or [])
        self.takes = 0.1
        self.sent: list[tuple[float, list[dict[str, str]]]] = []

    async def here(self, integration_id: str) -> None:
        if self.unreadable:
            self.unreadable -= 1
            raise StoreUnavailable("the store is out of reach")
        if not self.held:
            raise Elsewhere(integration_id, "n2")

    async def forward(
        self, integration_id: str, kind: str, body: Mapping[str, Any]
    ) -> tuple[int, Any]:
        assert (integration_id, kind, body["integrationId"]) == ("stash", KIND, "stash")
        self.sent.append((trio.current_time(), list(body["changes"])))
        await trio.sleep(self.takes)
        answer = self.answers.pop(0) if self.answers else (202, {})
        if isinstance(answer, Exception):
            raise answer
        return answer

    def start_soon(self, work: Callable[[], Awaitable[None]], *, name: str) -> None:
        if name == "stash hooks to stash":  # the relay's task (not the coalescer's)
            self.nursery.start_soon(work)


def scene(ident: int) -> dict[str, Any]:
    return {"type": "Scene.Update.Post", "id": ident}


async def test_the_first_change_goes_at_once_and_the_next_in_few_batches(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        node = Node(nursery)
        ctl = cast(Control, node)
        began = trio.current_time()
        relay(ctl).add(ctl, TARGET, [scene(1)])
        await trio.sleep(0.05)  # on its way
        for n in range(2, 40):  # a burst over 2 seconds, with repeats
            relay(ctl).add(ctl, TARGET, [scene(n % 7 + 2), {"type": "Tag.Update.Post", "id": 5}])
            await trio.sleep(0.05)
    times = [round(t - began, 2) for t, _ in node.sent]
    assert times[0] == 0 and len(node.sent) <= 6, times
    assert all(b - a >= TARGET.delay / 2 for a, b in pairwise(times)), times
    assert node.sent[0][1] == [{"type": "Scene.Update.Post", "id": "1"}]
    later = [change for _, batch in node.sent[1:] for change in batch]
    assert {c["id"] for c in later} == {str(n) for n in range(2, 9)} | {"5"}
    for _, batch in node.sent:  # each distinct change once a batch
        assert len(batch) == len({(c["type"], c["id"]) for c in batch})
    assert not relay(ctl).pending.get("stash") and not relay(ctl).sending


async def test_a_batch_nobody_took_is_sent_again_then_kept_here_once_held(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        no_answer = StoreUnavailable("no node took the command")
        lease_lost = (409, {"error": {"code": "LeaseLost", "message": "lease", "field": None}})
        node = Node(nursery, [no_answer, lease_lost, (503, {"error": {"code": "x"}})])
        ctl = cast(Control, node)
        node.unreadable = 1  # the first time, who holds it cannot be read
        relay(ctl).add(ctl, TARGET, [scene(3), {"type": "Performer.Destroy.Post", "id": 4}])
        await trio.sleep(0.5)
        assert node.sent == []
        relay(ctl).add(ctl, TARGET, [scene(6)])  # joins the batch sent again
        await trio.sleep(3 * AGAIN)
        assert [len(batch) for _, batch in node.sent] == [3, 3, 3]
        node.held = True  # this node took the integration over: it gathers them itself
    assert len(node.sent) == 3
    gathered = coalescer(ctl).pending["stash"]
    assert gathered.reads == {"scene": {"3", "6"}} and gathered.passes == {"performer"}


async def test_a_refused_batch_is_dropped_and_one_nobody_takes_is_dropped_in_the_end(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        refused = (409, {"error": {"code": "Conflict", "message": "not a mirror", "field": None}})
        node = Node(nursery, [refused])
        ctl = cast(Control, node)
        relay(ctl).add(ctl, TARGET, [scene(3)])
    assert len(node.sent) == 1 and not relay(ctl).pending.get("stash")

    async with trio.open_nursery() as nursery:
        node = Node(nursery, [StoreUnavailable("no node took it")] * 1000)
        ctl = cast(Control, node)
        began = trio.current_time()
        relay(ctl).add(ctl, TARGET, [scene(3)])
    assert KEEP_TRYING < trio.current_time() - began < KEEP_TRYING + 2 * (AGAIN + node.takes)
    assert not relay(ctl).pending.get("stash") and not relay(ctl).sending
