"""Hostile requests to a daemon subprocess over its real socket: deep nesting, huge
numbers, ``null``, odd digits, undeclared methods, ids that are paths, paths outside
the allowed directories. Each answer is a proper error naming its field, and the daemon
keeps answering."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluiced.config import ID_PATTERN

from .daemonproc import SLUICED, DaemonProc, daemons, first_job, make_daemon, wait_job

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)


@pytest.fixture
def daemon(tmp_path: Path, procs: list[DaemonProc]) -> Iterator[DaemonProc]:
    d = make_daemon(tmp_path, people=20)
    procs.append(d)
    d.start()
    wait_job(d.client(), first_job(d.client())["id"])
    yield d


def test_deep_nesting_is_400_and_no_answer_carries_exception_text(daemon: DaemonProc) -> None:
    c = daemon.client()
    deep = b'{"integrationId": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = c.post("/api/sync/jobs/stop-all", content=deep)
    assert r.status_code == 400 and r.json()["error"]["code"] == "MalformedJson"
    assert "recursion" not in r.text.lower() and "Error" not in r.json()["error"]["message"]
    r = c.post("/api/sync/jobs", content=b'{"integrationId": "people", "type": ' + b"[" * 50)
    assert r.status_code == 400
    assert c.get("/healthz").json()["status"] == "ok"


def test_null_is_not_absent(daemon: DaemonProc) -> None:
    c = daemon.client()
    job_id = c.post("/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"}).json()[
        "jobId"
    ]
    r = c.post("/api/sync/jobs/stop-all", json={"integrationId": None})
    assert r.status_code == 422 and r.json()["error"]["field"] == "integrationId"
    assert r.json()["error"]["message"] == "integrationId must not be null"
    assert wait_job(c, job_id)["status"] == "completed"  # nothing was stopped
    r = c.post("/api/sync/integrations/people/start", json={"syncType": None})
    assert r.status_code == 422 and r.json()["error"]["field"] == "syncType"
    r = c.post(
        "/api/sync/jobs",
        json={"integrationId": "people", "type": "full_sync", "options": {"force": None}},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "options.force"


def test_messages_speak_json(daemon: DaemonProc) -> None:
    c = daemon.client()
    r = c.post("/api/sync/jobs", content=b"[1, 2]")
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "the body must be a JSON object, not an array"
    r = c.post("/api/sync/jobs", content=b"null")
    assert r.json()["error"]["message"] == "the body must be a JSON object, not null"
    huge = b'{"integrationId": "people", "type": "full_sync", "options": {"batchSize": ' + (
        b"9" * 30 + b"}}"
    )
    message = c.post("/api/sync/jobs", content=huge).json()["error"]["message"]
    assert "e+" not in message.split(", not")[0], message


def test_every_422_names_its_field(daemon: DaemonProc) -> None:
    c = daemon.client()
    huge = b'{"integrationId": "people", "type": "full_sync", "options": {"batchSize": ' + (
        b"9" * 5000 + b"}}"
    )
    r = c.post("/api/sync/jobs", content=huge)
    assert r.status_code == 422 and r.json()["error"]["field"] == "options.batchSize"
    r = c.get("/api/sync/jobs", params={"limit": "²"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"
    r = c.get("/api/sync/jobs", params={"limit": "9" * 5000})
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"
    r = c.put("/api/sync/jobs/job-x/interval", json={"interval": 0})
    assert r.status_code == 422 and r.json()["error"]["field"] == "interval"


def test_405_carries_allow(daemon: DaemonProc) -> None:
    c = daemon.client()
    r = c.delete("/api/sync/jobs")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    r = c.get("/api/sync/jobs/stop-all")  # a path of its own, not a job id
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == "MethodNotAllowed"


def test_integration_ids_follow_one_pattern(daemon: DaemonProc) -> None:
    c = daemon.client()
    state = daemon.root / "state"
    body = {
        "entityTypes": ["user"],
        "source": {"connector": "jsonl", "paths": {"user": str(state / "in.jsonl")}},
        "target": {"connector": "jsonl", "paths": {"user": str(state / "out.jsonl")}},
    }
    for bad in ("..", ".", "a/b", "-x", "a" * 65, "é"):
        r = c.post("/api/sync/integrations", json={**body, "id": bad})
        assert r.status_code == 422 and r.json()["error"]["field"] == "id", bad
    assert c.post("/api/sync/integrations", json={**body, "id": "ok_1-B"}).status_code == 201
    doc = c.get("/api/openapi.json").json()
    create = doc["paths"]["/api/sync/integrations"]["post"]
    pattern = create["requestBody"]["content"]["application/json"]["schema"]["properties"]["id"]
    config = daemon.root / "config.toml"
    config.write_text(config.read_text().replace("integrations.people", 'integrations.".."'))
    out = subprocess.run(
        [*SLUICED, "check-config", "-c", str(config)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and "integration id '..'" in out.stdout + out.stderr
    assert pattern["pattern"] == ID_PATTERN  # the document says what the config checks
    connectors = create["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"jsonl", "csv", "scim"} <= set(connectors["source"]["properties"]["connector"]["enum"])
    assert "stash" not in connectors["target"]["properties"]["connector"]["enum"]  # source only


def test_empty_api_token_file_fails_check_config(tmp_path: Path) -> None:
    d = make_daemon(tmp_path, extra_daemon='tcp_listen = "127.0.0.1:1"\napi_token_file = "token"')
    (tmp_path / "token").write_text("\n")
    out = subprocess.run(
        [*SLUICED, "check-config", "-c", str(d.config)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "daemon.api_token_file" in out.stdout + out.stderr and "empty" in out.stdout + out.stderr


def test_api_created_integrations_are_confined_to_allowed_paths(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    shared = tmp_path / "exports"
    shared.mkdir()
    (shared / "in.jsonl").write_text('{"id": "1"}\n')
    d = make_daemon(tmp_path, people=5, extra_daemon='allowed_paths = ["exports"]')
    procs.append(d)
    d.start()
    c = d.client()

    def create(ident: str, source: str, target: str) -> tuple[int, str | None]:
        r = c.post(
            "/api/sync/integrations",
            json={
                "id": ident,
                "entityTypes": ["user"],
                "jitter": 0,  # the default (30 s) would delay the first run
                "source": {"connector": "jsonl", "paths": {"user": source}},
                "target": {"connector": "jsonl", "paths": {"user": target}},
            },
        )
        return r.status_code, r.json()["error"]["field"] if r.status_code >= 400 else None

    assert create("steal", "/etc/passwd", "exports/out.jsonl") == (422, "source.paths.user")
    assert create("plant", "exports/in.jsonl", "../outside.jsonl") == (422, "target.paths.user")
    (shared / "link").symlink_to("/etc")
    assert create("sneak", "exports/link/passwd", "exports/o.jsonl") == (422, "source.paths.user")
    secret = {"connector": "scim", "url": "http://127.0.0.1:1/scim", "token_file": "/etc/hosts"}
    r = c.post(
        "/api/sync/integrations",
        json={
            "id": "peek",
            "entityTypes": ["user"],
            "source": {"connector": "jsonl", "paths": {"user": "exports/in.jsonl"}},
            "target": secret,
        },
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "target.token_file"
    assert create("fine", "exports/in.jsonl", str(shared / "out.jsonl")) == (201, None)
    job = wait_job(c, first_job(c, "fine")["id"])
    assert job["status"] == "completed" and job["stats"]["created"] == 1
    assert not (tmp_path / "outside.jsonl").exists()
    # The config file's own integrations are not confined: people reads people.jsonl.
    assert c.get("/api/sync/integrations/people").status_code == 200
