"""A file target killed -9 around its final merge loses nothing.

The daemon runs as a subprocess over real files; it is killed while the target's
temporary file exists (the merge is under way) or just after the pass completed (the
journal holds everything, the file nothing yet). After a restart the job completes and
the target holds every object; a later run over unchanged data still does.

The scale is what makes the crash window wide enough to land in: the merge of 50,000
objects keeps the temporary file for about 100 ms (and "pass complete" is logged
just before it), against a poll every 0.5 ms; fewer objects narrow it towards the
poll's own latency on a busy machine (the merge copies about half a million objects a
second).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_e2e import (
    SLUICED,
    jobs,
    run,
    source_ids,
    start_daemon,
    target_ids,
    write_config,
    write_source,
)

pytestmark = pytest.mark.e2e

#: Objects in the source: enough that the final merge is a window (see the module).
COUNT = 50_000


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_until(proc: subprocess.Popen[str], moment: str, out: Path, log: Path) -> None:
    """Poll (without sleeping much: a merge takes a fraction of a second) for *moment*."""
    tmp = out.with_name(f".{out.name}.sluiced-tmp")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        if moment == "merging" and tmp.exists():
            return
        if moment == "pass complete" and "pass complete" in log.read_text():
            return
        time.sleep(0.0005 if moment == "merging" else 0.002)
    raise AssertionError(f"never saw {moment}:\n{log.read_text()}")


@pytest.mark.parametrize("moment", ["merging", "pass complete"])
def test_kill_9_around_the_final_merge_then_restart_loses_nothing(
    tmp_path: Path, procs: list[subprocess.Popen[str]], moment: str
) -> None:
    count = COUNT
    write_source(tmp_path / "in.jsonl", count)
    config = write_config(tmp_path, batch_size=1000)
    out = tmp_path / "out" / "people.jsonl"
    proc = start_daemon(config, procs)
    wait_until(proc, moment, out, tmp_path / "daemon.log")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # killed before the merge renamed anything into place

    resumed = run("run", "--once", "-c", str(config), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert jobs(tmp_path)[0]["status"] == "completed"
    assert target_ids(out) == source_ids(tmp_path / "in.jsonl")
    # A later run over the same data writes nothing and the objects stay.
    again = run("run", "--once", "-c", str(config), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(target_ids(out)) == count
    assert _journal_empty(out)


def test_kill_9_during_the_merge_of_an_incremental_run_keeps_every_edit(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    count, edits = COUNT, 500
    write_source(tmp_path / "in.jsonl", count)
    config = write_config(tmp_path, batch_size=1000)
    out = tmp_path / "out" / "people.jsonl"
    assert run("run", "--once", "-c", str(config), cwd=tmp_path).returncode == 0
    lines = (tmp_path / "in.jsonl").read_text().splitlines()
    for i in range(0, count, count // edits):
        lines[i] = json.dumps({**json.loads(lines[i]), "name": "edited"})
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    with (tmp_path / "daemon.log").open("a") as log:
        proc = subprocess.Popen(
            [*SLUICED, "run", "--once", "-c", str(config)],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    procs.append(proc)
    wait_until(proc, "merging", out, tmp_path / "daemon.log")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    for _ in range(2):  # the resumed job, then a run over unchanged data
        result = run("run", "--once", "-c", str(config), cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert [j["status"] for j in jobs(tmp_path)][:2] == ["completed", "completed"]
        names = [json.loads(line)["name"] for line in out.read_text().splitlines()]
        assert len(names) == count and names.count("edited") == edits


def _journal_empty(out: Path) -> bool:
    journal = out.with_name(out.name + ".sluiced-journal")
    if not journal.exists():
        return True
    with sqlite3.connect(journal) as conn:
        return int(conn.execute("SELECT count(*) FROM ops").fetchone()[0]) == 0
