"""The control API against its own OpenAPI document: schemathesis generates requests
from ``GET /api/openapi.json`` (valid ones, and ones the document says are invalid),
sends them to a daemon subprocess over its TCP listener with a bearer token, and runs
every check it has (server errors, status codes, content types, response schemas,
acceptance of valid and refusal of invalid data, unsupported methods, ``Allow``,
authentication, ...). Bounded in examples so that it takes about a minute."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .daemonproc import DaemonProc, daemons, first_job, make_daemon

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)
TOKEN = "schemathesis-token-0123456789"
ST = Path(sys.executable).with_name("st")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tcp_daemon(tmp_path: Path, procs: list[DaemonProc]) -> Iterator[tuple[DaemonProc, str]]:
    port = free_port()
    (tmp_path / "token").write_text(TOKEN + "\n")
    d = make_daemon(
        tmp_path,
        people=20,
        extra_daemon=f'tcp_listen = "127.0.0.1:{port}"\napi_token_file = "token"',
    )
    procs.append(d)
    d.start()
    yield d, f"http://127.0.0.1:{port}"


#: The two operations whose bodies have a meaning beyond what JSON Schema can say: an
#: integration's connector settings are checked by its connector plugin (which keys a
#: connector has, that its paths cover its entity types), and a schema mapping by the
#: mapping language (attribute and function references). A body valid by the document
#: may still be refused there, with 422 naming the field; everything else the
#: document declares is exact.
CONFIG = """
# Requests on the configured integration and its first job reach past the 404.
[parameters]
"path.integrationId" = "people"
"path.jobId" = "{job_id}"

[[operations]]
include-operation-id = "create_integration"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422"]

[[operations]]
include-operation-id = "put_schema"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422"]
"""


@pytest.mark.skipif(not ST.exists(), reason="schemathesis is not installed")
def test_schemathesis_finds_no_failure(tcp_daemon: tuple[DaemonProc, str]) -> None:
    daemon, base = tcp_daemon
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")}
    job_id = first_job(daemon.client())["id"]
    (daemon.root / "schemathesis.toml").write_text(CONFIG.replace("{job_id}", job_id))
    run = subprocess.run(
        [
            str(ST),
            "--config-file",
            str(daemon.root / "schemathesis.toml"),
            "run",
            f"{base}/api/openapi.json",
            "--url",
            base,
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--max-examples",
            os.environ.get("SLUICED_SCHEMATHESIS_EXAMPLES", "100"),
            "--seed",
            os.environ.get("SLUICED_SCHEMATHESIS_SEED", "1"),
            "--workers",
            "1",  # hypothesis parses lambdas' source, which is not thread-safe on 3.11
            "--request-timeout",
            "20",
            "--generation-database",
            "none",
            "--no-color",
        ],
        cwd=daemon.root,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    report = run.stdout + run.stderr
    print(report)  # shown with -s: phases, operations, counts
    assert run.returncode == 0, (
        report + "\n--- daemon log (end) ---\n" + daemon.log.read_text()[-4000:]
    )
    assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon died"
    assert daemon.client().get("/healthz").json()["status"] == "ok"
    shutil.rmtree(daemon.root / "schemathesis-report", ignore_errors=True)
