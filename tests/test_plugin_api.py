"""What a plugin adds to the control plane through hooks: job types (one more form of
``POST /api/sync/jobs``), API routes over the control interface, and sluicectl
commands; the Stash plugin's seed 000/001 endpoints and commands come this way."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import types
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from sluiced.api import Call, Field, JobType, Route, route_table
from sluiced.control import Control
from sluiced.ctl import Command, Session, build_parser, plugin_commands
from sluiced.hookspecs import hookimpl
from sluiced.models import Job
from sluiced.pluginmanager import RegistryError, build_plugin_manager, build_registry
from sluiced.store import MemoryStore
from sluiced.supervisor import Daemon

from .fakes import MemoryConnector, MemoryPlugin
from .test_daemon import make_config


def _report_params(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "depth": body.get("metadata", {}).get("depth", 1),
        "all": body["job_type"] == "report_all",
    }


REPORT = JobType(
    name="report",
    body=Field(
        "object",
        fields={
            "job_type": Field("string", required=True, choices=("report", "report_all")),
            "metadata": Field("object", fields={"depth": Field("int", minimum=1, maximum=9)}),
            "integrationId": Field("string"),
        },
    ),
    params=_report_params,
    targets=frozenset({"memory"}),
    answer=lambda job: {"id": job.id, "type": job.type, "queued": True},
    response={"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
)


async def count_reports(call: Call, ctl: Control) -> Any:
    jobs, total = await ctl.list_jobs(
        statuses=None, integration_id=call.path["integrationId"], limit=100
    )
    return {"reports": sum(j.type == "report" for j in jobs), "jobs": total}


REPORTS_ROUTE = Route(
    "GET",
    "/api/reports/{integrationId}",
    count_reports,
    "How many reports an integration ran",
    params={"integrationId": Field("string", max_length=64)},
    response={"type": "object"},
)


def run_report(session: Session, args: argparse.Namespace) -> int:
    session.show({"asked": args.id})
    return 0


REPORT_COMMAND = Command(
    name="report",
    help="run a report",
    arguments=lambda p: p.add_argument("id"),
    run=run_report,
)


class Reports:
    @hookimpl
    def sluiced_job_types(self) -> Sequence[JobType]:
        return [REPORT]

    @hookimpl
    def sluiced_api_routes(self) -> Sequence[Route]:
        return [REPORTS_ROUTE]

    @hookimpl
    def sluiced_ctl_commands(self) -> Sequence[Command]:
        return [REPORT_COMMAND]


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    pm = build_plugin_manager(entry_points=False, extra=[MemoryPlugin(MemoryConnector())])
    pm.register(Reports(), name="reports")
    d = Daemon(make_config(tmp_path, ("hr", "crm")), pm=pm, store=MemoryStore())
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: d.run(api=False, task_status=task_status))
        yield d
        nursery.cancel_scope.cancel()


def client(d: Daemon) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=d.app()), base_url="http://s")


async def test_a_plugins_job_type_is_a_form_of_post_jobs(daemon: Daemon) -> None:
    async with client(daemon) as c:
        r = await c.post(
            "/api/sync/jobs", json={"job_type": "report_all", "metadata": {"depth": 3}}
        )
        assert (
            r.status_code == 409 and "name one with integrationId" in r.json()["error"]["message"]
        )
        r = await c.post(
            "/api/sync/jobs",
            json={"job_type": "report_all", "metadata": {"depth": 3}, "integrationId": "crm"},
        )
        assert r.status_code == 202, r.text
        answer = r.json()
        assert answer["type"] == "report" and answer["queued"] is True
        job: Job | None = await daemon.store.get_job(answer["id"])
        assert job is not None and job.integration_id == "crm"
        assert job.params == {"depth": 3, "all": True}
        bad = await c.post("/api/sync/jobs", json={"job_type": "report", "metadata": {"depth": 0}})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "metadata.depth"
        r = await c.get("/api/reports/crm")
        assert r.status_code == 200 and r.json()["reports"] == 1
        doc = (await c.get("/api/openapi.json")).json()
    assert "get" in doc["paths"]["/api/reports/{integrationId}"]
    create = doc["paths"]["/api/sync/jobs"]["post"]
    forms = create["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert any("job_type" in f.get("properties", {}) for f in forms)
    answers = create["responses"]["202"]["content"]["application/json"]["schema"]["anyOf"]
    assert REPORT.response in answers


async def test_without_the_plugin_its_forms_and_routes_are_unknown(tmp_path: Path) -> None:
    pm = build_plugin_manager(entry_points=False, extra=[MemoryPlugin(MemoryConnector())])
    d = Daemon(make_config(tmp_path), pm=pm, store=MemoryStore())
    async with client(d) as c:
        r = await c.post("/api/sync/jobs", json={"job_type": "report", "metadata": {}})
        assert r.status_code == 422 and r.json()["error"]["field"] == "job_type"
        assert (await c.get("/api/reports/hr")).status_code == 404
        assert (await c.post("/api/sync", json={})).status_code == 404


def test_the_stash_plugin_brings_seed_000_and_001() -> None:
    registry = build_registry(build_plugin_manager())
    assert {"sync", "sync_scenes"} <= set(registry.job_types)
    paths = {
        (r.method, r.path) for r in route_table(list(registry.job_types.values()), registry.routes)
    }
    assert {("POST", "/api/sync"), ("POST", "/api/sync/scenes")} <= paths
    (stash,) = [p for p in registry.plugins if p.name == "stash"]
    assert "route POST /api/sync" in stash.provides and "job type sync" in stash.provides
    assert {"sync", "sync-scenes"} <= set(registry.commands)


def test_two_plugins_with_one_job_type_or_route_are_refused() -> None:
    pm = build_plugin_manager(entry_points=False)
    pm.register(Reports(), name="one")
    pm.register(Reports(), name="two")
    with pytest.raises(RegistryError, match="job type 'report' is provided by both one and two"):
        build_registry(pm)


def test_a_route_the_core_answers_is_refused() -> None:
    taken = Route("GET", "/healthz", count_reports, "mine")
    with pytest.raises(ValueError, match="two routes answer GET /healthz"):
        route_table((), [taken])
    with pytest.raises(ValueError, match="asks for both"):
        route_table([REPORT, REPORT])


def test_a_plugin_route_the_core_answers_stops_the_daemon_before_it_starts(
    tmp_path: Path,
) -> None:
    class Taking:
        @hookimpl
        def sluiced_api_routes(self) -> Sequence[Route]:
            return [Route("GET", "/healthz", count_reports, "mine")]

    pm = build_plugin_manager(entry_points=False, extra=[MemoryPlugin(MemoryConnector())])
    pm.register(Taking(), name="taking")
    with pytest.raises(RegistryError, match="two routes answer GET /healthz"):
        Daemon(make_config(tmp_path), pm=pm, store=MemoryStore())


def test_sluicectl_says_what_a_broken_plugin_did_and_keeps_its_own_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sluiced.ctl import _main

    def broken(config: str | None = None) -> Any:
        raise RegistryError("command 'sync' is provided by both stash and other")

    monkeypatch.setattr(_main, "plugin_commands", broken)
    with pytest.raises(SystemExit) as exit_:
        _main.main(["--help"])
    assert exit_.value.code == 0
    out, err = capsys.readouterr()
    assert "sluicectl: plugins: RegistryError: command 'sync' is provided by both" in err
    assert "Traceback" not in err and "jobs" in out


def readme_example() -> types.ModuleType:
    """The README's plugin adding a job type and a route, as a module."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    found = re.search(r"<!-- plugin-routes-example -->\n```python\n(.*?)^```$", readme, re.S | re.M)
    assert found is not None
    module = types.ModuleType("readme_example")
    exec(compile(found.group(1), "README.md", "exec"), module.__dict__)
    return module


