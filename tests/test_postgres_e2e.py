"""End to end on PostgreSQL: a real daemon keeps its state in a real server, which is
stopped in the middle of a job and started again; a second node shares the store, and
a daemon with the node_id of a live one is refused at start."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .daemonproc import SLUICED, DaemonProc, daemons, first_job, make_daemon, wait_for
from .pgserver import PgServer

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)


def on_postgresql(url: str, node: str) -> str:
    return f'store = "{url}"\nstore_password_env = "SLUICED_TEST_PG_PASSWORD"\nnode_id = "{node}"'


def ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def jobs_of(d: DaemonProc) -> list[dict[str, Any]]:
    answer = d.client().get("/api/sync/jobs", params={"integrationId": "people"})
    return answer.json()["jobs"] if answer.status_code == 200 else []  # type: ignore[no-any-return]


def test_the_daemon_stays_up_while_the_server_is_down_and_the_job_completes_after(
    tmp_path: Path, pg_server: PgServer, pg_url: str, procs: list[DaemonProc]
) -> None:
    count = 30_000
    d = make_daemon(
        tmp_path,
        people=count,
        batch_size=200,
        interval="3s",
        extra_daemon=on_postgresql(pg_url, "node-a"),
    )
    d.env["SLUICED_TEST_PG_PASSWORD"] = "hunter2"
    procs.append(d)
    d.start()
    client = d.client()
    job_id = first_job(client)["id"]

    def progressed() -> bool:
        job = client.get(f"/api/sync/jobs/{job_id}").json()
        return bool(job["stats"]["processed"] >= count // 10)

    wait_for(progressed)
    pg_server.stop()
    time.sleep(1.5)  # the job meets the stopped server
    assert d.proc is not None and d.proc.poll() is None, d.log.read_text()
    assert client.get("/healthz").status_code == 200
    pg_server.start()

    def completed() -> bool:
        return any(j["status"] == "completed" for j in jobs_of(d))

    wait_for(completed, timeout=120)
    out = ids(tmp_path / "out" / "people.jsonl")
    assert len(out) == count and len(set(out)) == count  # nothing lost, nothing twice
    assert d.stop() == 0
    log = d.log.read_text()
    assert "hunter2" not in log
    server = pg_url.partition("@")[2]  # the URL is logged with its user-info hidden
    assert any(
        line.get("event") == "sluiced starting" and line["store"].endswith("@" + server)
        for line in d.log_lines()
    )


def test_a_second_node_shares_the_store_and_one_with_the_same_node_id_is_refused(
    tmp_path: Path, pg_url: str, procs: list[DaemonProc]
) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    first = make_daemon(tmp_path / "a", people=5, extra_daemon=on_postgresql(pg_url, "node-a"))
    first.env["SLUICED_TEST_PG_PASSWORD"] = "x"
    procs.append(first)
    first.start()
    second = make_daemon(tmp_path / "b", people=5, extra_daemon=on_postgresql(pg_url, "node-b"))
    second.env["SLUICED_TEST_PG_PASSWORD"] = "x"
    procs.append(second)
    second.start()  # it joins: the nodes share the integrations under leases
    same = make_daemon(tmp_path / "c", people=5, extra_daemon=on_postgresql(pg_url, "node-a"))
    env = {**same.env, "SLUICED_TEST_PG_PASSWORD": "x"}
    refused = subprocess.run(
        [*SLUICED, "run", "-c", str(same.config)],
        cwd=same.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1, refused.stderr
    (line,) = refused.stderr.splitlines()
    assert line.startswith("sluiced: the node_id node-a is in use by another sluiced (process")
    assert "give each node its own node_id" in line
    # The read commands read the store the nodes run on.
    jobs = subprocess.run(
        [*SLUICED, "jobs", "--json", "-c", str(same.config)],
        cwd=same.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert jobs.returncode == 0, jobs.stderr
    assert first.stop() == 0
    assert second.stop() == 0


def test_a_daemon_older_than_the_database_refuses_to_start_saying_what_to_do(
    tmp_path: Path, pg_url: str
) -> None:
    import psycopg
    import trio

    from sluiced.store.postgres import MIGRATIONS, PostgresStore

    trio.run(PostgresStore(pg_url).aclose)  # the tables, at this sluiced's version
    newer = len(MIGRATIONS) + 1
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO sluiced.schema_version (version) VALUES (%s)", (newer,))
    d = make_daemon(tmp_path, people=5, extra_daemon=on_postgresql(pg_url, "node-a"))
    refused = subprocess.run(
        [*SLUICED, "run", "-c", str(d.config)],
        cwd=d.root,
        env={**d.env, "SLUICED_TEST_PG_PASSWORD": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 3, refused.stderr  # EXIT_STORE_REFUSED: no restart loop
    (line,) = refused.stderr.splitlines()
    assert f"is at schema version {newer}, newer than this sluiced" in line
    assert f"knows versions up to {len(MIGRATIONS)}" in line and "Upgrade sluiced" in line
