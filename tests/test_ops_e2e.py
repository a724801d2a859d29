"""Operating the daemon: sluicectl, the TCP listener's token, systemd notification and
socket activation, SIGTERM and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .daemonproc import (
    SLUICED,
    DaemonProc,
    config_text,
    daemons,
    first_job,
    make_daemon,
    wait_job,
    write_people,
)

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)


@pytest.fixture
def daemon(tmp_path: Path, procs: list[DaemonProc]) -> Iterator[DaemonProc]:
    d = make_daemon(tmp_path, people=200, batch_size=50)
    procs.append(d)
    d.start()
    wait_job(d.client(), first_job(d.client())["id"])
    yield d


def test_every_sluicectl_command(daemon: DaemonProc) -> None:
    def ok(*args: str) -> str:
        result = daemon.ctl(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    assert "people" in ok("status") and "completed" in ok("jobs")
    assert json.loads(ok("--json", "status"))["integrations"][0]["integrationId"] == "people"
    assert json.loads(ok("status", "--json"))["integrations"][0]["syncInterval"] == 3600
    assert "PT1H" in ok("status") and "PT1H" in ok("integrations")
    assert (
        "NotRun" not in ok("integrations")
        and json.loads(ok("integration", "people"))["id"] == "people"
    )
    assert ok("health").startswith("ok: 1 integrations")
    checked = ok("validate", "people")
    assert "source  ok" in checked and "people.jsonl (" in checked and "target  ok" in checked
    assert "sluiced_jobs" in ok("metrics")
    out = ok("run", "people", "--type", "full_sync", "--follow")
    assert out.rstrip().endswith(": completed") and "starting full_sync" in out
    job_id = json.loads(ok("--json", "jobs", "--limit", "1"))["jobs"][0]["id"]
    assert job_id in ok("job", job_id) and "skipped 200" in ok("job", job_id)
    assert "interval PT1H -> PT10M" in ok("interval", job_id, "10m")
    assert ok("pause", "people").startswith("Integration paused")
    assert ok("start", "people", "--no-run").startswith("Schedule resumed")
    assert "Integration restarted" in ok(
        "restart", "people", "--scope", "Watermark", "--scope", "Escrows"
    )
    assert "Integration restarted" in ok("restart", "people", "--scope", "Watermark", "Escrows")
    assert "stopping 0 jobs" in ok("stop-all") or "stopping 1 jobs" in ok("stop-all")
    for job in json.loads(ok("--json", "jobs"))["jobs"]:
        wait_job(daemon.client(), job["id"])
    assert ok("stop", "people").startswith("Integration sync stopped")
    assert ok("start", "people", "--follow").rstrip().endswith(": completed")
    assert "deleted" in ok("delete-job", job_id, "--delete-logs")
    assert "integrations" in ok("reload")
    schema = json.loads(ok("schema", "get", "people"))
    assert schema["objectMappings"][0]["sourceObjectName"] == "user"
    (daemon.root / "schema.json").write_text(json.dumps(schema))
    assert "replaced" in ok("schema", "put", "people", str(daemon.root / "schema.json"))
    (daemon.root / "bad.json").write_text(
        json.dumps({"objectMappings": [{"sourceObjectName": "group"}]})
    )
    bad = daemon.ctl("schema", "put", "people", str(daemon.root / "bad.json"))
    assert bad.returncode == 1 and "must be an entity type" in bad.stderr
    spec = daemon.root / "api.json"
    (daemon.root / "state" / "api.jsonl").write_text('{"id": "x"}\n')
    spec.write_text(
        json.dumps(
            {
                "id": "made",
                "entityTypes": ["user"],
                "jitter": 0,  # the default (30 s) would delay its first run
                # inside the state directory, the default of [daemon] allowed_paths
                "source": {"connector": "jsonl", "paths": {"user": "state/api.jsonl"}},
                "target": {"connector": "jsonl", "paths": {"user": "state/out/made.jsonl"}},
            }
        )
    )
    assert "created integration made" in ok("create-integration", str(spec))
    wait_job(daemon.client(), first_job(daemon.client(), "made")["id"])
    assert "deleted" in ok("delete-integration", "made")
    # refusals: exit 1 with the daemon's message; unreachable: exit 3 naming the socket
    refused = daemon.ctl("resume", job_id)
    assert refused.returncode == 1 and "404 NotFound: no job" in refused.stderr
    assert daemon.ctl("stop-job", "job-missing", "--force").returncode == 1
    gone = subprocess.run(
        [
            *SLUICED[:1],
            "-c",
            "import sys; from sluiced.ctl import main; sys.exit(main())",
            "--socket",
            "/nonexistent/ctl.sock",
            "status",
        ],
        capture_output=True,
        text=True,
    )
    assert (
        gone.returncode == 3
        and "/nonexistent/ctl.sock" in gone.stderr
        and len(gone.stderr.splitlines()) == 1
    )


def test_sluicectl_follow_exits_with_the_jobs_outcome(daemon: DaemonProc) -> None:
    (daemon.root / "people.jsonl").unlink()  # the next run fails: its source is gone
    result = daemon.ctl("run", "people", "--type", "full_sync", "--follow")
    assert result.returncode == 1 and result.stdout.rstrip().endswith(": failed")
    assert "does not exist" in result.stdout
    job_id = result.stdout.rstrip().split()[-2].rstrip(":")
    write_people(daemon.root / "people.jsonl", 250)  # fixed: resuming the failed job finishes it
    resumed = daemon.ctl("resume", job_id, "--follow")
    assert resumed.returncode == 0 and resumed.stdout.rstrip().endswith(": completed"), (
        resumed.stdout
    )


def test_tcp_listener_needs_the_token(tmp_path: Path, procs: list[DaemonProc]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "token").write_text("s3cret-token\n")
    d = make_daemon(
        tmp_path, extra_daemon=f'tcp_listen = "127.0.0.1:{port}"\napi_token_file = "token"'
    )
    procs.append(d)
    d.start()
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/healthz").status_code == 401
        r = c.get("/api/sync/jobs", headers={"Authorization": "Bearer wrong"})
        assert (
            r.status_code == 401
            and r.json()["error"]["code"] == "Unauthorized"
            and "s3cret" not in r.text
        )
        assert (
            c.get("/api/sync/jobs", headers={"Authorization": "Bearer s3cret-token"}).status_code
            == 200
        )
    out = subprocess.run(
        [
            *SLUICED[:1],
            "-c",
            "import sys; from sluiced.ctl import main; sys.exit(main())",
            "--url",
            url,
            "--token-file",
            str(tmp_path / "token"),
            "health",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and out.stdout.startswith("ok")
    assert "s3cret-token" not in d.log.read_text()
    assert "the API token is short" in d.log.read_text()  # 12 characters
    shown = subprocess.run(
        [*SLUICED, "config", "show", "-c", str(d.config)], capture_output=True, text=True
    )
    assert "s3cret-token" not in shown.stdout and "[redacted, from file:" in shown.stdout


def test_a_tcp_listener_without_a_token_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(config_text(extra_daemon='tcp_listen = "127.0.0.1:9"'))
    out = subprocess.run(
        [*SLUICED, "check-config", "-c", str(tmp_path / "config.toml")],
        capture_output=True,
        text=True,
    )
    assert (
        out.returncode == 2
        and "daemon.api_token_file: found nothing (the secret is required)" in out.stderr
    )


def test_systemd_notifications(tmp_path: Path, procs: list[DaemonProc]) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = str(tmp_path / "notify.sock")
    listener.bind(address)
    listener.settimeout(20)
    try:
        d = make_daemon(tmp_path)
        d.env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="400000")
        procs.append(d)
        d.start(wait=False)
        messages: list[str] = []

        def wait_for(field: str) -> str:
            while True:
                for m in messages:
                    if field in m.split("\n"):
                        return m
                messages.append(listener.recv(4096).decode())

        ready = wait_for("READY=1")
        d.wait_ready()  # READY came only once the API was up: it answers now
        assert ready.startswith("READY=1")
        wait_for("WATCHDOG=1")
        watchdogs = sum("WATCHDOG=1" in m for m in messages)
        time.sleep(0.7)
        listener.settimeout(0.1)
        try:
            while True:
                messages.append(listener.recv(4096).decode())
        except TimeoutError:
            pass
        assert sum("WATCHDOG=1" in m for m in messages) >= watchdogs + 2  # every 0.2 s
        listener.settimeout(20)
        d.signal(signal.SIGHUP)
        reloading = wait_for("RELOADING=1")
        assert any(f.startswith("MONOTONIC_USEC=") for f in reloading.split("\n"))
        after = messages.index(reloading)
        messages[: after + 1] = [m.replace("READY=1", "") for m in messages[: after + 1]]
        wait_for("READY=1")  # again, after the reload
        assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for m in messages)
        assert d.stop() == 0
        wait_for("STOPPING=1")
    finally:
        listener.close()


@pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate is missing"
)
def test_socket_activation(tmp_path: Path, procs: list[DaemonProc]) -> None:
    d = make_daemon(tmp_path)
    activated = tmp_path / "activated.sock"
    procs.append(d)
    d.start(
        wait=False,
        command=[
            "systemd-socket-activate",
            "-l",
            str(activated),
            *SLUICED,
            "run",
            "-c",
            str(d.config),
        ],
    )
    deadline = time.monotonic() + 20
    while True:  # a plain connect first: httpcore leaks the socket of a failed Unix connect
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(activated))
                break
            except OSError:
                assert time.monotonic() < deadline, d.log.read_text()
                time.sleep(0.05)
    with httpx.Client(
        transport=httpx.HTTPTransport(uds=str(activated)), base_url="http://s", timeout=20
    ) as c:
        while True:
            try:
                assert c.get("/healthz").json()["status"] == "ok"
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, d.log.read_text()
                time.sleep(0.1)
    assert not d.socket.exists()  # it adopted the passed socket instead of binding its own


def test_sigterm_during_a_job_then_restart_resumes_it(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d = make_daemon(tmp_path, people=40_000, batch_size=100)
    procs.append(d)
    d.start()
    job = first_job(d.client())
    wait_job(d.client(), job["id"], ("running",))
    time.sleep(0.3)
    assert d.stop() == 0
    d.start()
    done = wait_job(d.client(), job["id"])
    assert done["status"] == "completed" and done["stats"]["created"] == 40_000
    messages = [e["message"] for e in done["logs"]]
    assert any(m.startswith("stopped after the current batch (daemon shutdown)") for m in messages)
    assert any(m.startswith("resuming from the checkpoint, after") for m in messages)
    assert len((tmp_path / "out" / "people.jsonl").read_text().splitlines()) == 40_000


def test_a_second_daemon_on_the_same_state_refuses_to_start(daemon: DaemonProc) -> None:
    second = subprocess.run(
        [*SLUICED, "run", "-c", str(daemon.config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=daemon.root,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert second.returncode == 1
    assert (
        second.stderr.strip()
        == f"sluiced: another sluiced is running on the state directory {daemon.root / 'state'}"
    )
    assert "resuming" not in second.stdout
    assert daemon.client().get("/healthz").status_code == 200