async def test_the_readmes_example_plugin(tmp_path: Path) -> None:
    connector = MemoryConnector()
    connector.name = "jsonl"  # the example's job type runs on jsonl targets
    plugins = [MemoryPlugin(connector), readme_example()]
    pm = build_plugin_manager(entry_points=False, extra=plugins)
    jsonl = {"connector": "jsonl"}
    d = Daemon(make_config(tmp_path, source=jsonl, target=jsonl), pm=pm, store=MemoryStore())
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: d.run(api=False, task_status=task_status))
        async with client(d) as c:
            r = await c.post("/api/sync/jobs", json={"job_type": "report"})
            assert r.status_code == 202, r.text
            assert (await c.get("/api/reports")).json() == {"reports": 1}
        nursery.cancel_scope.cancel()


def test_sluicectl_offers_the_plugins_commands(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser({"report": REPORT_COMMAND})
    args = parser.parse_args(["report", "hr", "--json"])
    assert args.fn(None, args) == 0
    assert json.loads(capsys.readouterr().out) == {"asked": "hr"}
    with pytest.raises(ValueError, match="'status' is sluicectl's own"):
        build_parser(
            {"status": Command(name="status", help="", arguments=lambda p: None, run=run_report)}
        )


def test_sluicectl_loads_plugins_as_the_daemon_does(tmp_path: Path) -> None:
    assert {"sync", "sync-scenes"} <= set(plugin_commands(str(tmp_path / "none.toml")))
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\ndisabled_plugins = ["stash"]\n')
    assert "sync" not in plugin_commands(str(config))
    shown = build_parser(plugin_commands(str(config))).format_help()
    assert "sync-scenes" not in shown and "status" in shown


def sluicectl(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from sluiced.ctl import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_sluicectl_runs_a_plugins_command_unless_the_config_disables_it(tmp_path: Path) -> None:
    gone = str(tmp_path / "gone.sock")
    tried = sluicectl("--socket", gone, "--json", "sync", "--full")
    assert tried.returncode == 3 and gone in tried.stderr  # tried: no daemon there
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\ndisabled_plugins = ["stash"]\n')
    refused = sluicectl("-c", str(config), "--socket", gone, "sync")
    assert refused.returncode == 2 and "invalid choice: 'sync'" in refused.stderr
    assert sluicectl("-c", str(config), "--socket", gone, "jobs").returncode == 3
