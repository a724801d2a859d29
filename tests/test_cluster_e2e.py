"""Three daemons on one PostgreSQL database share twenty integrations under leases: one
is killed (kill -9) in the middle of its jobs and another resumes them; one is frozen
(SIGSTOP) past its leases and, woken, writes nothing more for them. Every write is
recorded with its node by the ``recording`` target (tests/recordplugin.py)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .daemonproc import DaemonProc, daemons, wait_for, write_people

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)
REPO = Path(__file__).resolve().parent.parent
INTEGRATIONS = [f"i{n:02d}" for n in range(20)]
PEOPLE, BATCH, DELAY = 60, 10, 0.3
TTL, HEARTBEAT = 2.0, 0.5


def install_recording(site: Path) -> str:
    """tests/recordplugin.py as an installed plugin (an entry point of group sluiced)."""
    info = site / "sluiced_recording-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sluiced-recording\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sluiced]\nrecording = tests.recordplugin\n")
    return os.pathsep.join([str(site), str(REPO)])


def node_config(
    shared: Path,
    url: str,
    node: str,
    integrations: Sequence[str] = INTEGRATIONS,
    delays: Mapping[str, float] | None = None,
) -> str:
    """The config of *node*: *integrations* from ``<id>.jsonl`` in *shared* into the
    ``recording`` target, each write taking its *delays* entry (default DELAY) seconds."""
    out = f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
shutdown_grace = "20s"
max_concurrent_jobs = 10
store = "{url}"
store_password_env = "SLUICED_TEST_PG_PASSWORD"
node_id = "{node}"
lease_ttl = "{TTL}s"
heartbeat = "{HEARTBEAT}s"
"""
    for ident in integrations:
        delay = (delays or {}).get(ident, DELAY)
        out += f"""
[integrations.{ident}]
entity_types = ["user"]
interval = "1h"
jitter = "0s"
batch_size = {BATCH}
[integrations.{ident}.source]
connector = "jsonl"
paths = {{ user = "{shared / ident}.jsonl" }}
[integrations.{ident}.target]
connector = "recording"
log = "{shared / "writes.jsonl"}"
delay = "{delay}"
"""
    return out


def writes(shared: Path) -> list[dict[str, Any]]:
    path = shared / "writes.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def statuses(url: str) -> dict[str, set[str]]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT integration_id, status FROM sluiced.jobs").fetchall()
    out: dict[str, set[str]] = defaultdict(set)
    for iid, status in rows:
        out[iid].add(status)
    return out


