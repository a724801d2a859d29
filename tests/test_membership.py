"""A node's life in the cluster with a coordinator the test drives (no database): the
heartbeat never waits for the integrations it claimed to be taken up, taking them up is
tried again until it succeeds, and a job that ended for its lease while this node kept
the lease (its heartbeat came late, then renewed it) is resumed here."""

from __future__ import annotations

from collections.abc import Collection
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from sluiced.cluster import Elsewhere, LocalCoordinator
from sluiced.cluster.membership import Membership
from sluiced.models import JobStatus
from sluiced.store import StoreUnavailable

from .test_daemon import make_config, make_harness


class Driven(LocalCoordinator):
    """A coordinator of a cluster (a heartbeat every 10 s) whose claims, losses and local
    validity the test sets."""

    def __init__(self) -> None:
        super().__init__("n1")
        self.ttl, self.heartbeat = 30.0, 10.0
        self.offer: set[str] = set()
        self.lose: set[str] = set()
        self.invalid: set[str] = set()
        self.renewals = 0

    async def claim(self, known_ids: Collection[str]) -> dict[str, int]:
        got = {i: 1 for i in known_ids if i in self.offer and i not in self._held}
        self.offer -= set(got)
        self._held.update(got)
        return got

    async def renew(self) -> set[str]:
        self.renewals += 1
        lost, self.lose = self.lose & set(self._held), set()
        await self.release(lost)
        return lost

    def locally_valid(self, integration_id: str) -> bool:
        return integration_id in self._held and integration_id not in self.invalid


async def nothing(ids: object) -> None:
    return None


async def test_the_heartbeat_goes_on_while_claimed_integrations_are_taken_up(
    autojump_clock: trio.abc.Clock,
) -> None:
    k = Driven()
    k.offer = {"hr"}
    taken_up = trio.Event()
    ended = trio.Event()  # e.g. the task of the job it resumes is still ending

    async def on_claimed(ids: list[str]) -> None:
        taken_up.set()
        await ended.wait()

    m = Membership(k, known=lambda: ["hr"], on_claimed=on_claimed, on_lost=nothing)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(m.run)
        await taken_up.wait()
        began = k.renewals
        await trio.sleep(100)
        assert k.renewals - began >= 9  # a heartbeat every 10 s all along
        assert not m.ready("hr")  # no new job starts before its interrupted ones resumed
        ended.set()
        await trio.testing.wait_all_tasks_blocked()
        assert m.ready("hr")
        nursery.cancel_scope.cancel()


async def test_taking_up_a_claimed_integration_is_tried_again_until_it_succeeds(
    autojump_clock: trio.abc.Clock,
) -> None:
    k = Driven()
    k.offer = {"hr"}
    calls: list[list[str]] = []

    async def on_claimed(ids: list[str]) -> None:
        calls.append(ids)
        if len(calls) == 1:
            raise StoreUnavailable("the store restarted")

    m = Membership(k, known=lambda: ["hr"], on_claimed=on_claimed, on_lost=nothing)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(m.run)
        await trio.sleep(45)
        nursery.cancel_scope.cancel()
    assert calls == [["hr"], ["hr"]]
    assert m.ready("hr")


async def test_a_lost_integration_is_not_taken_up_and_its_new_holder_resumes_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    k = Driven()
    k.offer = {"hr"}
    calls: list[list[str]] = []

    async def on_claimed(ids: list[str]) -> None:
        calls.append(ids)
        raise StoreUnavailable("the store restarted")

    m = Membership(k, known=lambda: ["hr"], on_claimed=on_claimed, on_lost=nothing)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(m.run)
        await trio.sleep(15)
        k.lose = {"hr"}
        await trio.sleep(40)
        nursery.cancel_scope.cancel()
    assert calls == [["hr"]]


