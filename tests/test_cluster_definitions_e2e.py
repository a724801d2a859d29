"""Integrations created through the API on one node of a cluster: every node takes them
up within a few heartbeats (so another node runs one when its creator dies), and one
deleted through any node leaves every node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .daemonproc import DaemonProc, daemons, wait_for, write_people
from .test_cluster_e2e import holders, install_recording, node_config

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)


def made(shared: Path, ident: str) -> dict[str, Any]:
    return {
        "id": ident,
        "entityTypes": ["user"],
        "schedule": {"interval": "PT1H", "state": "Active"},
        "jitter": "PT0S",
        "source": {"connector": "jsonl", "paths": {"user": str(shared / "in.jsonl")}},
        "target": {"connector": "jsonl", "paths": {"user": str(shared / f"{ident}.out.jsonl")}},
    }


def test_an_integration_made_through_the_api_is_taken_up_and_dropped_by_every_node(
    tmp_path: Path, pg_url: str, procs: list[DaemonProc]
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    write_people(shared / "i0.jsonl", 5)
    write_people(shared / "in.jsonl", 20)
    path = install_recording(tmp_path / "site")
    nodes: dict[str, DaemonProc] = {}
    for name in ("n1", "n2"):
        root = tmp_path / name
        root.mkdir()
        config = node_config(shared, pg_url, name, ("i0",)).replace(
            "[daemon]\n", f'[daemon]\nallowed_paths = ["{shared}"]\n', 1
        )
        (root / "config.toml").write_text(config)
        d = DaemonProc(root)
        d.env.update(PYTHONPATH=path, SLUICED_TEST_NODE=name, SLUICED_TEST_PG_PASSWORD="x")
        procs.append(d)
        nodes[name] = d.start(wait=False)
    for d in nodes.values():
        d.wait_ready()
    n1, n2 = nodes["n1"].client(), nodes["n2"].client()

    r = n1.post("/api/sync/integrations", json=made(shared, "api-one"))
    assert r.status_code == 201, r.text
    wait_for(lambda: n2.get("/api/sync/integrations/api-one").status_code == 200, timeout=20)
    # Deleted through the node that does not hold it: it leaves both.
    wait_for(lambda: "api-one" in holders(pg_url), timeout=20)
    asked = n2 if holders(pg_url)["api-one"] == "n1" else n1
    r = asked.delete("/api/sync/integrations/api-one")
    assert r.status_code == 200, r.text
    wait_for(
        lambda: all(c.get("/api/sync/integrations/api-one").status_code == 404 for c in (n1, n2)),
        timeout=20,
    )

    # Made on n1, which dies: n2 runs it.
    r = n1.post("/api/sync/integrations", json=made(shared, "api-two"))
    assert r.status_code == 201, r.text
    wait_for(lambda: n2.get("/api/sync/integrations/api-two").status_code == 200, timeout=20)
    nodes["n1"].kill()
    wait_for(lambda: holders(pg_url).get("api-two") == "n2", timeout=30)

    def settled() -> bool:  # a job n1 had begun is resumed by n2 first
        jobs = n2.get("/api/sync/jobs", params={"integrationId": "api-two"}).json()["jobs"]
        return all(j["status"] in ("completed", "failed", "stopped") for j in jobs)

    wait_for(settled, timeout=30)
    r = n2.post("/api/sync/jobs", json={"integrationId": "api-two", "type": "full_sync"})
    assert r.status_code == 202, r.text
    job_id = r.json()["jobId"]
    wait_for(lambda: n2.get(f"/api/sync/jobs/{job_id}").json()["status"] == "completed")
    assert n2.get(f"/api/sync/jobs/{job_id}").json()["node"] == "n2"
    assert len((shared / "api-two.out.jsonl").read_text().splitlines()) == 20
