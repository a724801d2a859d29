"""A schema pattern that backtracks catastrophically, through a daemon subprocess on its
real socket: the objects it runs out of time on are escrowed with that reason, the others
sync, the API answers all along, and SIGTERM stops the daemon in the middle of it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from .daemonproc import DaemonProc, daemons, first_job, make_daemon, wait_job

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)

PEOPLE = 300
POISONED = {f"P{i:06d}" for i in range(PEOPLE) if i % 25 == 5}  # 12, spread over the file
SCHEMA = {
    "objectMappings": [
        {
            "sourceObjectName": "user",
            "flowTypes": ["Add", "Update", "Delete"],
            "scope": {
                "groups": [
                    {
                        "clauses": [
                            {
                                "sourceOperandName": "name",
                                "operatorName": "NOT REGEX MATCH",
                                "targetOperand": {"values": ["(a|a)+$"]},
                            }
                        ]
                    }
                ]
            },
        }
    ]
}


def poisoned_daemon(root: Path, procs: list[DaemonProc]) -> DaemonProc:
    d = make_daemon(root, people=PEOPLE, batch_size=50)
    (root / "schema.json").write_text(json.dumps(SCHEMA))
    d.config.write_text(
        d.config.read_text().replace('jitter = "0s"', 'jitter = "0s"\nschema = "schema.json"')
    )
    source = root / "people.jsonl"
    rows = [json.loads(line) for line in source.read_text().splitlines()]
    for row in rows:
        if row["id"] in POISONED:
            row["name"] = "a" * 40 + "!"  # 2**40 ways for (a|a)+ to fail on it
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    procs.append(d)
    return d.start()


def test_a_catastrophic_pattern_escrows_its_objects_and_the_daemon_keeps_answering(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d = poisoned_daemon(tmp_path, procs)
    c = d.client()  # a 20 s timeout: a frozen daemon fails the test
    job_id = first_job(c)["id"]
    answered_while_running = 0
    while (job := c.get(f"/api/sync/jobs/{job_id}").json())["status"] in ("queued", "running"):
        assert c.get("/healthz").status_code == 200
        answered_while_running += job["status"] == "running"
    assert job["status"] == "completed", job
    assert answered_while_running > 0
    out = (tmp_path / "out/people.jsonl").read_text().splitlines()
    synced = {json.loads(line)["id"] for line in out}
    assert synced == {f"P{i:06d}" for i in range(PEOPLE)} - POISONED
    escrows = c.get("/api/sync/integrations/people/escrows").json()
    assert {e["objectId"] for e in escrows["escrows"]} == POISONED
    reason = escrows["escrows"][0]["reason"]
    assert reason.startswith("scoping clause [name] NOT REGEX MATCH: the regular expression")
    assert "'(a|a)+$'" in reason and "took longer than" in reason

    # The same again from scratch, and SIGTERM in the middle of it: the daemon stops.
    r = c.post("/api/sync/integrations/people/restart", json={"criteria": {"resetScope": "Full"}})
    restarted = r.json()["jobId"]
    wait_job(c, restarted, ("running",))
    d.signal(signal.SIGTERM)
    assert d.proc is not None and d.proc.wait(timeout=30) == 0
    d.close_client()
    lines = d.log_lines()
    assert any(
        line.get("job_id") == restarted and "daemon shutdown" in line["event"] for line in lines
    )
    assert lines[-1]["event"] == "sluiced stopped"
