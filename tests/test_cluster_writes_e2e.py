"""Two daemons on one PostgreSQL database: every write for one integration sent to the
node that does not hold it goes to the holder through the store (a command the holder
answered), takes effect there, and is answered as the holder answers it itself; a stop
of every job stops them on both nodes; the node that does not hold an integration shows
its running job from the store; a finished job names the node that ran it even once its
integration's lease has moved."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluiced.codec import to_dict
from sluiced.models import Escrow

from .daemonproc import DaemonProc, daemons, wait_for, wait_job, write_people
from .test_cluster_e2e import holders, install_recording, node_config, statuses, writes

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)
INTEGRATIONS = ("i0", "i1", "i2", "i3", "slow")
PEOPLE = 30


def answered(url: str, kind: str) -> list[tuple[str, int]]:
    """The node that answered each command *kind* sent through the store, and its status."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT node_id, result FROM sluiced.commands WHERE kind=%s AND result IS NOT NULL"
            " ORDER BY id",
            (kind,),
        ).fetchall()
    return [(str(node), int(result["status"])) for node, result in rows]


def sse(lines: Iterator[str], timeout: float = 20) -> Iterator[tuple[str, Any]]:
    """Each event of a stream of server-sent events, its name and data, until *timeout*
    seconds have passed (looked at as each line comes: a keep-alive at the latest)."""
    name = ""
    deadline = time.monotonic() + timeout
    for line in lines:
        if time.monotonic() > deadline:
            return
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def add_escrow(url: str, integration_id: str, object_id: str) -> None:
    import psycopg

    now = datetime.now(UTC)
    escrow = Escrow(
        integration_id=integration_id,
        entity_type="user",
        object_id=object_id,
        kind="target",
        reason="refused",
        first_failed=now,
        last_failed=now,
        next_retry=now.replace(year=now.year + 1),
    )
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO sluiced.escrows (integration_id, entity_type, object_id, kind,"
            " next_retry, body) VALUES (%s, 'user', %s, 'target', %s, %s)",
            (integration_id, object_id, escrow.next_retry.isoformat(), json.dumps(to_dict(escrow))),
        )


