"""``sluiced run --once`` on a PostgreSQL store another daemon runs on: the one-shot node
joins, claims what no live node holds, runs one job of each (renewing its leases while
they run longer than a lease), leaves the others' integrations to them and says so,
hands its leases back and leaves."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .daemonproc import SLUICED, DaemonProc, daemons, first_job, make_daemon, wait_for, wait_job

pytestmark = pytest.mark.e2e

psycopg = pytest.importorskip("psycopg")

procs = pytest.fixture(daemons)

TTL = 2


def node(
    root: Path,
    pg_url: str,
    name: str,
    integrations: tuple[str, ...],
    people: int,
    batch_size: int = 100,
) -> DaemonProc:
    root.mkdir()
    extra = f'store = "{pg_url}"\nnode_id = "{name}"\nlease_ttl = "{TTL}s"\nheartbeat = "500ms"'
    return make_daemon(
        root, people=people, batch_size=batch_size, integrations=integrations, extra_daemon=extra
    )


def rows(pg_url: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return conn.execute(statement).fetchall()


def events(output: str) -> dict[str, dict[str, Any]]:
    found = {}
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        found[record.get("event")] = record
    return found


def test_a_one_shot_run_takes_what_no_live_node_holds_and_leaves_the_rest(
    tmp_path: Path, pg_url: str, procs: list[DaemonProc]
) -> None:
    a = node(tmp_path / "a", pg_url, "node-a", ("hr", "crm"), people=20)
    procs.append(a)
    a.start()
    for ident in ("hr", "crm"):
        assert wait_job(a.client(), first_job(a.client(), ident)["id"])["status"] == "completed"
    everything = ("hr", "crm", "ldap", "wiki")
    # Small batches: each job takes several leases' time, on a fast machine too.
    b = node(tmp_path / "b", pg_url, "node-b", everything, people=8_000, batch_size=10)
    once = subprocess.run(
        [*SLUICED, "run", "--once", "-c", str(b.config)],
        cwd=b.root,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert once.returncode == 0, once.stdout + once.stderr
    over = events(once.stdout + once.stderr)["one-shot run over"]
    ran, skipped = set(over["ran"]), over["skipped"]
    assert {"ldap", "wiki"} <= ran and ran | set(skipped) == set(everything)
    assert set(skipped) <= {"hr", "crm"} and set(skipped.values()) <= {"node-a"}
    assert over["failed"] == []
    for ident in ("ldap", "wiki"):  # one job each, whole
        lines = (b.root / "out" / f"{ident}.jsonl").read_text().splitlines()
        out = [json.loads(x)["id"] for x in lines]
        assert len(out) == len(set(out)) == 8_000
    jobs = rows(
        pg_url,
        "SELECT integration_id, status, duration_ms FROM sluiced.jobs"
        " WHERE integration_id IN ('ldap', 'wiki') ORDER BY integration_id",
    )
    assert [j[:2] for j in jobs] == [("ldap", "completed"), ("wiki", "completed")]
    assert max(j[2] for j in jobs) > 1000 * TTL, jobs  # they outlived a lease: renewed
    # It left: its leases handed back, its node gone; node-a holds its integrations.
    assert rows(pg_url, "SELECT count(*) FROM sluiced.leases WHERE node_id='node-b'") == [(0,)]
    left = rows(pg_url, "SELECT left_at IS NOT NULL FROM sluiced.nodes WHERE node_id='node-b'")
    assert left == [(True,)]

    def a_holds_its_own() -> bool:
        held = rows(
            pg_url,
            "SELECT integration_id FROM sluiced.leases WHERE node_id='node-a'"
            " AND expires_at > now() ORDER BY integration_id",
        )
        return held == [("crm",), ("hr",)]

    wait_for(a_holds_its_own, timeout=30)
    assert a.stop() == 0
