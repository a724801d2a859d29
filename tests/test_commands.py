"""Commands sent through a real PostgreSQL database to the node that holds an
integration: the NOTIFY wakes the holder at once, a lost one is made up for by the poll
every heartbeat, and a command no node takes is withdrawn with nothing done."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import trio

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")

from sluiced.cluster.commands import CommandBus, NoAnswer  # noqa: E402

from .test_leases import node, rows  # noqa: E402


class Answers:
    """What the holder answers: each command it ran, echoed back."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, dict[str, Any]]] = []
        self.second = trio.Event()

    async def __call__(self, kind: str, body: Mapping[str, Any]) -> tuple[int, Any]:
        self.ran.append((kind, dict(body)))
        if len(self.ran) == 2:
            self.second.set()
        return 200, {"success": True, "ran": kind}


async def test_the_holder_answers_at_once_when_notified_and_at_its_poll_when_not(
    pg_url: str,
) -> None:
    async with (
        node(pg_url, "a", ttl=30, heartbeat=1.0) as (store_a, a),
        node(pg_url, "b", ttl=30, heartbeat=1.0) as (store_b, b),
    ):
        await a.claim(["hr"])
        holder, sender = CommandBus(store_a, a), CommandBus(store_b, b)
        answers = Answers()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(holder.run, answers)
                await trio.sleep(0.5)  # the listener is up
                began = trio.current_time()
                status, body = await sender.send("hr", "POST /x/pause", {"k": 1})
                notified = trio.current_time() - began
                assert (status, body) == (200, {"success": True, "ran": "POST /x/pause"})
                assert answers.ran == [("POST /x/pause", {"k": 1})]
                assert notified < 0.5, notified  # not the poll: a heartbeat is 1 s
                # A lost notification: the holder finds the command at its next poll.
                with psycopg.connect(pg_url) as conn:
                    conn.execute(
                        "INSERT INTO sluiced.commands (integration_id, kind, body)"
                        " VALUES ('hr', 'POST /x/stop', '{}')"
                    )
                with trio.fail_after(3):
                    await answers.second.wait()
                assert answers.ran[1] == ("POST /x/stop", {})
                for _ in range(100):  # its answer is written just after it ran
                    done = rows(
                        pg_url,
                        "SELECT node_id, result FROM sluiced.commands WHERE kind='POST /x/stop'"
                        " AND done_at IS NOT NULL",
                    )
                    if done:
                        break
                    await trio.sleep(0.02)
                [(taker, result)] = done
                assert taker == "a" and result == {
                    "status": 200,
                    "body": {"success": True, "ran": "POST /x/stop"},
                }
                nursery.cancel_scope.cancel()
        finally:
            await holder.aclose()
            await sender.aclose()


async def test_a_command_no_node_takes_is_withdrawn_and_nothing_is_done(pg_url: str) -> None:
    async with node(pg_url, "b", ttl=30, heartbeat=1.0) as (store_b, b):
        sender = CommandBus(store_b, b, wait=0.5)
        try:
            with pytest.raises(NoAnswer, match=r"no node took the command.*nothing was done"):
                await sender.send("hr", "POST /x/pause", {})
        finally:
            await sender.aclose()
        assert rows(pg_url, "SELECT id FROM sluiced.commands") == []