def holders(url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT integration_id, node_id FROM sluiced.leases WHERE node_id IS NOT NULL"
        ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def running_on(shared: Path, url: str, node: str) -> set[str]:
    """The integrations *node* holds and wrote to but whose jobs did not end."""
    done = {i for i, s in statuses(url).items() if "completed" in s}
    held = {i for i, n in holders(url).items() if n == node}
    wrote = {w["integration"] for w in writes(shared) if w["node"] == node}
    return (held & wrote) - done


def test_three_nodes_share_the_integrations_through_a_kill_and_a_freeze(
    tmp_path: Path, pg_url: str, procs: list[DaemonProc]
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    for ident in INTEGRATIONS:
        write_people(shared / f"{ident}.jsonl", PEOPLE)
    path = install_recording(tmp_path / "site")
    nodes: dict[str, DaemonProc] = {}
    for name in ("n1", "n2", "n3"):
        root = tmp_path / name
        root.mkdir()
        (root / "config.toml").write_text(node_config(shared, pg_url, name))
        d = DaemonProc(root)
        d.env.update(PYTHONPATH=path, SLUICED_TEST_NODE=name, SLUICED_TEST_PG_PASSWORD="x")
        procs.append(d)
        nodes[name] = d.start(wait=False)
    for d in nodes.values():
        d.wait_ready()

    # Kill -9 a node in the middle of its jobs.
    wait_for(lambda: any(running_on(shared, pg_url, n) for n in nodes), timeout=60)
    victim = next(n for n in nodes if running_on(shared, pg_url, n))
    orphans = running_on(shared, pg_url, victim)
    nodes[victim].kill()
    killed_at = time.time()

    def taken_over() -> bool:
        return all(
            any(
                w["integration"] == i and w["node"] != victim and w["at"] > killed_at
                for w in writes(shared)
            )
            for i in orphans
        )

    wait_for(taken_over, timeout=60)
    recovery = (
        max(
            min(
                w["at"]
                for w in writes(shared)
                if w["integration"] == i and w["node"] != victim and w["at"] > killed_at
            )
            for i in orphans
        )
        - killed_at
    )
    assert recovery < TTL + HEARTBEAT + 8, recovery  # ttl + heartbeat, and a loaded machine

    # Freeze another past its leases, then wake it.
    survivors = [n for n in nodes if n != victim]
    wait_for(lambda: any(running_on(shared, pg_url, n) for n in survivors), timeout=60)
    frozen = next(n for n in survivors if running_on(shared, pg_url, n))
    nodes[frozen].signal(signal.SIGSTOP)
    stopped_at = time.time()
    time.sleep(TTL * 2 + HEARTBEAT)
    nodes[frozen].signal(signal.SIGCONT)
    woke = time.time()

    def complete() -> bool:
        s = statuses(pg_url)
        return all("completed" in s.get(i, set()) for i in INTEGRATIONS)

    wait_for(complete, timeout=120)
    # The killed node's jobs were resumed, and each names the node that resumed it.
    import psycopg

    with psycopg.connect(pg_url) as conn:
        ran = conn.execute(
            "SELECT integration_id, node FROM sluiced.jobs WHERE status='completed'"
        ).fetchall()
    assert all(n in survivors for i, n in ran if i in orphans), (orphans, ran)
    log = writes(shared)
    by_integration: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for w in sorted(log, key=lambda w: w["at"]):
        by_integration[w["integration"]].append(w)
    expected = {f"P{i:06d}" for i in range(PEOPLE)}
    handovers = 0
    for ident in INTEGRATIONS:
        lines = by_integration[ident]
        ids = [i for w in lines for i in w["ids"]]
        assert set(ids) == expected, ident  # nothing lost
        # Never two nodes at once: once another node wrote, the earlier one never again.
        order = [w["node"] for w in lines]
        runs = [n for k, n in enumerate(order) if k == 0 or order[k - 1] != n]
        assert len(runs) == len(set(runs)), (ident, order)
        handovers += len(runs) - 1
        # What is written twice is at most the batch in flight at each handover.
        assert len(ids) - len(set(ids)) <= BATCH * (len(runs) - 1), (ident, order)
    assert handovers >= 1
    # Woken, the frozen node wrote nothing more for what another took over meanwhile.
    taken = {w["integration"] for w in log if w["node"] != frozen and w["at"] > stopped_at}
    late = [w for w in log if w["node"] == frozen and w["at"] > woke and w["integration"] in taken]
    assert late == []
    writers = {w["node"] for w in log}
    assert len(writers) >= 2, writers

    # A node answers for the cluster's reads. Right after the freeze one node may hold
    # every integration for a while (the woken node rejoins, then the other hands its
    # surplus back): the shares even out on their own.
    def even() -> bool:
        counts = Counter(holders(pg_url).values())
        return all(counts[n] == len(INTEGRATIONS) // len(survivors) for n in survivors)

    wait_for(even, timeout=60)
    asked = next(n for n in survivors)
    held = holders(pg_url)
    other = next(i for i in INTEGRATIONS if held.get(i) not in (None, asked))
    client = nodes[asked].client()
    jobs = client.get("/api/sync/jobs", params={"integrationId": other}).json()["jobs"]
    assert any(j["status"] == "completed" for j in jobs)
    # A command for what another node holds reaches it through the store, answered as
    # if local, and takes effect within two seconds.
    holder = nodes[held[other]].client()
    latencies = []
    commanded = time.time()

    def command(method: str, path: str, **kw: Any) -> Any:
        began = time.monotonic()
        r = client.request(method, path, **kw)
        latencies.append(time.monotonic() - began)
        assert latencies[-1] < 2, (path, latencies[-1])
        return r

    r = command("POST", f"/api/sync/integrations/{other}/pause")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "success": True,
        "integrationId": other,
        "pausedJobs": [],
        "message": "Integration paused",
    }
    assert holder.get(f"/api/sync/integrations/{other}").json()["status"]["code"] == "Paused"
    r = command("POST", f"/api/sync/integrations/{other}/start", json={"syncType": "full"})
    assert r.status_code == 202 and r.json()["message"] == "Sync started", r.text
    started = r.json()["jobId"]
    wait_for(lambda: client.get(f"/api/sync/jobs/{started}").json()["status"] == "completed")
    assert client.get(f"/api/sync/jobs/{started}").json()["node"] == held[other]
    r = command("POST", "/api/sync/jobs", json={"integrationId": other, "type": "full_sync"})
    assert r.status_code == 202 and r.json()["status"] == "queued", r.text
    run = r.json()["jobId"]
    r = command("POST", f"/api/sync/integrations/{other}/stop")
    assert r.status_code == 200 and r.json()["message"] == "Integration sync stopped", r.text
    assert client.get(f"/api/sync/integrations/{other}").json()["status"]["code"] == "Paused"
    wait_for(lambda: client.get(f"/api/sync/jobs/{run}").json()["status"].endswith("ed"))
    assert (
        holder.post(f"/api/sync/integrations/{other}/pause").json()
        == command("POST", f"/api/sync/integrations/{other}/pause").json()
    )  # the same answer from the holder itself
    r = command("POST", f"/api/sync/integrations/{other}/start", json={"scheduleImmediate": False})
    assert r.status_code == 202 and r.json()["message"] == "Schedule resumed", r.text
    assert command("POST", "/api/sync/integrations/nope/pause").status_code == 404
    # The commands' jobs ran on the holder (the node asked may have run the integration
    # before the shares evened out).
    wrote = {w["node"] for w in writes(shared) if w["integration"] == other and w["at"] > commanded}
    assert asked not in wrote, wrote

    # Any node shows every node, and each integration with the node that runs it.
    def shown_as_held() -> bool:
        status = client.get("/api/sync/integrations/status").json()
        return {i["integrationId"]: i["node"] for i in status["integrations"]} == {
            i: holders(pg_url).get(i) for i in INTEGRATIONS
        }

    wait_for(shown_as_held, timeout=30)
    listed = {n["nodeId"]: n for n in client.get("/api/sync/integrations/status").json()["nodes"]}
    assert set(listed) == set(nodes) and not listed[victim]["live"], listed
    assert all(listed[n]["live"] and listed[n]["heartbeatAt"] for n in survivors), listed
    for name in survivors:
        shown = nodes[name].ctl("status")
        assert shown.returncode == 0, shown.stderr
        assert all(f"\n{i} " in shown.stdout for i in INTEGRATIONS), shown.stdout
        assert all(f"\n{n} " in shown.stdout for n in nodes), shown.stdout
    # A node leaving gracefully hands its leases back: the others show it gone at once.
    leaving = next(n for n in survivors if n != asked)
    assert nodes[leaving].stop() == 0, nodes[leaving].log.read_text()[-3000:]
    gone = {n["nodeId"]: n for n in client.get("/api/sync/integrations/status").json()["nodes"]}
    assert not gone[leaving]["live"] and gone[leaving]["leftAt"], gone
    assert gone[leaving]["leases"] == 0, gone
    assert nodes[asked].stop() == 0, nodes[asked].log.read_text()[-3000:]
    print(
        f"recovered the killed node's work in {recovery:.1f}s; {handovers} handovers;"
        f" commands through the store answered in {max(latencies):.3f}s at most"
    )
