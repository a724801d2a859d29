"""The controller as one node of several, with the other nodes faked: each write for an
integration another node holds is sent there before anything is done here, a stop of
every job merges each node's answer (one that did not answer included), and a running
job of an integration held elsewhere is read from the store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sluiced.cluster import Elsewhere, LocalCoordinator
from sluiced.cluster.commands import NoAnswer
from sluiced.control import NodeStop
from sluiced.controller import Controller
from sluiced.models import Job, JobStatus, JobType

from .test_daemon import T0, make_config, make_harness


class HoldingNothing(LocalCoordinator):
    """Node n1, which holds nothing: *holders* hold everything."""

    def __init__(self, holders: Mapping[str, str]) -> None:
        super().__init__("n1")
        self.others = dict(holders)

    def locally_valid(self, integration_id: str) -> bool:
        return False

    async def holders(self, ids: Collection[str]) -> dict[str, str]:
        return {i: self.others[i] for i in ids if i in self.others}


class Bus:
    """Answers a stop of all on each node, or does not (NoAnswer) for *silent*."""

    def __init__(self, silent: str) -> None:
        self.silent = silent
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def send(
        self, integration_id: str, kind: str, body: Mapping[str, Any]
    ) -> tuple[int, Any]:
        self.sent.append((integration_id, kind, dict(body)))
        if integration_id == self.silent:
            raise NoAnswer(f"no node took the command for {integration_id}")
        return 200, {"success": True, "stoppedJobs": 1, "jobs": [f"job-of-{integration_id}"]}


async def clustered(tmp_path: Path) -> tuple[Controller, Bus, Job]:
    h = await make_harness(tmp_path, make_config(tmp_path, integrations=("hr", "crm", "ops")))
    ctl = h.daemon.controller
    bus = Bus(silent="ops")
    ctl.coordinator = HoldingNothing({"hr": "n2", "crm": "n2", "ops": "n3"})
    ctl.bus = bus  # type: ignore[assignment]
    job = Job(id="job-1", integration_id="hr", type="full_sync", created_at=T0)
    await h.store.save_job(replace(job, status=JobStatus.COMPLETED))
    await h.store.save_job(
        Job(
            id="job-2",
            integration_id="hr",
            type="full_sync",
            created_at=T0,
            status=JobStatus.RUNNING,
            progress=40.0,
            node="n2",
        )
    )
    return ctl, bus, job


WRITES: dict[str, Callable[[Controller], Awaitable[object]]] = {
    "interval": lambda c: c.set_interval("job-1", 60),
    "delete job": lambda c: c.delete_job("job-1", delete_logs=True),
    "schema": lambda c: c.put_schema("hr", {"objectMappings": []}),
    "escrow retry": lambda c: c.retry_escrow("hr", "user", "u1"),
    "escrow drop": lambda c: c.drop_escrow("hr", "user", "u1"),
    "credentials": lambda c: c.validate_credentials("hr"),
    "provision": lambda c: c.provision("hr", "u1"),
    "provision dry run": lambda c: c.provision("hr", "u1", dry_run=True),
    "delete integration": lambda c: c.delete_integration("hr"),
    "plugin job": lambda c: c.queue_job("hr", "custom", {}, targets={"memory"}),
    "job": lambda c: c.create_job("hr", JobType.FULL),
    "start": lambda c: c.start("hr"),
    "restart": lambda c: c.restart("hr", []),
    "stop job": lambda c: c.stop_job("job-2", graceful=True),
    "stop all of one": lambda c: c.stop_all("hr"),
}


@pytest.mark.parametrize("write", sorted(WRITES))
async def test_a_write_for_an_integration_held_elsewhere_goes_to_its_holder(
    tmp_path: Path, write: str
) -> None:
    ctl, _, _ = await clustered(tmp_path)
    with pytest.raises(Elsewhere) as raised:
        await WRITES[write](ctl)
    assert (raised.value.integration_id, raised.value.holder) == ("hr", "n2")
    assert await ctl.store.get_job("job-1") is not None  # nothing was done here


async def test_stop_all_of_the_cluster_merges_each_nodes_answer(tmp_path: Path) -> None:
    ctl, bus, _ = await clustered(tmp_path)
    stops = await ctl.stop_cluster()
    assert stops is not None
    assert stops[0] == NodeStop("n1", [])
    assert stops[1] == NodeStop("n2", ["job-of-crm"])  # one command to each node
    assert stops[2].node == "n3" and stops[2].jobs == [] and "no node took" in str(stops[2].error)
    assert sorted(bus.sent) == [
        ("crm", "POST /api/sync/jobs/stop-all", {}),
        ("ops", "POST /api/sync/jobs/stop-all", {}),
    ]


async def test_a_node_alone_stops_only_its_own(tmp_path: Path) -> None:
    h = await make_harness(tmp_path)
    assert await h.daemon.controller.stop_cluster() is None


async def test_the_running_job_of_an_integration_held_elsewhere_is_read_from_the_store(
    tmp_path: Path,
) -> None:
    ctl, _, _ = await clustered(tmp_path)
    view = await ctl.view("hr")
    assert view.current_job is not None
    assert (view.current_job.id, view.current_job.progress, view.current_job.node) == (
        "job-2",
        40.0,
        "n2",
    )
    assert (await ctl.view("crm")).current_job is None
