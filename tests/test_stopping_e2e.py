"""Stopping the daemon while its source is dead: SIGTERM ends retry waits at once and
the job checkpoints; a second SIGTERM or SIGINT stops at once, the store consistent.

The daemon runs as a subprocess on its real socket; the source is a Stash endpoint that
refuses connections, answers 503, or never answers."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .daemonproc import DaemonProc, daemons, first_job, wait_job

pytestmark = pytest.mark.e2e
procs = pytest.fixture(daemons)

#: The first retry waits from half this on: far longer than a stop may take (the
#: old code slept it out, and more).
RETRY_BASE_S = 60
#: How long a stop may take here (a generous bound: it takes well under a second).
EXIT_WITHIN_S = 15


def config(url: str, root: Path, *, timeout: str = "2s") -> str:
    (root / "key").write_text("stash-key\n")
    return f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
shutdown_grace = "120s"
[integrations.stash]
entity_types = ["performer"]
interval = "1h"
jitter = "0s"
[integrations.stash.retry]
attempts = 10
base = "{RETRY_BASE_S}s"
cap = "120s"
[integrations.stash.source]
connector = "stash"
url = "{url}"
api_key_file = "key"
timeout = "{timeout}"
[integrations.stash.target]
connector = "stash-mirror"
path = "mirror.sqlite3"
"""


@pytest.fixture
def refused() -> Iterator[str]:
    """A port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield f"http://127.0.0.1:{port}/graphql"


class _Unavailable(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def unavailable() -> Iterator[str]:
    """A server answering every request with 503."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/graphql"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that accepts connections (into its backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/graphql"


def start(root: Path, procs: list[DaemonProc], text: str) -> DaemonProc:
    (root / "config.toml").write_text(text)
    d = DaemonProc(root)
    procs.append(d)
    return d.start()


def wait_log(d: DaemonProc, needle: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(needle in line.get("event", "") for line in d.log_lines()):
            return
        time.sleep(0.05)
    raise AssertionError(f"no log line with {needle!r}:\n{d.log.read_text()}")


def stored_job(root: Path, job_id: str) -> dict[str, Any]:
    """The job as the store holds it, after checking the database file is sound."""
    with sqlite3.connect(root / "state" / "sluiced.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (body,) = db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        logs = [
            m for (m,) in db.execute("SELECT message FROM job_logs WHERE job_id = ?", (job_id,))
        ]
    job: dict[str, Any] = json.loads(body)
    job["logs"] = logs
    return job


def timed_exit(d: DaemonProc, signum: int, timeout: float) -> tuple[int, float]:
    assert d.proc is not None
    d.close_client()
    began = time.monotonic()
    d.signal(signum)
    code = d.proc.wait(timeout=timeout)
    return code, time.monotonic() - began


@pytest.mark.parametrize("source", ["refused", "unavailable"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_ends_retry_waits_at_once_and_the_job_checkpoints(
    tmp_path: Path,
    procs: list[DaemonProc],
    source: str,
    signum: int,
    request: pytest.FixtureRequest,
) -> None:
    d = start(tmp_path, procs, config(request.getfixturevalue(source), tmp_path))
    job = first_job(d.client(), "stash")
    wait_log(d, "retry 1 in")  # the job now sleeps RETRY_BASE_S / 2 or more before retrying
    code, took = timed_exit(d, signum, timeout=EXIT_WITHIN_S)
    print(f"{source}: exited {code} {took:.2f}s after {signal.Signals(signum).name}")
    assert code == 0
    stored = stored_job(tmp_path, job["id"])
    assert stored["status"] == "stopped" and stored["interrupted"] is True, stored
    assert any("stopped after the current batch (daemon shutdown)" in m for m in stored["logs"])


def test_a_second_signal_stops_at_once_and_the_store_stays_consistent(
    tmp_path: Path, procs: list[DaemonProc], silent: str
) -> None:
    d = start(tmp_path, procs, config(silent, tmp_path, timeout="600s"))
    job = first_job(d.client(), "stash")
    wait_job(d.client(), job["id"], ("running",))
    time.sleep(0.5)  # its first request is in flight, and is never answered
    d.close_client()
    assert d.proc is not None
    d.signal(signal.SIGTERM)
    wait_log(d, "stopping: running jobs checkpoint and stop")
    with pytest.raises(subprocess.TimeoutExpired):
        d.proc.wait(timeout=1)  # the graceful stop waits for the request (up to the grace)
    code, took = timed_exit(d, signal.SIGTERM, timeout=EXIT_WITHIN_S)
    print(f"exited {code} {took:.2f}s after the second SIGTERM")
    assert code == 0
    stored = stored_job(tmp_path, job["id"])
    assert stored["status"] == "stopped" and stored["interrupted"] is True, stored
    assert any("stopped immediately" in m for m in stored["logs"])
    # The next start resumes it (and the store opens as a sound one).
    d.start()
    assert wait_job(d.client(), job["id"], ("running", "queued"))["id"] == job["id"]
