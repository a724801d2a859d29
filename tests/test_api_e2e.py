"""The control API end to end: a daemon subprocess, its real Unix socket, httpx and curl."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .daemonproc import DaemonProc, daemons, first_job, make_daemon, wait_job, write_people

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)


@pytest.fixture
def daemon(tmp_path: Path, procs: list[DaemonProc]) -> Iterator[DaemonProc]:
    d = make_daemon(tmp_path, people=300, batch_size=50)
    procs.append(d)
    d.start()
    # A never-run integration runs at start: let that first full sync finish.
    assert wait_job(d.client(), first_job(d.client())["id"])["stats"]["created"] == 300
    yield d


def test_socket_is_0660_and_removed_on_stop(daemon: DaemonProc) -> None:
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o660
    assert daemon.stop() == 0
    assert not daemon.socket.exists()


def test_curl_over_the_unix_socket(daemon: DaemonProc) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    out = subprocess.run(
        ["curl", "-s", "--unix-socket", str(daemon.socket), "http://localhost/api/sync/jobs"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    listing = json.loads(out.stdout)
    assert listing["total"] == 1 and listing["jobs"][0]["status"] == "completed"  # the run at start


def test_jobs_create_list_get_and_filters(daemon: DaemonProc) -> None:
    c = daemon.client()
    r = c.post(
        "/api/sync/jobs",
        json={"integrationId": "people", "type": "full_sync", "options": {"batchSize": 100}},
    )
    assert r.status_code == 202
    body = r.json()
    assert body["success"] and body["status"] == "queued" and body["estimatedDuration"] >= 0
    job = wait_job(c, body["jobId"])
    assert (
        job["status"] == "completed" and job["stats"]["skipped"] == 300 and job["progress"] == 100
    )
    assert {
        "id",
        "integrationId",
        "type",
        "status",
        "progress",
        "stage",
        "createdAt",
        "startedAt",
        "completedAt",
        "duration",
        "estimatedCompletion",
        "stats",
        "logs",
    } <= set(job)
    assert job["createdAt"].endswith("Z") and job["logs"][0]["message"] == "starting full_sync"
    r = c.post("/api/sync/jobs", json={"integrationId": "people", "type": "incremental_sync"})
    second = wait_job(c, r.json()["jobId"])
    assert second["stats"]["processed"] == 0
    listing = c.get("/api/sync/jobs").json()
    assert listing["total"] == 3 and [j["id"] for j in listing["jobs"]][:2] == [
        second["id"],
        job["id"],
    ]
    assert "result" in listing["jobs"][0]
    assert c.get("/api/sync/jobs", params={"limit": 1}).json()["total"] == 3
    assert len(c.get("/api/sync/jobs", params={"limit": 1}).json()["jobs"]) == 1
    assert c.get("/api/sync/jobs", params={"status": "failed"}).json()["total"] == 0
    assert c.get("/api/sync/jobs", params={"integrationId": "other"}).json()["total"] == 0
    assert c.get("/api/sync/jobs", params={"status": "pending"}).json()["total"] == 0
    r = c.post(
        "/api/sync/jobs",
        json={
            "integrationId": "people",
            "type": "selective_sync",
            "options": {"entityTypes": ["user"]},
        },
    )
    assert wait_job(c, r.json()["jobId"])["type"] == "selective_sync"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"integrationId": "people"}, 422, "type"),
        ({"integrationId": "people", "type": "mega_sync"}, 422, "type"),
        ({"integrationId": "people", "type": "full_sync", "extra": 1}, 422, "extra"),
        (
            {"integrationId": "people", "type": "full_sync", "options": {"batchSize": "big"}},
            422,
            "options.batchSize",
        ),
        (
            {"integrationId": "people", "type": "full_sync", "options": {"colour": 1}},
            422,
            "options.colour",
        ),
        ({"integrationId": "people", "type": "selective_sync"}, 422, "options.entityTypes"),
        ({"integrationId": "nope", "type": "full_sync"}, 404, None),
    ],
)
def test_create_job_errors_name_the_field(
    daemon: DaemonProc, body: dict[str, object], status: int, field: str | None
) -> None:
    r = daemon.client().post("/api/sync/jobs", json=body)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["field"] == field and error["message"] and error["code"]


def test_malformed_large_and_misrouted_requests(daemon: DaemonProc) -> None:
    c = daemon.client()
    r = c.post("/api/sync/jobs", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "MalformedJson"
    r = c.post("/api/sync/jobs", content=b"[1]")
    assert r.status_code == 400
    r = c.post("/api/sync/jobs", content=b"{" + b" " * (2 << 20) + b"}")
    assert r.status_code == 413 and r.json()["error"]["code"] == "BodyTooLarge"
    assert c.get("/api/nothing").status_code == 404
    assert c.delete("/api/sync/jobs").status_code == 405
    assert c.get("/api/sync/jobs/job-nope").status_code == 404
    assert c.get("/api/sync/jobs", params={"limit": "x"}).json()["error"]["field"] == "limit"
    assert c.get("/api/sync/jobs", params={"sort": "x"}).json()["error"]["field"] == "sort"
    assert c.get("/healthz").json()["status"] == "ok"  # still alive


def test_stop_resume_delete_and_interval(tmp_path: Path, procs: list[DaemonProc]) -> None:
    d = make_daemon(tmp_path, people=40_000, batch_size=100)
    procs.append(d)
    d.start()
    c = d.client()
    job_id = first_job(c)["id"]  # the scheduler's first run
    wait_job(c, job_id, ("running",))
    r = c.post("/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"})
    assert r.status_code == 409  # already running, no force
    assert c.delete(f"/api/sync/jobs/{job_id}").status_code == 409  # running: stop first
    r = c.post(f"/api/sync/jobs/{job_id}/stop", json={"graceful": True})
    assert r.json() == {
        "success": True,
        "jobId": job_id,
        "status": "stopping",
        "message": "Job stop requested",
    }
    stopped = wait_job(c, job_id)
    assert stopped["status"] == "stopped" and 0 < stopped["stats"]["processed"] < 40_000
    r = c.post(f"/api/sync/jobs/{job_id}/resume")
    assert r.status_code == 409  # stopped by a person: final
    # pause through the integration, then resume the job from its checkpoint
    job_id = c.post("/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"}).json()[
        "jobId"
    ]
    wait_job(c, job_id, ("running",))
    assert c.post("/api/sync/integrations/people/pause").json()["pausedJobs"] == [job_id]
    paused = wait_job(c, job_id, ("paused",))
    assert c.get("/api/sync/integrations/people").json()["status"]["code"] == "Paused"
    r = c.post(f"/api/sync/jobs/{job_id}/resume")
    assert (
        r.status_code == 200
        and r.json()["status"] == "queued"
        and r.json()["message"] == "Job resumed"
    )
    done = wait_job(c, job_id)
    assert (
        done["status"] == "completed" and done["stats"]["processed"] >= paused["stats"]["processed"]
    )
    assert c.post(f"/api/sync/jobs/{job_id}/resume").status_code == 409  # completed
    # immediate stop, stop-all
    job_id = c.post("/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"}).json()[
        "jobId"
    ]
    wait_job(c, job_id, ("running",))
    assert c.post(f"/api/sync/jobs/{job_id}/stop", json={"graceful": False}).status_code == 200
    assert wait_job(c, job_id)["status"] == "stopped"
    job_id = c.post("/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"}).json()[
        "jobId"
    ]
    wait_job(c, job_id, ("running",))
    r = c.post("/api/sync/jobs/stop-all", json={})
    assert r.json() == {"success": True, "stoppedJobs": 1, "jobs": [job_id]}
    wait_job(c, job_id)
    # delete with and without logs
    r = c.request("DELETE", f"/api/sync/jobs/{job_id}", json={"deleteLogs": True})
    assert r.json() == {"success": True, "deleted": job_id}
    assert c.get(f"/api/sync/jobs/{job_id}").status_code == 404
    # the integration is still paused (resuming a job does not start it); start the schedule
    r = c.post("/api/sync/integrations/people/start", json={"scheduleImmediate": False})
    assert r.json()["message"] == "Schedule resumed" and r.json()["jobId"] is None
    # interval: answered, persisted across a restart
    r = c.put(f"/api/sync/jobs/{done['id']}/interval", json={"interval": 600})
    assert (
        r.json()["oldInterval"] == 3600 and r.json()["newInterval"] == 600 and r.json()["nextRun"]
    )
    assert (
        c.put(f"/api/sync/jobs/{done['id']}/interval", json={"interval": "soon"}).status_code == 422
    )
    assert d.stop() == 0
    d.start()
    assert d.client().get("/api/sync/integrations/people").json()["schedule"]["interval"] == "PT10M"
    assert (
        d.client().get("/api/sync/integrations/status").json()["integrations"][0]["syncInterval"]
        == 600
    )


def test_integrations_status_start_stop_restart(daemon: DaemonProc) -> None:
    c = daemon.client()
    status = c.get("/api/sync/integrations/status").json()["integrations"]
    assert [s["integrationId"] for s in status] == ["people"]
    r = c.post(
        "/api/sync/integrations/people/start", json={"syncType": "full", "scheduleImmediate": True}
    )
    assert r.status_code == 202 and r.json()["message"] == "Sync started"
    wait_job(c, r.json()["jobId"])
    entry = c.get("/api/sync/integrations/status").json()["integrations"][0]
    assert entry["status"] == "active" and entry["lastSync"] and entry["stats"]["totalJobs"] >= 1
    assert entry["stats"]["successRate"] == 1.0 and entry["stats"]["averageDuration"] is not None
    # A node alone runs everything: its node_id (the host name) is each one's node.
    me = socket.gethostname()
    assert entry["node"] == me
    [node] = c.get("/api/sync/integrations/status").json()["nodes"]
    assert node["nodeId"] == me and node["live"] and node["leases"] == 1 and node["heartbeatAt"]
    assert c.get(f"/api/sync/jobs/{r.json()['jobId']}").json()["node"] == me
    assert {j["node"] for j in c.get("/api/sync/jobs").json()["jobs"]} == {me}
    shown = daemon.ctl("status")
    assert shown.returncode == 0 and f"people       active  {me}" in shown.stdout, shown.stdout
    assert "LAST HEARTBEAT" in shown.stdout and f"\n{me}" in shown.stdout
    one = c.get("/api/sync/integrations/people").json()
    assert one["node"] == me
    assert (
        one["id"] == "people"
        and one["origin"] == "config"
        and one["schedule"]["interval"] == "PT1H"
    )
    assert one["status"]["lastExecution"]["state"] == "Succeeded"
    assert one["status"]["synchronizedEntryCountByType"] == [{"key": "user", "value": 300}]
    assert c.post("/api/sync/integrations/people/stop").json()["activeJobsStopped"] == 0
    assert c.get("/api/sync/integrations/people").json()["status"]["code"] == "Paused"
    r = c.post(
        "/api/sync/integrations/people/restart",
        json={"criteria": {"resetScope": ["Watermark", "Escrows"]}},
    )
    assert r.status_code == 202
    job = wait_job(c, r.json()["jobId"])
    assert (
        job["type"] == "full_sync" and job["stats"]["skipped"] == 300
    )  # links kept: nothing rewritten
    r = c.post("/api/sync/integrations/people/restart", json={"criteria": {"resetScope": "Full"}})
    assert (
        wait_job(c, r.json()["jobId"])["stats"]["created"] == 300
    )  # links forgotten: all written again
    bad = c.post(
        "/api/sync/integrations/people/restart", json={"criteria": {"resetScope": ["Everything"]}}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "criteria.resetScope[0]"
    assert c.post("/api/sync/integrations/nope/start").status_code == 404
    assert c.delete("/api/sync/integrations/people").status_code == 409  # from the config file
    assert c.post("/api/sync/initialize").json()["integrationsFound"] == 1


def test_create_and_delete_an_integration_through_the_api(daemon: DaemonProc) -> None:
    c = daemon.client()
    write_people(daemon.root / "state" / "api.jsonl", 10)
    body = {  # paths inside the state directory: the default of [daemon] allowed_paths
        "id": "api-made",
        "entityTypes": ["user"],
        "schedule": {"interval": "PT30M", "state": "Active"},
        "jitter": "PT0S",  # the default (30 s) would delay its first run; zero as ISO 8601
        "source": {"connector": "jsonl", "paths": {"user": "state/api.jsonl"}},
        "target": {"connector": "jsonl", "paths": {"user": "state/out/api.jsonl"}},
    }
    bad = c.post("/api/sync/integrations", json={**body, "schedule": {"interval": "often"}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "schedule.interval"
    bad = c.post("/api/sync/integrations", json={**body, "source": {"connector": "ftp"}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "source.connector"
    r = c.post("/api/sync/integrations", json=body)
    assert (
        r.status_code == 201
        and r.json()["origin"] == "api"
        and r.json()["schedule"]["interval"] == "PT30M"
    )
    assert c.post("/api/sync/integrations", json=body).status_code == 409
    job_id = first_job(c, "api-made")["id"]  # scheduled at once: it never ran
    assert wait_job(c, job_id)["stats"]["created"] == 10
    assert daemon.stop() == 0
    daemon.start()  # survives a restart
    c = daemon.client()
    assert [i["id"] for i in c.get("/api/sync/integrations").json()["value"]] == [
        "api-made",
        "people",
    ]
    assert c.delete("/api/sync/integrations/api-made").json() == {
        "success": True,
        "deleted": "api-made",
    }
    assert c.get("/api/sync/integrations/api-made").status_code == 404
    assert c.get(f"/api/sync/jobs/{job_id}").status_code == 404  # its jobs went with it


def test_job_events_stream_progress_and_logs(daemon: DaemonProc) -> None:
    c = daemon.client()
    job_id = c.post("/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"}).json()[
        "jobId"
    ]
    events = []
    with c.stream("GET", f"/api/sync/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "end" and events[-1][1] == {"status": "completed"}
    assert "progress" in kinds and "log" in kinds
    messages = [d["message"] for k, d in events if k == "log"]
    assert messages[0] == "starting full_sync" and len(messages) == len(set(messages))


def test_metrics_and_openapi(daemon: DaemonProc) -> None:
    c = daemon.client()
    job_id = c.post("/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"}).json()[
        "jobId"
    ]
    wait_job(c, job_id)
    text = c.get("/metrics").text
    assert 'sluiced_jobs{status="completed"} 2.0' in text
    assert 'sluiced_objects_synced_total{action="created",integration="people"} 300.0' in text
    assert (
        "sluiced_integrations_quarantined 0.0" in text
        and "sluiced_job_duration_seconds_count" in text
    )
    doc = c.get("/api/openapi.json").json()
    assert doc["openapi"] == "3.1.0" and "/api/sync/jobs/{jobId}/resume" in doc["paths"]


def test_sighup_reloads_valid_and_refuses_invalid_configs(daemon: DaemonProc) -> None:
    from .daemonproc import config_text

    write_people(daemon.root / "more.jsonl", 5)
    daemon.config.write_text(config_text(batch_size=50, integrations=("people", "more")))
    daemon.signal(signal.SIGHUP)
    c = daemon.client()
    for _ in range(200):
        if len(c.get("/api/sync/integrations").json()["value"]) == 2:
            break
        import time

        time.sleep(0.02)
    assert [i["id"] for i in c.get("/api/sync/integrations").json()["value"]] == ["more", "people"]
    daemon.config.write_text(config_text().replace('interval = "1h"', 'interval = "sometimes"'))
    daemon.signal(signal.SIGHUP)
    for _ in range(200):
        if any(line.get("event", "").startswith("reload refused") for line in daemon.log_lines()):
            break
        import time

        time.sleep(0.02)
    refused = [
        line for line in daemon.log_lines() if line.get("event", "").startswith("reload refused")
    ]
    assert refused and any("integrations.people.interval" in p for p in refused[0]["problems"])
    assert len(c.get("/api/sync/integrations").json()["value"]) == 2  # the old config keeps running


def test_schema_get_put_validated_and_applied(daemon: DaemonProc) -> None:
    c = daemon.client()
    default = c.get("/api/sync/integrations/people/schema").json()
    assert default["objectMappings"][0]["sourceObjectName"] == "user"
    assert default["objectMappings"][0]["attributeMappings"] == []
    schema = {
        "objectMappings": [
            {
                "sourceObjectName": "user",
                "targetObjectName": "user",  # the target file of paths.user
                "scope": {
                    "groups": [
                        {
                            "clauses": [
                                {
                                    "sourceOperandName": "id",
                                    "operatorName": "REGEX MATCH",
                                    "targetOperand": {"values": ["^P0000[0-4]\\d$"]},
                                }
                            ]
                        }
                    ]
                },
                "attributeMappings": [
                    {
                        "targetAttributeName": "id",
                        "source": {"type": "Direct", "name": "id"},
                        "matchingPriority": 1,
                    },
                    {
                        "targetAttributeName": "label",
                        "source": {"type": "Expression", "expression": "PCase([name])"},
                    },
                ],
            }
        ]
    }
    broken = json.loads(json.dumps(schema))
    broken["objectMappings"][0]["attributeMappings"][1]["source"]["expression"] = "PCase([name]"
    r = c.put("/api/sync/integrations/people/schema", json=broken)
    assert r.status_code == 422
    error = r.json()["error"]
    assert (
        error["code"] == "InvalidSchema"
        and error["field"] == "schema.objectMappings[0].attributeMappings[1].source.expression"
        and "column 13" in error["message"]
    )
    assert c.get("/api/sync/integrations/people/schema").json() == default  # the old one stays
    assert c.put("/api/sync/integrations/people/schema", content=b"{x").status_code == 400
    assert c.put("/api/sync/integrations/nope/schema", json=schema).status_code == 404
    assert c.put("/api/sync/integrations/people/schema", json=schema).json() == schema
    assert c.get("/api/sync/integrations/people/schema").json() == schema
    r = c.post("/api/sync/integrations/people/start")
    job = wait_job(c, r.json()["jobId"])
    assert job["type"] == "full_sync"  # a new schema makes the next run a full pass
    lines = [
        json.loads(line) for line in (daemon.root / "out" / "people.jsonl").read_text().splitlines()
    ]
    assert len(lines) == 50 and lines[0] == {"id": "P000000", "label": "Person 0"}
    assert job["stats"]["deleted"] == 250 and job["stats"]["updated"] == 50


def test_escrows_listed_retried_and_dropped(tmp_path: Path, procs: list[DaemonProc]) -> None:
    d = make_daemon(tmp_path, people=20)
    with (tmp_path / "people.jsonl").open("a") as f:
        f.write("{not json\n")
    procs.append(d)
    d.start()
    c = d.client()
    wait_job(c, first_job(c)["id"])
    listing = c.get("/api/sync/integrations/people/escrows").json()
    assert listing["total"] == 1
    (escrow,) = listing["escrows"]
    assert (escrow["entityType"], escrow["objectId"], escrow["kind"]) == (
        "user",
        "people.jsonl:21",
        "source",
    )
    assert (
        escrow["reason"].startswith("invalid JSON")
        and escrow["attempts"] == 1
        and escrow["nextRetry"]
    )
    key = {"entityType": "user", "objectId": "people.jsonl:21"}
    r = c.post("/api/sync/integrations/people/escrows/retry", json=key)
    assert r.status_code == 200 and r.json()["jobId"]
    wait_job(c, r.json()["jobId"])
    assert (
        c.post(
            "/api/sync/integrations/people/escrows/retry", json={**key, "objectId": "x"}
        ).status_code
        == 404
    )
    assert (
        c.post(
            "/api/sync/integrations/people/escrows/drop", json={"entityType": "user"}
        ).status_code
        == 422
    )
    out = d.ctl("escrows", "people")
    assert out.returncode == 0 and "people.jsonl:21" in out.stdout and "(1 escrowed)" in out.stdout
    out = d.ctl("escrow", "drop", "people", "user", "people.jsonl:21")
    assert out.returncode == 0 and "dropped user/people.jsonl:21" in out.stdout
    assert c.get("/api/sync/integrations/people/escrows").json()["total"] == 0
