"""The thread that owns a connection (``sluiced.ownedconnection``): results and errors
reach trio, connections are opened, checked, dropped and opened again as promised, a
cancelled caller never tears its function, and closing finishes the queued work.

Real threads: no virtual clock; every wait is bounded generously."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from sluiced.ownedconnection import OwnedConnection

WAIT = 30  # seconds: a bound on waiting for a thread, never a measure of speed


@dataclass
class Conn:
    """A connection stand-in: its number, and whether it was closed."""

    number: int
    closed: bool = False
    thread: str = ""


class Server:
    """Makes numbered connections on the calling thread, and can refuse."""

    def __init__(self) -> None:
        self.made: list[Conn] = []
        self.refuse: Exception | None = None
        self.firsts: list[bool] = []

    def connect(self, first: bool) -> Conn:
        self.firsts.append(first)
        if self.refuse is not None:
            raise self.refuse
        conn = Conn(len(self.made) + 1, thread=threading.current_thread().name)
        self.made.append(conn)
        return conn

    @staticmethod
    def disconnect(conn: Conn) -> None:
        conn.closed = True


Owner = OwnedConnection[Conn]


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def release() -> threading.Event:
    """Lets the functions that wait for it end; set when the test ends."""
    return threading.Event()


@pytest.fixture
def owned(server: Server, release: threading.Event) -> Iterator[Callable[..., Owner]]:
    """Makes owners of *server*'s connections (``owned(name, **options)``); at the end
    of the test lets blocked functions end and closes every owner."""
    made: list[Owner] = []

    def make(name: str, **options: Any) -> Owner:
        options.setdefault("disconnect", server.disconnect)
        made.append(OwnedConnection(server.connect, name=name, **options))
        return made[-1]

    yield make
    release.set()
    for owner in made:
        owner.close()


def threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


async def test_results_and_errors_come_back_in_order_from_the_owning_thread(
    server: Server, owned: Callable[..., Owner]
) -> None:
    owner = owned("owned:order")
    assert server.firsts == [True] and server.made[0].thread == "owned:order"
    with trio.fail_after(WAIT):
        on = await owner.call(lambda c: (c.number, threading.current_thread().name))
        assert on == (1, "owned:order")
        with pytest.raises(KeyError, match="nope"):
            await owner.call(lambda c: {}["nope"])
        seen: list[int] = []
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(owner.call, lambda c, i=i: seen.append(i))
                await trio.lowlevel.checkpoint()
        assert seen == list(range(20))
    assert len(server.made) == 1  # an error of a function keeps the connection
    owner.close()
    assert server.made[0].closed and threads_named("owned:order") == []


async def test_an_eager_opening_error_is_the_constructors_and_leaves_no_thread(
    server: Server, owned: Callable[..., Owner]
) -> None:
    server.refuse = ConnectionRefusedError("no")
    with pytest.raises(ConnectionRefusedError):
        owned("owned:refused")
    for _ in range(WAIT * 100):
        if not threads_named("owned:refused"):
            break
        await trio.sleep(0.01)
    assert threads_named("owned:refused") == []


async def test_a_lazy_owner_starts_its_thread_and_connects_on_first_use(
    server: Server, owned: Callable[..., Owner]
) -> None:
    owner = owned("owned:lazy", eager=False)
    assert threads_named("owned:lazy") == [] and server.firsts == []
    server.refuse = ConnectionRefusedError("down")
    with trio.fail_after(WAIT):
        with pytest.raises(ConnectionRefusedError):  # the opening's error is the call's
            await owner.call(lambda c: c.number)
        server.refuse = None
        assert await owner.call(lambda c: c.number) == 1
    assert server.firsts == [False, False]
    await owner.aclose(WAIT)
    assert server.made[0].closed


async def test_an_unusable_connection_is_replaced_before_the_function_runs(
    server: Server, owned: Callable[..., Owner]
) -> None:
    owner = owned("owned:usable", usable=lambda c: not c.closed)
    with trio.fail_after(WAIT):
        await owner.call(Server.disconnect)  # ended behind the owner's back
        assert await owner.call(lambda c: c.number) == 2
    assert server.firsts == [True, False]


async def test_a_lost_connection_is_dropped_and_the_next_call_opens_another(
    server: Server, owned: Callable[..., Owner]
) -> None:
    def reset(conn: Conn) -> None:
        raise ConnectionResetError("gone")

    def flaky_disconnect(conn: Conn) -> None:
        conn.closed = True
        raise OSError("closing failed too")

    owner = owned(
        "owned:lost",
        disconnect=flaky_disconnect,
        lost=lambda c, exc: isinstance(exc, ConnectionResetError),
    )
    with trio.fail_after(WAIT):
        with pytest.raises(ConnectionResetError):  # not the closing's error
            await owner.call(reset)
        assert server.made[0].closed and len(server.made) == 1
        assert await owner.call(lambda c: c.number) == 2
        with pytest.raises(ValueError):  # not lost: kept
            await owner.call(lambda c: int("x"))
        assert await owner.call(lambda c: c.number) == 2


async def test_a_cancelled_caller_stops_waiting_but_its_function_runs_to_its_end(
    owned: Callable[..., Owner], release: threading.Event
) -> None:
    owner = owned("owned:cancel")
    done: list[str] = []

    def slow(conn: Conn) -> None:
        release.wait(WAIT)
        done.append("slow")

    with trio.fail_after(WAIT):
        with trio.move_on_after(0.05) as scope:
            await owner.call(slow)
        assert scope.cancelled_caught and done == []
        with trio.move_on_after(0) as queued:  # cancelled before its function started
            await owner.call(lambda c: done.append("queued"))
        assert queued.cancelled_caught
        release.set()
        assert await owner.call(lambda c: list(done)) == ["slow", "queued"]


async def test_a_shielded_caller_waits_for_its_function_despite_a_cancellation(
    owned: Callable[..., Owner], release: threading.Event
) -> None:
    owner = owned("owned:shield")
    started = threading.Event()
    results: list[str] = []

    def write(conn: Conn) -> str:
        started.set()
        release.wait(WAIT)
        return "written"

    async def caller(*, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            results.append(await owner.call(write, shield=True))
            results.append("after")  # the result comes back; the cancellation follows
            await trio.lowlevel.checkpoint()
            results.append("never")

    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            scope = await nursery.start(caller)
            await trio.to_thread.run_sync(started.wait)
            scope.cancel()
            await trio.sleep(0.05)
            assert results == []  # still waiting, though cancelled
            release.set()
        assert results == ["written", "after"]


async def test_close_finishes_queued_work_then_refuses_calls(
    server: Server, owned: Callable[..., Owner], release: threading.Event
) -> None:
    owner = owned("owned:close", what="the x")
    done: list[int] = []
    with trio.move_on_after(0):
        await owner.call(lambda c: release.wait(WAIT))
    for i in range(3):
        with trio.move_on_after(0):
            await owner.call(lambda c, i=i: done.append(i))
    release.set()
    await trio.to_thread.run_sync(owner.close)
    assert done == [0, 1, 2] and server.made[0].closed
    with pytest.raises(RuntimeError, match="the x is closed"):
        await owner.call(lambda c: c.number)
    owner.close()
    await owner.aclose(WAIT)


async def test_aclose_waits_at_most_its_bound_for_a_function_still_running(
    server: Server, owned: Callable[..., Owner], release: threading.Event
) -> None:
    owner = owned("owned:aclose")
    with trio.move_on_after(0):
        await owner.call(lambda c: release.wait(WAIT))
    with trio.fail_after(WAIT):
        start = trio.current_time()
        with trio.CancelScope() as outer:
            outer.cancel()  # shielded: a cancelled closer still waits its bound
            await owner.aclose(0.1)
        assert trio.current_time() - start >= 0.1
    assert not server.made[0].closed  # left to end on its own
    release.set()
    for _ in range(WAIT * 100):
        if server.made[0].closed:
            break
        await trio.sleep(0.01)
    assert server.made[0].closed
