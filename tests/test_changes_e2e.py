"""The provisioning log end to end: ``sluicectl changes`` against a daemon, and a daemon
killed -9 in the middle of a sync, whose log then holds each change exactly once."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from .daemonproc import DaemonProc, daemons, first_job, make_daemon, wait_job, write_people

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)


def test_sluicectl_changes_shows_what_happened_to_an_object(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d = make_daemon(tmp_path, people=30, batch_size=10)
    procs.append(d)
    d.start()
    wait_job(d.client(), first_job(d.client())["id"])
    people = tmp_path / "people.jsonl"
    lines = people.read_text().splitlines()
    lines[3] = json.dumps({"id": "P000003", "name": "renamed"})
    people.write_text("\n".join(lines[:-1]) + "\n")  # P000029 leaves
    answer = d.client().post(
        "/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"}
    )
    wait_job(d.client(), answer.json()["jobId"])

    result = d.ctl("changes", "people", "--object", "P000003")
    assert result.returncode == 0, result.stderr
    header, update, create, count = result.stdout.splitlines()
    assert header.split() == ["TIME", "ACTION", "ENTITY", "OBJECT", "WHAT", "CHANGED"]
    assert update.split()[2:] == [
        "update",
        "user",
        "P000003",
        "name:",
        "person",
        "3",
        "→",
        "renamed",
    ]
    assert create.split()[2:5] == ["create", "user", "P000003"] and "name=person 3" in create
    assert count == "(2 changes)"
    out = d.ctl("--json", "changes", "people", "--action", "delete", "--since", "1h")
    (deleted,) = json.loads(out.stdout)["changes"]
    assert (deleted["action"], deleted["sourceId"]) == ("delete", "P000029")
    paged = json.loads(d.ctl("changes", "people", "--json", "--limit", "31").stdout)
    assert len(paged["changes"]) == 31 and paged["nextCursor"] is not None
    assert d.ctl("changes", "people", "--until", "2000-01-01").stdout.endswith("(0 changes)\n")
    bad = d.ctl("changes", "people", "--since", "last week")
    assert bad.returncode == 2 and "--since" in bad.stderr
    assert d.ctl("changes", "nope").returncode == 1


def logged(store: Path) -> tuple[list[tuple[str, str]], set[str]]:
    """The log's (action, source id) rows and the linked source ids, read from the file."""
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT action, source_id FROM changes ORDER BY id").fetchall()
        links = {r[0] for r in db.execute("SELECT source_id FROM links").fetchall()}
    return rows, links


def linked(store: Path) -> int:
    """How many objects are linked (a cheap look, while the sync runs)."""
    with sqlite3.connect(store) as db:
        return int(db.execute("SELECT count(*) FROM links").fetchone()[0])


def test_a_daemon_killed_mid_sync_logs_each_change_exactly_once(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    count = 20_000
    d = make_daemon(tmp_path, people=count, batch_size=100)
    procs.append(d)
    d.start()
    job = first_job(d.client())
    wait_job(d.client(), job["id"], ("running",))
    store = tmp_path / "state" / "sluiced.sqlite3"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and linked(store) < 2_000:
        time.sleep(0.01)
    d.kill()  # SIGKILL: no batch finishes, nothing is flushed
    rows, links = logged(store)
    assert 0 < len(links) < count
    # What was committed is logged, nothing else: one create per link.
    assert sorted(rows) == sorted(("create", s) for s in links)
    d.start()
    done = wait_job(d.client(), job["id"], timeout=120)
    assert done["status"] == "completed"
    rows, links = logged(store)
    assert len(links) == count
    assert len(rows) == count and {s for _, s in rows} == links  # none twice, none missing
    assert {a for a, _ in rows} == {"create"}
    write_people(tmp_path / "people.jsonl", count)  # the same again: nothing changes
    answer = d.client().post(
        "/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"}
    )
    wait_job(d.client(), answer.json()["jobId"], timeout=120)
    assert len(logged(store)[0]) == count


def test_an_escrow_dropped_with_sluicectl_is_in_the_log(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d = make_daemon(tmp_path, people=5)
    procs.append(d)
    with (tmp_path / "people.jsonl").open("a") as f:
        f.write("{not json\n")
    d.start()
    wait_job(d.client(), first_job(d.client())["id"])
    (escrow,) = json.loads(d.ctl("--json", "escrows", "people").stdout)["escrows"]
    dropped = d.ctl("escrow", "drop", "people", escrow["entityType"], escrow["objectId"])
    assert dropped.returncode == 0, dropped.stderr
    result = d.ctl("changes", "people", "--action", "drop")
    assert result.returncode == 0, result.stderr
    _, row, count = result.stdout.splitlines()
    assert row.split()[2:5] == ["drop", escrow["entityType"], escrow["objectId"]]
    assert row.endswith("source: dropped by an operator") and count == "(1 changes)"
    (drop,) = json.loads(d.ctl("--json", "changes", "people", "--action", "drop").stdout)["changes"]
    assert drop["jobId"] is None and drop["kind"] == "source"