async def test_a_job_ended_for_its_lease_is_resumed_once_this_node_renewed_the_lease(
    tmp_path: Path, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = Driven()
    k.offer = {"hr"}
    monkeypatch.setattr("sluiced.supervisor.coordinator_for", lambda store, daemon: k)
    h = await make_harness(tmp_path)
    h.connector.target.apply_delay = 30  # three batches of 30 s
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        await trio.sleep(50)  # inside the second batch
        (job,) = await h.jobs()
        assert job.status is JobStatus.RUNNING
        # The heartbeat is late: the lease is no longer valid on this host's clock (the
        # third batch is not written), then renewed: nobody else took it.
        k.invalid = {"hr"}
        await trio.sleep(20)
        k.invalid = set()
        await trio.sleep(200)
        jobs = await h.jobs()
        nursery.cancel_scope.cancel()
    assert jobs[0].id == job.id and jobs[0].status is JobStatus.COMPLETED, jobs
    assert all(j.status.terminal for j in jobs), jobs
    assert sorted(h.connector.target.objects["user"]) == [f"t-u{i:03d}" for i in range(25)]


async def test_resuming_again_leaves_a_job_that_runs_here_alone(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    h = await make_harness(tmp_path)
    h.connector.target.apply_delay = 30
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        await trio.sleep(45)
        (job,) = await h.jobs()
        # A takeover tried again after a store failure finds the job it resumed running.
        assert await h.daemon.scheduler.resume_interrupted() == []
        await trio.sleep(200)
        jobs = await h.jobs()
        nursery.cancel_scope.cancel()
    assert [(j.id, j.status) for j in jobs] == [(job.id, JobStatus.COMPLETED)]
    assert [e.job.status for e in h.plugin.events if e.kind == "job"].count(
        JobStatus.COMPLETED
    ) == 1


async def test_provisioning_an_object_writes_nothing_once_the_lease_is_not_valid_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = Driven()
    k.offer = {"hr"}
    monkeypatch.setattr("sluiced.supervisor.coordinator_for", lambda store, daemon: k)
    h = await make_harness(tmp_path)
    await k.claim(["hr"])
    k.invalid = {"hr"}  # its heartbeat is late: the lease may be another node's by now
    with pytest.raises(Elsewhere):
        await h.daemon.runner.provision("hr", "user", "u001", dry_run=False)
    assert h.connector.target.objects.get("user", {}) == {}
    k.invalid = set()
    await h.daemon.runner.provision("hr", "user", "u001", dry_run=False)
    assert list(h.connector.target.objects["user"]) == ["t-u001"]


class Expiring(Driven):
    """A :class:`Driven` coordinator whose leases are valid here only until a TTL after
    its last heartbeat (on trio's clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.renewed_at = trio.current_time()

    async def renew(self) -> set[str]:
        self.renewed_at = trio.current_time()
        return await super().renew()

    def locally_valid(self, integration_id: str) -> bool:
        fresh = trio.current_time() < self.renewed_at + self.ttl - 3
        return fresh and super().locally_valid(integration_id)


async def test_a_run_once_in_a_cluster_keeps_its_leases_while_its_jobs_run(
    tmp_path: Path, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = Expiring()
    k.offer = {"hr"}
    monkeypatch.setattr("sluiced.supervisor.coordinator_for", lambda store, daemon: k)
    h = await make_harness(tmp_path)
    h.connector.target.apply_delay = 30  # three batches of 30 s: longer than a TTL
    assert await h.daemon.run(once=True, api=False) == 0
    (job,) = await h.jobs()
    assert job.status is JobStatus.COMPLETED


async def test_a_run_once_in_a_cluster_runs_only_the_integrations_this_node_holds(
    tmp_path: Path, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = Expiring()
    k.offer = {"hr"}  # crm is another node's
    monkeypatch.setattr("sluiced.supervisor.coordinator_for", lambda store, daemon: k)
    h = await make_harness(tmp_path, make_config(tmp_path, ["hr", "crm"]))
    assert await h.daemon.run(once=True, api=False) == 0
    assert [(j.integration_id, j.status) for j in await h.jobs()] == [("hr", JobStatus.COMPLETED)]
