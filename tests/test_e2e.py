"""End to end: the daemon as a subprocess with a real config, real files, a real store."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

SLUICED = [sys.executable, "-m", "sluiced"]


def write_source(path: Path, count: int, *, extra_lines: dict[int, str] | None = None) -> None:
    with path.open("w") as f:
        for i in range(count):
            if extra_lines and i in extra_lines:
                f.write(extra_lines[i] + "\n")
            f.write(
                json.dumps(
                    {"id": f"P{i:06d}", "name": f"person {i}", "dept": ["a", "b", "c"][i % 3]}
                )
                + "\n"
            )


def write_config(tmp_path: Path, *, batch_size: int = 500, body: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f"""
[daemon]
state_dir = "state"
log_format = "json"
shutdown_grace = "20s"

[integrations.people]
entity_types = ["user"]
interval = "1h"
jitter = "0s"
batch_size = {batch_size}
{body}
[integrations.people.source]
connector = "jsonl"
paths = {{ user = "in.jsonl" }}
[integrations.people.target]
connector = "jsonl"
paths = {{ user = "out/people.jsonl" }}
""")
    return config


def run(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SLUICED, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def target_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def source_ids(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            out.append(json.loads(line)["id"])
    return out


def db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(
        f"file:{tmp_path / 'state' / 'sluiced.sqlite3'}?mode=ro", uri=True, timeout=10
    )


def jobs(tmp_path: Path) -> list[dict[str, Any]]:
    with db(tmp_path) as conn:
        return [json.loads(r[0]) for r in conn.execute("SELECT body FROM jobs ORDER BY created_at")]


def logs(tmp_path: Path, job_id: str) -> list[str]:
    with db(tmp_path) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT message FROM job_logs WHERE job_id=? ORDER BY seq", (job_id,)
            )
        ]


@pytest.fixture
def daemon_procs() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def start_daemon(config: Path, procs: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    with (config.parent / "daemon.log").open("a") as log:
        proc = subprocess.Popen(
            [*SLUICED, "run", "-c", str(config)],
            cwd=config.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    procs.append(proc)
    return proc


def wait_for_progress(
    tmp_path: Path, proc: subprocess.Popen[str], minimum: int, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
        try:
            found = jobs(tmp_path)
        except sqlite3.OperationalError:
            found = []
        if found and found[-1]["stats"]["processed"] >= minimum:
            return found[-1]
        time.sleep(0.01)
    raise AssertionError("the job made no progress")


def test_run_once_completes_the_job(tmp_path: Path) -> None:
    write_source(tmp_path / "in.jsonl", 1000)
    config = write_config(tmp_path, batch_size=100)
    result = run("run", "--once", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert target_ids(tmp_path / "out" / "people.jsonl") == source_ids(tmp_path / "in.jsonl")
    (job,) = jobs(tmp_path)
    assert job["status"] == "completed" and job["stats"]["created"] == 1000
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    job_lines = [line for line in lines if line.get("job_id") == job["id"]]
    assert job_lines and all(line["integration_id"] == "people" for line in job_lines)
    listing = run("jobs", "--json", "-c", str(config), cwd=tmp_path)
    assert json.loads(listing.stdout)["jobs"][0]["status"] == "completed"
    # A second run with nothing changed writes nothing.
    before = (tmp_path / "out" / "people.jsonl").stat().st_mtime_ns
    assert run("run", "--once", "-c", str(config), cwd=tmp_path).returncode == 0
    assert (tmp_path / "out" / "people.jsonl").stat().st_mtime_ns == before
    assert jobs(tmp_path)[-1]["type"] == "incremental_sync"


def test_malformed_source_lines_are_escrowed_while_the_rest_syncs(tmp_path: Path) -> None:
    write_source(tmp_path / "in.jsonl", 50, extra_lines={10: "{not json", 20: '{"name": "no id"}'})
    config = write_config(tmp_path)
    result = run("run", "--once", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(target_ids(tmp_path / "out" / "people.jsonl")) == 50
    with db(tmp_path) as conn:
        escrows = sorted(conn.execute("SELECT object_id, kind FROM escrows"))
    assert escrows == [("in.jsonl:11", "source"), ("in.jsonl:22", "source")]
    job = jobs(tmp_path)[-1]
    assert job["stats"]["errors"] == 2 and job["status"] == "completed"


def test_a_bad_config_exits_non_zero_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, body='full_sync_interval = "weekly"\n')
    for command in ("check-config", "run"):
        result = run(command, "-c", str(config), cwd=tmp_path)
        assert result.returncode == 2
        assert "integrations.people.full_sync_interval" in result.stderr
        assert '"weekly"' in result.stderr and "expected a positive duration" in result.stderr
    result = run("check-config", "-c", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert result.returncode == 2 and "nope.toml" in result.stderr


def test_kill_9_mid_sync_then_restart_resumes_and_converges(
    tmp_path: Path, daemon_procs: list[subprocess.Popen[str]]
) -> None:
    count = 60_000
    write_source(tmp_path / "in.jsonl", count)
    config = write_config(tmp_path, batch_size=200)
    proc = start_daemon(config, daemon_procs)
    job = wait_for_progress(tmp_path, proc, minimum=count // 10)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = jobs(tmp_path)[-1]
    assert killed_at["status"] == "running" and killed_at["stats"]["processed"] < count
    assert killed_at["checkpoint"]["cursor"] is not None

    result = run("run", "--once", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (resumed,) = jobs(tmp_path)
    assert resumed["id"] == job["id"] and resumed["status"] == "completed"
    assert any(
        m.startswith("resuming from the checkpoint, after") for m in logs(tmp_path, job["id"])
    )
    assert resumed["stats"]["created"] == count  # each object created once
    out = target_ids(tmp_path / "out" / "people.jsonl")
    assert out == source_ids(tmp_path / "in.jsonl") and len(set(out)) == count


def test_sigterm_stops_gracefully_and_the_job_resumes_at_the_next_start(
    tmp_path: Path, daemon_procs: list[subprocess.Popen[str]]
) -> None:
    count = 40_000
    write_source(tmp_path / "in.jsonl", count)
    config = write_config(tmp_path, batch_size=200)
    proc = start_daemon(config, daemon_procs)
    wait_for_progress(tmp_path, proc, minimum=count // 10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    (stopped,) = jobs(tmp_path)
    assert stopped["status"] == "stopped" and stopped["interrupted"]
    assert (tmp_path / "out" / "people.jsonl").exists()  # what was synced is visible
    assert run("run", "--once", "-c", str(config), cwd=tmp_path).returncode == 0
    (done,) = jobs(tmp_path)
    assert done["status"] == "completed" and done["stats"]["created"] == count
    assert target_ids(tmp_path / "out" / "people.jsonl") == source_ids(tmp_path / "in.jsonl")