def test_writes_for_an_integration_another_node_holds_are_answered_by_the_holder(
    tmp_path: Path, pg_url: str, procs: list[DaemonProc]
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    for ident in INTEGRATIONS:
        write_people(shared / f"{ident}.jsonl", PEOPLE * (4 if ident == "slow" else 1))
    path = install_recording(tmp_path / "site")
    nodes: dict[str, DaemonProc] = {}
    for name in ("n1", "n2"):
        root = tmp_path / name
        root.mkdir()
        config = node_config(shared, pg_url, name, INTEGRATIONS, {"slow": 0.5})
        (root / "config.toml").write_text(config)
        d = DaemonProc(root)
        d.env.update(PYTHONPATH=path, SLUICED_TEST_NODE=name, SLUICED_TEST_PG_PASSWORD="x")
        procs.append(d)
        nodes[name] = d.start(wait=False)
    for d in nodes.values():
        d.wait_ready()

    def shared_out() -> bool:
        held = holders(pg_url)
        return set(held) == set(INTEGRATIONS) and all(
            sum(n == name for n in held.values()) >= 2 for name in nodes
        )

    wait_for(shared_out, timeout=60)
    wait_for(lambda: all("completed" in statuses(pg_url).get(i, ()) for i in INTEGRATIONS))
    held = holders(pg_url)
    owner = held["slow"]
    [asked] = [n for n in nodes if n != owner]
    other = next(i for i in INTEGRATIONS if i != "slow" and held[i] == owner)
    client, holder = nodes[asked].client(), nodes[owner].client()

    def forwarded(method: str, path: str, body: Any = None) -> httpx.Response:
        """The request sent to the node that does not hold the integration, which the
        holder answered through the store."""
        before = len(answered(pg_url, f"{method} {path}"))
        r = client.request(method, path, json=body)
        commands = answered(pg_url, f"{method} {path}")
        assert len(commands) == before + 1 and commands[-1] == (owner, r.status_code), (
            path,
            r.text,
        )
        return r

    def as_local(method: str, path: str, body: Any = None) -> httpx.Response:
        """Sent to both nodes: the answer through the store is the holder's own."""
        r = forwarded(method, path, body)
        local = holder.request(method, path, json=body)
        assert (r.status_code, r.json()) == (local.status_code, local.json()), path
        return r

    base = f"/api/sync/integrations/{other}"
    [done] = client.get("/api/sync/jobs", params={"integrationId": other}).json()["jobs"]
    # A job's interval: set on the holder, answered alike.
    r = forwarded("PUT", f"/api/sync/jobs/{done['id']}/interval", {"interval": 600})
    assert r.status_code == 200 and r.json()["oldInterval"] == 3600, r.text
    assert holder.get(base).json()["schedule"]["interval"] == "PT10M"
    as_local("PUT", f"/api/sync/jobs/{done['id']}/interval", {"interval": 600})
    # The schema.
    schema = client.get(f"{base}/schema").json()
    assert as_local("PUT", f"{base}/schema", schema).status_code == 200
    bad = {"objectMappings": [{"nope": 1}]}
    assert as_local("PUT", f"{base}/schema", bad).status_code == 422
    # Credentials: the holder opens the connectors.
    assert as_local("POST", f"{base}/validate-credentials", {}).json()["ok"] is True
    # Provisioning on demand, its dry run and the real one.
    dry = as_local("POST", f"{base}/provision-on-demand", {"objectId": "P000001", "dryRun": True})
    assert dry.status_code == 200 and dry.json()["jobId"] is None, dry.text
    r = forwarded("POST", f"{base}/provision-on-demand", {"objectId": "P000002"})
    assert r.status_code == 200, r.text
    assert holder.get(f"/api/sync/jobs/{r.json()['jobId']}").json()["node"] == owner
    nobody = {"objectId": "nobody", "dryRun": True}
    assert as_local("POST", f"{base}/provision-on-demand", nobody).json()
    # Escrows: retried and dropped on the holder.
    add_escrow(pg_url, other, "P000003")
    r = forwarded("POST", f"{base}/escrows/retry", {"entityType": "user", "objectId": "P000003"})
    assert r.status_code == 200 and r.json()["message"] == "retrying now", r.text
    retried = wait_job(client, r.json()["jobId"])
    assert retried["status"] == "completed" and retried["node"] == owner, retried
    # A dry run's plan is a file of the node that ran it: the holder answers for it.
    r = forwarded(
        "POST",
        "/api/sync/jobs",
        {"integrationId": other, "type": "full_sync", "options": {"dryRun": True}},
    )
    assert r.status_code == 202, r.text
    dry_run = wait_job(client, r.json()["jobId"])
    assert dry_run["status"] == "completed" and dry_run["node"] == owner, dry_run
    plan = as_local("GET", f"/api/sync/jobs/{dry_run['id']}/plan")
    assert plan.status_code == 200 and plan.json()["total"] == 0, plan.text  # all in sync
    add_escrow(pg_url, other, "P000004")
    key = {"entityType": "user", "objectId": "P000004"}
    r = forwarded("POST", f"{base}/escrows/drop", key)
    assert r.json() == {"success": True, "dropped": "user/P000004"}, r.text
    assert holder.get(f"{base}/escrows").json()["total"] == 0
    assert as_local("POST", f"{base}/escrows/drop", key).status_code == 404
    assert as_local("POST", f"{base}/escrows/retry", key).status_code == 404
    # Deleting a job, and an integration (one of the config: refused by the holder).
    r = forwarded("DELETE", f"/api/sync/jobs/{done['id']}")
    assert r.json() == {"success": True, "deleted": done["id"]}, r.text
    assert holder.get(f"/api/sync/jobs/{done['id']}").status_code == 404
    gone = client.delete(f"/api/sync/jobs/{done['id']}")  # no job: no integration to ask
    assert (gone.status_code, gone.json()) == (404, holder.delete(gone.url.path).json())
    r = as_local("DELETE", base)
    assert r.status_code == 409 and "remove it there and reload" in r.text, r.text
    # What only the holder knows in memory: the node that does not hold it reads it
    # from the running job's record.
    write_people(shared / "slow.jsonl", PEOPLE * 12)  # new objects: 24 slow batches
    r = forwarded("POST", "/api/sync/integrations/slow/start", {"syncType": "full"})
    assert r.status_code == 202, r.text
    slow = r.json()["jobId"]
    wait_for(lambda: client.get(f"/api/sync/jobs/{slow}").json()["progress"] > 0, timeout=30)
    shown = client.get("/api/sync/integrations/slow").json()["currentJob"]
    assert shown["id"] == slow and shown["status"] == "running" and shown["node"] == owner
    [status] = [
        s
        for s in client.get("/api/sync/integrations/status").json()["integrations"]
        if s["integrationId"] == "slow"
    ]
    assert status["currentJob"]["id"] == slow and status["currentJob"]["progress"] > 0
    # Its events, followed on this node: its progress and its end, read from the store.
    with client.stream("GET", f"/api/sync/jobs/{slow}/events") as events:
        seen = sse(events.iter_lines())
        first = next(data["progress"] for name, data in seen if name == "progress")
        assert any(name == "progress" and data["progress"] > first for name, data in seen)
        # Stop all: on every node, each node's answer merged.
        r = client.post("/api/sync/jobs/stop-all", json={})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "success": True,
            "stoppedJobs": 1,
            "jobs": [slow],
            "nodes": [
                {"nodeId": asked, "stoppedJobs": 0, "jobs": [], "error": None},
                {"nodeId": owner, "stoppedJobs": 1, "jobs": [slow], "error": None},
            ],
        }, r.text
        assert ("end", {"status": "stopped"}) in seen
    assert wait_job(client, slow, ("stopped",))["node"] == owner
    stopped = nodes[asked].ctl("stop-all")
    assert stopped.returncode == 0 and stopped.stdout == "stopping 0 jobs\n", stopped
    assert not [w for w in writes(shared) if w["node"] == asked and w["integration"] == other]
    # The holder leaves; its finished jobs still name it once the other holds the leases.
    assert nodes[owner].stop() == 0, nodes[owner].log.read_text()[-3000:]
    wait_for(lambda: set(holders(pg_url).values()) == {asked}, timeout=30)
    assert client.get(f"/api/sync/jobs/{slow}").json()["node"] == owner
    listed = client.get("/api/sync/jobs", params={"limit": 100}).json()["jobs"]
    ran = {
        j["integrationId"]: j["node"]
        for j in listed
        if j["type"] == "full_sync" and not j["parameters"].get("dry_run")
    }
    wrote: dict[str, str] = {}  # the node of each integration's first write
    for w in sorted(writes(shared), key=lambda w: w["at"]):
        wrote.setdefault(w["integration"], w["node"])
    del wrote[other]  # its first job was deleted
    assert ran == wrote, (ran, wrote)  # the node that ran each, which wrote its objects
