"""A full state directory, for real: the state directory is a 4 MiB tmpfs, filled up
while the daemon runs. The daemon stays up and answers, the job fails with an error that
names the store file, and once space is back the next run completes."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .daemonproc import (
    DaemonProc,
    daemons,
    first_job,
    make_daemon,
    wait_for,
    wait_job,
    write_people,
)
from .tmpfs import small_tmpfs

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)


@pytest.fixture
def small_state_dir(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/state`` on a 4 MiB tmpfs (needs root and mount)."""
    with small_tmpfs(tmp_path / "state", "4m") as state:
        yield state


def fill(directory: Path, leave: int = 0, name: str = "filler") -> Path:
    """Write a file in *directory* until the file system is full but for *leave* bytes."""
    filler = directory / name
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        st = os.statvfs(directory)
        todo = st.f_bavail * st.f_frsize - leave
        block = b"\0" * 65536
        while todo > 0:
            try:
                todo -= os.write(fd, block[: min(len(block), todo)])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                block = block[: len(block) // 2]
                if not block:
                    break
    finally:
        os.close(fd)
    return filler


def start_job(d: DaemonProc) -> Any:
    return d.client().post(
        "/api/sync/jobs", json={"integrationId": "people", "type": "incremental_sync"}
    )


def truncate_wal(store: Path) -> None:
    """Checkpoint the store and cut its WAL to 0 bytes: every write then needs new space."""
    with contextlib.closing(sqlite3.connect(store)) as conn:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0


@pytest.fixture
def synced(tmp_path: Path, small_state_dir: Path, procs: list[DaemonProc]) -> DaemonProc:
    """A daemon on the small state directory, after its first run."""
    d = make_daemon(tmp_path, people=20, batch_size=100, interval="3s")
    procs.append(d)
    d.start()
    assert wait_job(d.client(), first_job(d.client())["id"])["status"] == "completed"
    return d


def test_a_full_state_dir_fails_the_job_naming_the_store_and_the_daemon_stays_up(
    tmp_path: Path, small_state_dir: Path, synced: DaemonProc
) -> None:
    d, client = synced, synced.client()
    store = small_state_dir / "sluiced.sqlite3"
    # The next run has 1,500 new people to record: far more than the space left.
    write_people(tmp_path / "people.jsonl", 1_520)
    truncate_wal(store)
    filler = fill(small_state_dir, leave=96 * 1024)
    answer = start_job(d)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["jobId"]

    def failed_or_waiting() -> bool:
        if client.get(f"/api/sync/jobs/{job_id}").json()["status"] == "failed":
            return True
        return any(
            line.get("event") == "the store cannot be written; the job fails"
            for line in d.log_lines()
        )

    wait_for(failed_or_waiting)
    # Still full: the daemon is up and answers.
    assert d.proc is not None and d.proc.poll() is None
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/sync/integrations/people").status_code == 200

    filler.unlink()
    job = wait_job(client, job_id, ("failed",))
    assert str(store) in job["error"] and "full" in job["error"], job
    assert job["errorCode"] == "StoreUnavailable"
    # The integration's last execution says so too (recorded just after the job).
    wait_for(lambda: str(store) in json.dumps(client.get("/api/sync/integrations/people").json()))

    wait_for(lambda: not client.get("/api/sync/jobs", params={"status": "running"}).json()["jobs"])
    again = start_job(d)
    if again.status_code == 202:
        assert wait_job(client, again.json()["jobId"])["status"] == "completed"
    wait_for(lambda: len((tmp_path / "out" / "people.jsonl").read_text().splitlines()) == 1_520)
    assert d.stop() == 0


def test_a_state_dir_full_from_the_start_refuses_new_jobs_naming_the_store(
    tmp_path: Path, small_state_dir: Path, synced: DaemonProc
) -> None:
    d, client = synced, synced.client()
    store = small_state_dir / "sluiced.sqlite3"
    truncate_wal(store)
    filler = fill(small_state_dir)
    refused = start_job(d)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "StoreUnavailable"
    assert str(store) in refused.json()["error"]["message"]
    # The scheduler (every 3 s) cannot start its job either, and says so; the daemon stays up.
    wait_for(
        lambda: any(
            line.get("event") == "the scheduler cannot use the store; trying again"
            for line in d.log_lines()
        )
    )
    assert d.proc is not None and d.proc.poll() is None
    assert client.get("/healthz").status_code == 200

    filler.unlink()
    write_people(tmp_path / "people.jsonl", 30)
    again = start_job(d)
    assert again.status_code == 202, again.text
    assert wait_job(client, again.json()["jobId"])["status"] == "completed"
    assert len((tmp_path / "out" / "people.jsonl").read_text().splitlines()) == 30
    assert d.stop() == 0


def test_the_daemon_starts_on_a_full_state_dir_and_says_what_it_cannot_do(
    tmp_path: Path, small_state_dir: Path, synced: DaemonProc
) -> None:
    d = synced
    assert d.stop() == 0
    store = small_state_dir / "sluiced.sqlite3"
    truncate_wal(store)
    filler = fill(small_state_dir)
    # Opening the store needs its shared-memory file: with no byte free it may not be
    # made. Then the daemon exits 1 saying why (systemd starts it again later); else it
    # comes up and refuses what needs a write, saying why.
    d.start(wait=False)
    assert d.proc is not None
    deadline = time.monotonic() + 20
    while d.proc.poll() is None and not d.socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if d.proc.poll() is not None:
        assert d.proc.returncode == 1
        assert f"sluiced: cannot open the store {store}: " in d.log.read_text()
    else:
        d.wait_ready()
        refused = start_job(d)
        assert refused.status_code == 503, refused.text
        assert str(store) in refused.json()["error"]["message"]
    filler.unlink()
    if d.proc.poll() is not None:
        d.start()
    write_people(tmp_path / "people.jsonl", 25)
    again = start_job(d)
    if again.status_code == 202:  # else the scheduler's run got there first
        assert wait_job(d.client(), again.json()["jobId"])["status"] == "completed"
    wait_for(lambda: len((tmp_path / "out" / "people.jsonl").read_text().splitlines()) == 25)
    assert d.stop() == 0
    assert "Traceback" not in d.log.read_text()


def test_healthz_reports_the_store_and_the_scheduler_and_health_exits_1(
    tmp_path: Path, small_state_dir: Path, synced: DaemonProc
) -> None:
    d, client = synced, synced.client()
    health = client.get("/healthz").json()
    assert health["ok"] and health["store"] == {"ok": True, "error": None}
    assert health["scheduler"]["ok"] and health["scheduler"]["lastTick"]
    assert d.ctl("health").returncode == 0

    store = small_state_dir / "sluiced.sqlite3"
    truncate_wal(store)
    filler = fill(small_state_dir)
    assert start_job(d).status_code == 503  # a write that fails
    # The scheduler (every 3 s) fails to start its job too.
    wait_for(lambda: not client.get("/healthz").json()["scheduler"]["ok"])
    health = client.get("/healthz").json()
    assert health["status"] == "degraded" and not health["ok"]
    assert not health["store"]["ok"] and str(store) in health["store"]["error"]
    assert str(store) in health["scheduler"]["error"]
    out = d.ctl("health")
    assert out.returncode == 1 and "store: cannot write the store" in out.stdout, out

    filler.unlink()
    wait_for(lambda: start_job(d).status_code in (202, 409))  # a write that works; its end
    wait_for(lambda: client.get("/healthz").json()["ok"])  # wakes the scheduler
    assert d.ctl("health").returncode == 0
    assert d.stop() == 0
