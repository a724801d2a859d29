"""Metrics, health and live job events of the daemon as a subprocess, over its socket."""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluiced import __version__

from .daemonproc import DaemonProc, daemons, first_job, make_daemon, wait_job

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)


@pytest.fixture
def daemon(tmp_path: Path, procs: list[DaemonProc]) -> Iterator[DaemonProc]:
    d = make_daemon(tmp_path, people=30, integrations=("people", "crm"))
    with (tmp_path / "crm.jsonl").open("a") as f:  # two objects the source cannot read
        f.write("not json\n")
        f.write('{"name": "no id"}\n')
    procs.append(d)
    d.start()
    yield d


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found[name, frozenset(labels.items())]


def test_metrics_errors_escrows_last_success_and_build_info(daemon: DaemonProc) -> None:
    c = daemon.client()
    for ident in ("people", "crm"):
        wait_job(c, first_job(c, ident)["id"])
    before = time.time()
    answer = c.post("/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"})
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["jobId"]
    wait_job(c, job_id)
    text = c.get("/metrics").text
    assert "_created" not in text
    found = samples(text)
    assert (
        value(found, "sluiced_build_info", version=__version__, python=platform.python_version())
        == 1
    )
    # Errors have a counter of their own, not an action of the synced objects.
    assert value(found, "sluiced_object_errors_total", integration="crm") == 2
    assert value(found, "sluiced_object_errors_total", integration="people") == 0
    assert not [
        k for k in found if k[0] == "sluiced_objects_synced_total" and ("action", "errors") in k[1]
    ]
    assert value(found, "sluiced_objects_synced_total", integration="crm", action="created") == 30
    # Escrows, counted by the store per integration and entity type.
    assert value(found, "sluiced_escrows", integration="crm", entity_type="user") == 2
    assert (
        "sluiced_escrows",
        frozenset({("integration", "people"), ("entity_type", "user")}),
    ) not in found
    # When each integration last succeeded (a run that escrowed objects did not: 0).
    last = value(found, "sluiced_integration_last_success_timestamp_seconds", integration="people")
    assert before - 1 <= last <= time.time() + 1
    assert (
        value(found, "sluiced_integration_last_success_timestamp_seconds", integration="crm") == 0
    )
    assert value(found, "sluiced_integration_quarantined", integration="crm") == 0
    assert value(found, "sluiced_jobs", status="completed") == 3
    assert (
        value(found, "sluiced_job_duration_seconds_count", integration="people", status="completed")
        == 2
    )
    assert daemon.ctl("metrics").stdout == c.get("/metrics").text


def test_healthz_reports_the_store_and_the_scheduler(daemon: DaemonProc) -> None:
    health = daemon.client().get("/healthz").json()
    assert health["ok"] and health["status"] == "ok"
    assert health["store"] == {"ok": True, "error": None}
    assert health["scheduler"]["ok"] and health["scheduler"]["error"] is None
    out = daemon.ctl("health")
    assert out.returncode == 0 and out.stdout.startswith("ok: 2 integrations")
