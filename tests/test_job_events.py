"""The job event stream in trio virtual time, on a MemoryStore and a JobFeed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import trio
import trio.testing

from sluiced.api.sse import job_event_stream, last_event_id
from sluiced.jobfeed import FellBehind, JobFeed
from sluiced.models import Job, JobStatus, LogEntry
from sluiced.store import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
JOB = Job(id="j1", integration_id="hr", type="full_sync", created_at=T0, status=JobStatus.RUNNING)


def line(n: int) -> LogEntry:
    return LogEntry(timestamp=T0, level="info", message=f"line {n}")


async def setup(*, log_limit: int = 1000, buffer: int = 1000) -> tuple[MemoryStore, JobFeed]:
    store, feed = MemoryStore(log_limit=log_limit), JobFeed(buffer)
    store.watcher = feed
    await store.save_job(JOB)
    return store, feed


def parse(chunks: list[str]) -> list[tuple[str, str]]:
    """(event or ":" for a comment, id or data)"""
    out = []
    for chunk in chunks:
        if chunk.startswith(":"):
            out.append((":", chunk.strip()))
            continue
        fields = dict(f.split(": ", 1) for f in chunk.strip().split("\n"))
        out.append((fields["event"], fields.get("id", fields["data"])))
    return out


async def collect(store: MemoryStore, feed: JobFeed, out: list[str], **kw: object) -> None:
    async for chunk in job_event_stream(
        "j1",
        store=store,
        feed=feed,
        running=lambda _: None,
        **kw,  # type: ignore[arg-type]
    ):
        out.append(chunk)


async def test_lines_are_pushed_with_ids_and_a_keep_alive_comes_when_quiet(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, feed = await setup()
    out: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect, store, feed, out)
        await trio.sleep(1)
        await store.append_logs("j1", [line(1), line(2)])
        await trio.sleep(16)  # nothing for 15 s: a comment
        await store.append_logs("j1", [line(3)])
        await store.save_job(replace(JOB, status=JobStatus.COMPLETED))
    events = parse(out)
    assert events[0][0] == "progress"
    assert [e for e in events if e[0] in ("log", ":")] == [
        ("log", "1"),
        ("log", "2"),
        (":", ": keep-alive"),
        ("log", "3"),
    ]
    assert events[-1] == ("end", '{"status": "completed"}')


async def test_a_subscriber_that_falls_behind_catches_up_from_the_store(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, feed = await setup(buffer=3)
    with feed.subscribe("j1") as sub:
        await store.append_logs("j1", [line(n) for n in range(1, 6)])  # one update: fits
        for n in range(6, 10):
            await store.append_logs("j1", [line(n)])
        for _ in range(3):
            assert await sub.receive()
        try:
            await sub.receive()
            raise AssertionError("no FellBehind")
        except FellBehind:
            pass
    assert feed.subscribers("j1") == 0
    # The stream itself: a slow reader (buffer 3, 40 updates) still gets every line.
    store, feed = await setup(buffer=3)
    out: list[str] = []
    stream = job_event_stream("j1", store=store, feed=feed, running=lambda _: None)
    out.append(await stream.__anext__())  # subscribed and read; now fall behind
    for n in range(1, 41):
        await store.append_logs("j1", [line(n)])
    await store.save_job(replace(JOB, status=JobStatus.FAILED))
    out += [chunk async for chunk in stream]
    assert [i for e, i in parse(out) if e == "log"] == [str(n) for n in range(1, 41)]


async def test_resuming_after_trimmed_lines_says_how_many_are_gone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, feed = await setup(log_limit=5)
    await store.append_logs("j1", [line(n) for n in range(1, 21)])
    await store.save_job(replace(JOB, status=JobStatus.COMPLETED))
    out: list[str] = []
    await collect(store, feed, out, after=10)
    events = parse(out)
    assert [e for e, _ in events] == ["progress", "error", *["log"] * 5, "end"]
    assert '"missed": 5' in out[1] and '"LogsTrimmed"' in out[1]
    assert last_event_id("16") == 16 and last_event_id("x") == 0 and last_event_id(None) == 0
