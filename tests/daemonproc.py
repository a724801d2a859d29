"""A sluiced daemon as a subprocess on a real Unix socket, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SLUICED = [sys.executable, "-m", "sluiced"]
SLUICECTL = [sys.executable, "-c", "import sys; from sluiced.ctl import main; sys.exit(main())"]


def write_people(path: Path, count: int, start: int = 0) -> None:
    with path.open("w") as f:
        for i in range(start, start + count):
            f.write(json.dumps({"id": f"P{i:06d}", "name": f"person {i}"}) + "\n")


def config_text(
    *,
    batch_size: int = 500,
    interval: str = "1h",
    extra_daemon: str = "",
    integrations: tuple[str, ...] = ("people",),
) -> str:
    out = f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
shutdown_grace = "20s"
{extra_daemon}
"""
    for ident in integrations:
        out += f"""
[integrations.{ident}]
entity_types = ["user"]
interval = "{interval}"
jitter = "0s"
batch_size = {batch_size}
[integrations.{ident}.source]
connector = "jsonl"
paths = {{ user = "{ident}.jsonl" }}
[integrations.{ident}.target]
connector = "jsonl"
paths = {{ user = "out/{ident}.jsonl" }}
"""
    return out


@dataclass
class DaemonProc:
    root: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    proc: subprocess.Popen[str] | None = None
    _client: httpx.Client | None = None

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def socket(self) -> Path:
        return self.root / "state" / "ctl.sock"

    @property
    def log(self) -> Path:
        return self.root / "daemon.log"

    def start(self, *, wait: bool = True, command: list[str] | None = None) -> DaemonProc:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                command or [*SLUICED, "run", "-c", str(self.config)],
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env=self.env,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            # A plain connect first: httpcore leaks the socket of a failed Unix connect.
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(self.socket))
                except OSError:
                    time.sleep(0.05)
                    continue
            if self.client().get("/healthz").status_code == 200:
                return
            time.sleep(0.05)
        raise AssertionError("the daemon did not come up:\n" + self.log.read_text())

    def client(self) -> httpx.Client:
        """One client per daemon process, closed when it stops.

        Raises:
            AssertionError: the daemon exited (with the end of its log).
        """
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text()[-4000:] if self.log.exists() else ""
            raise AssertionError(f"the daemon exited ({self.proc.returncode}):\n{tail}")
        if self._client is None:
            self._client = httpx.Client(
                transport=httpx.HTTPTransport(uds=str(self.socket)),
                base_url="http://sluiced",
                timeout=20,
            )
        return self._client

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.close_client()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        self.close_client()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SLUICECTL, "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.root,
        )

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


def wait_job(
    client: httpx.Client,
    job_id: str,
    statuses: tuple[str, ...] = ("completed", "failed", "stopped"),
    timeout: float = 60,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/sync/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job  # type: ignore[no-any-return]
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def wait_for(predicate: Any, timeout: float = 60) -> None:
    """Wait until *predicate()* is true, polling; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def make_daemon(root: Path, *, people: int = 200, **config: Any) -> DaemonProc:
    (root / "config.toml").write_text(config_text(**config))
    for ident in config.get("integrations", ("people",)):
        write_people(root / f"{ident}.jsonl", people)
    return DaemonProc(root)


def daemons() -> Iterator[list[DaemonProc]]:
    procs: list[DaemonProc] = []
    yield procs
    for d in procs:
        d.kill()


def first_job(
    client: httpx.Client, integration_id: str = "people", timeout: float = 30
) -> dict[str, Any]:
    """The job the scheduler starts for a never-run integration, once it exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = client.get("/api/sync/jobs", params={"integrationId": integration_id}).json()["jobs"]
        if jobs:
            return jobs[-1]  # type: ignore[no-any-return]
        time.sleep(0.02)
    raise AssertionError("the scheduler started no job")
