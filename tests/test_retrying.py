"""Retry waits end at once when their job is asked to stop or pause (trio virtual time)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import trio

from sluiced.backoff import CircuitBreaker
from sluiced.config import RetryPolicy
from sluiced.engine import Interrupted
from sluiced.errors import TransientError
from sluiced.models import JobType
from sluiced.retrying import RetryWaits, call_with_retry, job_retry_waits, retry_wait

from .test_engine import Env

SLOW = RetryPolicy(attempts=10, base=timedelta(seconds=60), cap=timedelta(seconds=600))


async def always_down() -> None:
    raise TransientError("down")


@pytest.mark.parametrize("kind", ["stop", "pause"])
async def test_a_request_ends_the_retry_wait_at_once(
    autojump_clock: trio.abc.Clock, kind: str
) -> None:
    waits = RetryWaits()
    began = trio.current_time()

    async def request() -> None:
        await trio.sleep(5)
        waits.interrupt(kind)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request)
        with job_retry_waits(waits), pytest.raises(Interrupted, match=kind):
            await call_with_retry(
                always_down, policy=SLOW, breaker=CircuitBreaker("x", threshold=100)
            )
    assert trio.current_time() - began == pytest.approx(5)


async def test_a_wait_after_the_request_does_not_sleep(autojump_clock: trio.abc.Clock) -> None:
    waits = RetryWaits()
    waits.interrupt("stop")
    waits.interrupt("pause")  # the first request stays
    began = trio.current_time()
    with job_retry_waits(waits), pytest.raises(Interrupted, match="stop"):
        await retry_wait(60)
    assert trio.current_time() == began


async def test_outside_a_job_a_wait_is_a_plain_sleep(autojump_clock: trio.abc.Clock) -> None:
    began = trio.current_time()
    await retry_wait(60)
    assert trio.current_time() - began == pytest.approx(60)


async def test_a_stop_during_a_read_retry_stops_at_the_last_checkpoint(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    env.cfg = replace(env.cfg, retry=SLOW)
    env.fill(25)
    env.source.fail("page", after=1)  # the second page fails: a 60 s wait before the retry
    waits = RetryWaits()
    began = trio.current_time()

    async def stop_soon() -> None:
        await trio.sleep(5)
        env.control.stop_requested = True
        waits.interrupt("stop")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_soon)
        with job_retry_waits(waits), pytest.raises(Interrupted, match="stop"):
            await env.run(JobType.FULL)
    assert trio.current_time() - began == pytest.approx(5)
    assert len(env.target.plain()) == 10  # the page read before the failure, no more
    saved = await env.store.get_job("job-1")
    assert saved is not None and saved.checkpoint is not None
    assert saved.checkpoint["phase"] == "read" and saved.checkpoint["cursor"] == "u0009"
    assert await env.store.get_watermarks("hr") == {}  # the read was not taken for complete
