"""Starting and restarting an integration the config file pauses, through a daemon
subprocess on its real socket: the operator's word stands, and one start is one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from .daemonproc import DaemonProc, daemons, make_daemon, wait_job

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)


def paused_daemon(root: Path, procs: list[DaemonProc]) -> DaemonProc:
    """A daemon whose one integration, ``people``, says ``state = "Paused"`` and never ran."""
    d = make_daemon(root, people=300, batch_size=50)
    d.config.write_text(
        d.config.read_text().replace('jitter = "0s"', 'jitter = "0s"\nstate = "Paused"')
    )
    procs.append(d)
    return d.start()


def test_start_of_a_paused_integration_that_never_ran_runs_one_sync(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d = paused_daemon(tmp_path, procs)
    c = d.client()
    assert c.get("/api/sync/jobs").json()["jobs"] == []
    r = c.post("/api/sync/integrations/people/start")
    assert r.status_code == 202 and r.json()["jobId"]
    assert wait_job(c, r.json()["jobId"])["status"] == "completed"
    jobs = c.get("/api/sync/jobs", params={"integrationId": "people"}).json()["jobs"]
    assert [j["id"] for j in jobs] == [r.json()["jobId"]]
    one = c.get("/api/sync/integrations/people").json()
    assert one["status"]["code"] == "Active" and one["nextRun"] is not None


@pytest.mark.parametrize("scope", [["ForceDeletes"], ["QuarantineState"], ["Full"], []])
def test_restart_keeps_the_schedule_an_operator_set(
    tmp_path: Path, procs: list[DaemonProc], scope: list[str]
) -> None:
    d = paused_daemon(tmp_path, procs)
    c = d.client()
    assert wait_job(c, c.post("/api/sync/integrations/people/start").json()["jobId"])
    before = c.get("/api/sync/integrations/people").json()
    assert before["schedule"]["state"] == "Active" and before["nextRun"] is not None
    r = c.post("/api/sync/integrations/people/restart", json={"criteria": {"resetScope": scope}})
    assert r.status_code == 202
    assert wait_job(c, r.json()["jobId"])["status"] == "completed"
    after = c.get("/api/sync/integrations/people").json()
    assert after["schedule"]["state"] == "Active"
    assert after["status"]["code"] == "Active" and after["nextRun"] is not None
    # ... and one the operator stopped stays stopped: restart runs its one full sync only.
    c.post("/api/sync/integrations/people/stop")
    r = c.post("/api/sync/integrations/people/restart", json={"criteria": {"resetScope": scope}})
    assert wait_job(c, r.json()["jobId"])["status"] == "completed"
    stopped = c.get("/api/sync/integrations/people").json()
    assert stopped["schedule"]["state"] == "Paused" and stopped["nextRun"] is None
