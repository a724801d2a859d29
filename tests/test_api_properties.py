"""No request can crash the daemon or leave state half-written: hypothesis throws
sequences of requests, well-formed and not, at the app in process (in-memory store,
in-memory connectors), then checks that every answer is a proper one and that the
daemon's state is consistent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import sluiced.plugins.stash as stash_plugin
from sluiced.api import build_app, openapi_document, route_table
from sluiced.models import JobStatus
from sluiced.pluginmanager import build_plugin_manager
from sluiced.plugins.stash import routes as stash_routes
from sluiced.store import MemoryStore
from sluiced.supervisor import Daemon
from sluiced.testing import MemoryConnector

from .fakes import MemoryPlugin
from .test_daemon import make_config

#: The core's routes and the Stash plugin's (registered in the daemon under test too).
ROUTES = route_table(stash_routes.JOB_TYPES, stash_routes.ROUTES)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
FIELD_NAMES = sorted(
    {name for r in ROUTES if r.body is not None for name in r.body.fields}
    | {"force", "batchSize", "resetScope", "entityTypes", "interval", "state"}
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=4),
    st.fixed_dictionaries(
        {
            "integrationId": st.sampled_from(["hr", "nope", ""]),
            "type": st.sampled_from(["full_sync", "incremental_sync", "selective_sync", "x"]),
            "options": st.dictionaries(
                st.sampled_from(["force", "batchSize", "entityTypes", "includeArchived"]),
                json_values,
            ),
        }
    ),
    json_values,
    st.binary(max_size=40),
)
path_values = st.sampled_from(["hr", "nope", "JOB", "job-%2F..", "stop-all"])


VALID = [
    (
        "POST",
        "/api/sync/jobs",
        {"integrationId": "hr", "type": "full_sync", "options": {"force": True}},
    ),
    ("POST", "/api/sync/jobs", {"integrationId": "hr", "type": "incremental_sync"}),
    (
        "POST",
        "/api/sync/jobs",
        {
            "integrationId": "hr",
            "type": "selective_sync",
            "options": {"entityTypes": ["user"], "batchSize": 3, "force": True},
        },
    ),
    ("POST", "/api/sync/jobs/JOB/stop", {"graceful": False}),
    ("POST", "/api/sync/jobs/JOB/stop", {}),
    ("POST", "/api/sync/jobs/JOB/resume", {}),
    ("PUT", "/api/sync/jobs/JOB/interval", {"interval": 60}),
    ("DELETE", "/api/sync/jobs/JOB", {"deleteLogs": True}),
    ("POST", "/api/sync/jobs/stop-all", {}),
    ("POST", "/api/sync/integrations/hr/pause", {}),
    ("POST", "/api/sync/integrations/hr/start", {}),
    ("POST", "/api/sync/integrations/hr/stop", {}),
    ("POST", "/api/sync/integrations/hr/restart", {"criteria": {"resetScope": ["Full"]}}),
    (
        "POST",
        "/api/sync/integrations",
        {
            "id": "made",
            "entityTypes": ["user"],
            "source": {"connector": "memory"},
            "target": {"connector": "memory"},
        },
    ),
    ("DELETE", "/api/sync/integrations/made", {}),
    ("POST", "/api/sync/initialize", {}),
    ("PUT", "/api/sync/integrations/hr/schema", {"objectMappings": [{"sourceObjectName": "user"}]}),
    ("PUT", "/api/sync/integrations/hr/schema", {"objectMappings": [{"sourceObjectName": "x"}]}),
    ("GET", "/api/sync/integrations/status", {}),
    ("GET", "/metrics", {}),
]


@st.composite
def requests(draw: Any) -> tuple[str, str, Any]:
    if draw(st.booleans()):
        return draw(st.sampled_from(VALID))
    route = draw(st.sampled_from(ROUTES))
    path = route.path
    for name in ("jobId", "integrationId"):
        path = path.replace("{" + name + "}", draw(path_values))
    method = draw(st.sampled_from([route.method, route.method, "GET", "POST", "PUT", "DELETE"]))
    return method, path, draw(bodies)


async def run_sequence(tmp_path: Path, sequence: list[tuple[str, str, Any]]) -> None:
    connector = MemoryConnector()
    for i in range(30):
        connector.source.put("user", f"u{i}", name=str(i))
    daemon = Daemon(
        make_config(tmp_path),
        pm=build_plugin_manager(entry_points=False, extra=[MemoryPlugin(connector), stash_plugin]),
        store=MemoryStore(),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: daemon.run(api=False, task_status=task_status))
        transport = httpx.ASGITransport(app=daemon.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://sluiced") as client:
            job_id = None
            for method, path, body in sequence:
                if "JOB" in path:
                    path = path.replace("JOB", job_id or "job-none")
                content = body if isinstance(body, bytes) else json.dumps(body).encode()
                if path.endswith("/events"):
                    continue  # a stream; covered end to end
                r = await client.request(method, path, content=content)
                event(f"{method} {r.status_code}")
                await trio.sleep(0.001 * (len(path) % 3))  # let jobs run between some requests
                assert r.status_code < 500, (method, path, body, r.text)
                if path != "/metrics":
                    data = r.json()
                    if r.status_code >= 400:
                        error = data["error"]
                        assert set(error) == {"code", "message", "field"} and error["message"]
                    elif isinstance(data, dict) and data.get("jobId"):
                        job_id = data["jobId"]
            assert (await client.get("/healthz")).json()["status"] == "ok"
            with trio.fail_after(30):
                await daemon.runner.wait_idle()
            jobs, total = await daemon.store.list_jobs(limit=None)
            assert len(jobs) == total
            for job in jobs:
                assert job.status not in (JobStatus.RUNNING, JobStatus.STOPPING), (
                    job
                )  # nothing left dangling
                assert 0 <= job.progress <= 100
        nursery.cancel_scope.cancel()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=st.lists(requests(), min_size=1, max_size=8))
def test_no_request_sequence_crashes_the_daemon(
    tmp_path: Path, sequence: list[tuple[str, str, Any]]
) -> None:
    trio.run(run_sequence, tmp_path, sequence)


async def test_openapi_document_lists_exactly_the_routes() -> None:
    """Every documented operation is served; every other method on a documented path is
    405 with ``Allow`` naming exactly the documented ones."""
    app = build_app(None, stash_routes.JOB_TYPES, stash_routes.ROUTES)  # type: ignore[arg-type]
    doc = openapi_document(stash_routes.JOB_TYPES, stash_routes.ROUTES)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://sluiced") as client:
        for path, ops in doc["paths"].items():
            concrete = path.replace("{jobId}", "job-0").replace("{integrationId}", "hr")
            documented = {m.upper() for m in ops}
            for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
                r = await client.request(method, concrete)
                if method in documented:
                    assert r.status_code != 405, (method, path)
                else:
                    assert r.status_code == 405, (method, path)
                    allowed = set(r.headers["allow"].split(", ")) - {"HEAD"}
                    assert allowed == documented
    for path, ops in doc["paths"].items():
        for op in ops.values():
            params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert params == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}


async def test_an_unexpected_error_answers_an_id_never_its_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sluiced.api.routing import Call, Route
    from sluiced.api.routing import build_app as build_routes

    async def boom(call: Call, ctl: Any) -> Any:
        raise RuntimeError("secret detail of a bug")

    app = build_routes(None, (Route("GET", "/boom", boom, "fails"),))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://sluiced") as client:
        r = await client.get("/boom")
    assert r.status_code == 500 and "secret" not in r.text and "RuntimeError" not in r.text
    error_id = r.json()["error"]["message"].rsplit(" ", 1)[-1]
    assert error_id.startswith("err-")
    logged = capsys.readouterr()
    assert error_id in logged.out + logged.err and "secret detail" in logged.out + logged.err
