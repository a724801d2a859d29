"""A file target on a full or read-only file system: the job fails naming the file,
the daemon stays up, and the next run after space is back converges.

The file system is a small tmpfs mounted for the test (which needs root: the tests
are skipped without it). Root ignores permission bits, so a read-only *mount* is the
realistic way to refuse writes.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluiced.connectors import Op
from sluiced.errors import SyncError
from sluiced.plugins.files.target import FileTarget

from .daemonproc import DaemonProc, daemons, first_job, make_daemon, wait_job, write_people
from .test_files import settings
from .tmpfs import small_tmpfs

procs = pytest.fixture(daemons)


def mount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", options, "tmpfs", str(where)], check=True)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs at ``tmp_path/out``."""
    with small_tmpfs(tmp_path / "out", "256k") as where:
        yield where


def ops(count: int, start: int = 0) -> list[Op]:
    return [
        Op(kind="create", source_id=str(i), data={"id": str(i), "bio": "x" * 200})
        for i in range(start, start + count)
    ]


async def test_a_full_target_directory_is_an_error_naming_the_file(
    tmp_path: Path, small_fs: Path
) -> None:
    target = FileTarget(settings("jsonl", tmp_path, paths={"user": "out/people.jsonl"}))
    with pytest.raises(SyncError) as info:
        for n in range(0, 2000, 100):
            await target.apply("user", ops(100, n))
        await target.flush()
    message = str(info.value)
    assert str(small_fs / "people.jsonl") in message
    assert "No space left on device" in message or "database or disk is full" in message
    leftovers = [n for n in os.listdir(small_fs) if n.endswith("sluiced-tmp")]
    assert not leftovers  # a failed merge leaves no half file taking space
    mount(small_fs, "remount,size=8m")  # space is back: the replayed batches go through
    for n in range(0, 2000, 100):
        await target.apply("user", ops(100, n))
    await target.flush()
    assert len((small_fs / "people.jsonl").read_text().splitlines()) == 2000
    await target.aclose()


async def test_a_read_only_target_directory_is_an_error_naming_the_file(
    tmp_path: Path, small_fs: Path
) -> None:
    cfg = settings("jsonl", tmp_path, paths={"user": "out/people.jsonl"})
    target = FileTarget(cfg)
    await target.apply("user", ops(3))
    await target.flush()
    await target.aclose()
    mount(small_fs, "remount,ro")
    for again in (target, FileTarget(cfg)):  # a journal open before, or opened now
        with pytest.raises(SyncError, match=str(small_fs / "people.jsonl")) as info:
            await again.apply("user", ops(1, 10))
            await again.flush()
        assert "read" in str(info.value).lower()  # read-only / readonly database
        await again.aclose()
    assert len((small_fs / "people.jsonl").read_text().splitlines()) == 3


def test_the_daemon_fails_the_job_naming_the_file_stays_up_and_resumes(
    tmp_path: Path, small_fs: Path, procs: list[DaemonProc]
) -> None:
    d = make_daemon(tmp_path, people=100)
    procs.append(d)
    d.start()
    c = d.client()
    assert wait_job(c, first_job(c)["id"])["status"] == "completed"
    write_people(tmp_path / "people.jsonl", 6000)  # about 300 KiB: more than there is

    def sync() -> dict[str, object]:
        r = c.post("/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"})
        assert r.status_code in (200, 201, 202), r.text
        return wait_job(c, r.json()["jobId"])

    failed = sync()
    assert failed["status"] == "failed", failed
    assert str(small_fs / "people.jsonl") in str(failed["error"])
    assert c.get("/healthz").status_code == 200 and d.proc is not None and d.proc.poll() is None
    assert "Traceback" not in d.log.read_text()

    mount(small_fs, "remount,ro")
    write_people(tmp_path / "people.jsonl", 3000, start=1)
    failed = sync()
    assert failed["status"] == "failed" and str(small_fs) in str(failed["error"])
    assert c.get("/healthz").status_code == 200

    mount(small_fs, "remount,rw,size=8m")  # space is back
    done = sync()
    assert done["status"] == "completed", done
    out = [json.loads(line)["id"] for line in (small_fs / "people.jsonl").read_text().splitlines()]
    assert sorted(out) == [f"P{i:06d}" for i in range(1, 3001)]
