"""Start-up on a store that cannot be trusted: a damaged one and one that was lost (a
0-byte or missing file where the daemon ran before). The daemon refuses with a message
naming the file and what to do, and an exit status the systemd unit does not restart on;
told to begin anew, it does."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluiced.store import EXIT_STORE_REFUSED

from .daemonproc import SLUICED, DaemonProc, daemons, first_job, make_daemon, wait_job

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)

UNIT = Path(__file__).parent.parent / "systemd" / "sluiced.service"


@pytest.fixture
def ran(tmp_path: Path, procs: list[DaemonProc]) -> Iterator[DaemonProc]:
    """A daemon that synced once and stopped: its store holds links and a job."""
    d = make_daemon(tmp_path, people=300)
    procs.append(d)
    d.start()
    assert wait_job(d.client(), first_job(d.client())["id"])["status"] == "completed"
    assert d.stop() == 0
    yield d


def store_of(d: DaemonProc) -> Path:
    return d.root / "state" / "sluiced.sqlite3"


def run_cli(d: DaemonProc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SLUICED, *args, "-c", str(d.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=d.root,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def assert_refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == EXIT_STORE_REFUSED, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in result.stderr, result.stderr


def test_the_unit_does_not_restart_on_a_refused_store_or_config() -> None:
    lines = [x for x in UNIT.read_text().splitlines() if x.startswith("RestartPreventExitStatus=")]
    assert len(lines) == 1
    statuses = set(lines[0].split("=", 1)[1].split())
    assert {str(EXIT_STORE_REFUSED), "2"} <= statuses


@pytest.mark.parametrize("where", ["header", "pages"])
def test_a_damaged_store_is_refused_then_set_aside_when_told(ran: DaemonProc, where: str) -> None:
    path = store_of(ran)
    size = path.stat().st_size
    assert size > 4 * 4096
    with path.open("r+b") as f:  # garbage over the header, or over every page but the first
        if where == "header":
            f.write(b"\xa5" * 100)
        else:
            f.seek(4096)
            f.write(bytes(range(256)) * ((size - 4096) // 256))

    result = run_cli(ran, "run")
    assert_refused(result, str(path), "is damaged", "--fresh-store", "backup")
    assert path.stat().st_size == size  # untouched

    # `sluiced jobs` reads the store (unchecked): a clear error naming it, no traceback.
    listed = run_cli(ran, "jobs")
    assert listed.returncode in (1, EXIT_STORE_REFUSED) and str(path) in listed.stderr
    assert "Traceback" not in listed.stderr

    ran.start(command=[*SLUICED, "run", "-c", str(ran.config), "--fresh-store"])
    aside = [p for p in path.parent.iterdir() if p.name.startswith("sluiced.sqlite3.damaged-")]
    assert [p.stat().st_size for p in aside] == [size]  # kept, never deleted
    assert wait_job(ran.client(), first_job(ran.client())["id"])["status"] == "completed"
    assert ran.stop() == 0
    assert run_cli(ran, "run", "--once").returncode == 0  # the new store is sound


@pytest.mark.parametrize("lost", ["truncated", "deleted"])
def test_a_lost_store_where_the_daemon_ran_is_refused(ran: DaemonProc, lost: str) -> None:
    path = store_of(ran)
    if lost == "truncated":
        path.write_bytes(b"")
    else:
        for part in path.parent.glob("sluiced.sqlite3*"):
            part.unlink()

    what = "empty (0 bytes)" if lost == "truncated" else "missing"
    result = run_cli(ran, "run")
    assert_refused(result, str(path), what, "sluiced.lock", "--fresh-store", "backup")
    # Reading commands neither fail nor create or migrate the store.
    listed = run_cli(ran, "jobs")
    assert listed.returncode == 0 and "(0 of 0)" in listed.stdout
    assert_refused(run_cli(ran, "run"), what)

    ran.start(command=[*SLUICED, "run", "-c", str(ran.config), "--fresh-store"])
    job = wait_job(ran.client(), first_job(ran.client())["id"])
    assert job["status"] == "completed"
    assert ran.stop() == 0
    assert run_cli(ran, "run", "--once").returncode == 0  # no flag needed any more


def test_the_fresh_store_file_begins_anew_once(ran: DaemonProc) -> None:
    path = store_of(ran)
    path.write_bytes(b"")
    marker = path.parent / "fresh-store"
    marker.touch()
    assert run_cli(ran, "run", "--once").returncode == 0
    assert not marker.exists()  # used up
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM links").fetchone()[0] == 300
    conn.close()
    path.write_bytes(b"")
    assert_refused(run_cli(ran, "run"), "empty (0 bytes)")


def test_a_first_start_needs_no_flag(tmp_path: Path, procs: list[DaemonProc]) -> None:
    d = make_daemon(tmp_path, people=10)
    procs.append(d)
    assert run_cli(d, "jobs").returncode == 0
    assert not store_of(d).exists()  # reading created nothing
    assert run_cli(d, "run", "--once").returncode == 0
