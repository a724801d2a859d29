"""A job's server-sent events from the daemon as a subprocess: pushed as they are
written (hundreds of lines in a burst, none dropped), numbered with ``id:``, resumed
after a disconnect with ``Last-Event-ID``, and followed by ``sluicectl --follow``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .daemonproc import DaemonProc, daemons, first_job, wait_job, write_people

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)
REPO = Path(__file__).resolve().parent.parent
LINES, FIRST = 300, 40


def install_chatty(site: Path) -> str:
    """tests/chattyplugin.py as an installed plugin (an entry point of group sluiced)."""
    info = site / "sluiced_chatty-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sluiced-chatty\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sluiced]\nchatty = tests.chattyplugin\n")
    return os.pathsep.join([str(site), str(REPO)])


@pytest.fixture
def daemon(tmp_path: Path, procs: list[DaemonProc]) -> Iterator[DaemonProc]:
    write_people(tmp_path / "people.jsonl", 3)
    (tmp_path / "config.toml").write_text(f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
shutdown_grace = "20s"

[integrations.chat]
entity_types = ["user"]
interval = "1h"
jitter = "0s"
[integrations.chat.source]
connector = "jsonl"
paths = {{ user = "people.jsonl" }}
[integrations.chat.target]
connector = "chatty"
lines = {LINES}
first = {FIRST}
gate = "gate"
""")
    d = DaemonProc(tmp_path)
    d.env["PYTHONPATH"] = install_chatty(tmp_path / "site")
    procs.append(d)
    d.start()
    yield d


def read_events(
    client: httpx.Client, job_id: str, *, last_id: int | None = None, until: Any = None
) -> list[tuple[int | None, str, Any]]:
    """``(id, event, data)`` until the stream ends or ``until(events)`` is true."""
    headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
    out: list[tuple[int | None, str, Any]] = []
    with client.stream("GET", f"/api/sync/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        ident: int | None = None
        name = ""
        for line in response.iter_lines():
            if line.startswith("id: "):
                ident = int(line[4:])
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((ident, name, json.loads(line[6:])))
                ident = None
                if until is not None and until(out):
                    break
    return out


def log_lines(events: list[tuple[int | None, str, Any]]) -> list[tuple[int, str]]:
    return [(i, d["message"]) for i, k, d in events if k == "log" and i is not None]


def saw_line(n: int) -> Any:
    return lambda events: any(m == f"line {n}" for _, m in log_lines(events))


def check_complete(lines: list[tuple[int, str]]) -> None:
    ids = [i for i, _ in lines]
    assert ids == list(range(1, len(ids) + 1)), ids  # every line once, in order
    chatty = [m for _, m in lines if m.startswith("line ")]
    assert chatty == [f"line {n}" for n in range(1, LINES + 1)]


def test_a_burst_of_lines_arrives_whole_on_a_live_stream(daemon: DaemonProc) -> None:
    c = daemon.client()
    job_id = first_job(c, "chat")["id"]
    events: list[tuple[int | None, str, Any]] = []

    def opened(seen: list[tuple[int | None, str, Any]]) -> bool:
        if saw_line(FIRST)(seen):
            (daemon.root / "gate").touch()  # 260 lines now, as fast as the job writes them
        return False

    events = read_events(c, job_id, until=opened)
    assert events[-1][1:] == ("end", {"status": "completed"})
    check_complete(log_lines(events))
    assert log_lines(events)[-1][1].startswith("completed:")


def test_a_client_resumes_with_last_event_id_and_misses_nothing(daemon: DaemonProc) -> None:
    c = daemon.client()
    job_id = first_job(c, "chat")["id"]
    before = read_events(c, job_id, until=saw_line(FIRST))
    last_id = log_lines(before)[-1][0]
    (daemon.root / "gate").touch()
    wait_job(c, job_id)  # the rest is written while no one listens
    after = read_events(c, job_id, last_id=last_id)
    assert after[0][1] == "progress" and after[0][2]["status"] == "completed"
    assert after[-1][1:] == ("end", {"status": "completed"})
    check_complete(log_lines(before) + log_lines(after))
    # A fresh client gets the whole log; one that saw everything gets no line again.
    whole = read_events(c, job_id)
    assert log_lines(whole) == log_lines(before) + log_lines(after)
    again = read_events(c, job_id, last_id=log_lines(whole)[-1][0])
    assert [k for _, k, _ in again] == ["progress", "end"]


def test_sluicectl_follow_shows_every_line(daemon: DaemonProc) -> None:
    c = daemon.client()
    job_id = first_job(c, "chat")["id"]
    (daemon.root / "gate").touch()
    out = daemon.ctl("--json", "job", job_id, "--follow")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    messages = [e["data"]["message"] for e in events if e["event"] == "log"]
    assert [m for m in messages if m.startswith("line ")] == [
        f"line {n}" for n in range(1, LINES + 1)
    ]
    assert events[-1] == {"event": "end", "data": {"status": "completed"}}
