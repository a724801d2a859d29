"""``GET /api/sync/integrations/{id}/changes``: the provisioning log through the control
API, against a daemon in the same process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from sluiced.api import openapi_document
from sluiced.api.views import stamp
from sluiced.changes import OPERATOR_DROP, RESET_DROP, Change
from sluiced.clock import TrioClock
from sluiced.models import Escrow, Job
from sluiced.store import BatchCommit

from .test_daemon import Harness, make_harness

PATH = "/api/sync/integrations/hr/changes"


@pytest.fixture
async def synced(tmp_path: Path, autojump_clock: trio.abc.Clock) -> AsyncIterator[Any]:
    """A daemon that synced its 25 users, then saw u001 change and u002 leave."""
    h: Harness = await make_harness(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        with trio.fail_after(300):
            await trio.sleep(1)
            await h.daemon.runner.wait_idle()
            h.connector.source.put("user", "u001", name="renamed", password="hunter2")
            h.connector.source.delete("user", "u002")
            await h.daemon.controller.restart("hr", ["Watermark"])  # a full pass
            await h.daemon.runner.wait_idle()
        transport = httpx.ASGITransport(app=h.daemon.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://sluiced") as client:
            yield client
        nursery.cancel_scope.cancel()


async def test_the_log_answers_what_happened_to_one_object(synced: httpx.AsyncClient) -> None:
    r = await synced.get(PATH, params={"objectId": "u001"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["integrationId"] == "hr" and body["nextCursor"] is None
    update, create = body["changes"]
    assert (update["action"], create["action"]) == ("update", "create")
    assert update["changes"] == {
        "name": {"from": "n1", "to": "renamed"},
        "password": {"from": None, "to": "[redacted]"},
    }
    assert create["attributes"] == {"id": "u001", "name": "n1"}
    assert set(create) == {
        "id", "at", "jobId", "entityType", "sourceId", "targetId", "action", "attributes"
    }  # fmt: skip
    assert create["at"].endswith("Z") and update["at"] >= create["at"]
    assert create["jobId"] != update["jobId"] and create["entityType"] == "user"
    by_target = await synced.get(PATH, params={"objectId": create["targetId"]})
    assert [c["id"] for c in by_target.json()["changes"]] == [update["id"], create["id"]]


async def test_filters_pages_and_their_cursor(synced: httpx.AsyncClient) -> None:
    everything = (await synced.get(PATH, params={"limit": 1000})).json()["changes"]
    assert len(everything) == 27  # 25 creates, an update, a delete
    deleted = (await synced.get(PATH, params={"action": "delete"})).json()["changes"]
    assert [(c["action"], c["sourceId"]) for c in deleted] == [("delete", "u002")]
    both = await synced.get(PATH, params=[("action", "delete"), ("action", "update,create")])
    assert len(both.json()["changes"]) == 27
    job = deleted[0]["jobId"]
    in_job = (await synced.get(PATH, params={"jobId": job})).json()["changes"]
    assert {c["action"] for c in in_job} == {"delete", "update"}
    since = (await synced.get(PATH, params={"since": deleted[0]["at"]})).json()["changes"]
    assert {c["jobId"] for c in since} == {job}
    until = await synced.get(PATH, params={"until": "2000-01-01T00:00:00Z", "entityType": "user"})
    assert until.json()["changes"] == []
    # Newest first, page by page: every change once.
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await synced.get(PATH, params=params)).json()
        seen += page["changes"]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == everything


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"action": "erase"}, "action[0]"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2025-02-29T00:00:00Z"}, "since"),  # no 29 February in 2025
        ({"cursor": "abc"}, "cursor"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_a_bad_parameter_is_422_naming_it(
    synced: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    r = await synced.get(PATH, params=params)
    assert r.status_code == 422 and r.json()["error"]["field"] == field


@pytest.mark.parametrize(
    "at",
    [
        "2024-02-29T00:00:00Z",
        "2025-06-01T14:30:00+14:00",
        "2025-06-01t10:00:00z",
        "2025-06-01T10:00:00-12:00",
    ],
)
async def test_every_rfc_3339_time_is_taken(synced: httpx.AsyncClient, at: str) -> None:
    r = await synced.get(PATH, params={"since": at})
    assert r.status_code == 200, r.text


async def test_a_bad_time_is_explained_not_shown_as_a_pattern(synced: httpx.AsyncClient) -> None:
    for at in ("yesterday", "2025-02-29T00:00:00Z"):
        message = (await synced.get(PATH, params={"since": at})).json()["error"]["message"]
        assert "RFC 3339" in message and "^" not in message, message


async def test_an_unknown_integration_is_404(synced: httpx.AsyncClient) -> None:
    r = await synced.get("/api/sync/integrations/nope/changes")
    assert r.status_code == 404


def test_the_openapi_document_lists_it() -> None:
    op = openapi_document()["paths"]["/api/sync/integrations/{integrationId}/changes"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert {"objectId", "entityType", "action", "jobId", "since", "until", "limit", "cursor"} <= (
        names
    )


@pytest.fixture
async def served(tmp_path: Path, autojump_clock: trio.abc.Clock) -> AsyncIterator[Any]:
    """A daemon that synced its 25 users, with its harness and an API client."""
    h: Harness = await make_harness(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        with trio.fail_after(300):
            await trio.sleep(1)
            await h.daemon.runner.wait_idle()
        transport = httpx.ASGITransport(app=h.daemon.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://sluiced") as client:
            yield h, client
        nursery.cancel_scope.cancel()


async def test_an_escrow_dropped_by_an_operator_is_logged(served: Any) -> None:
    h, client = served
    now = h.daemon.clock.now()
    e = Escrow(
        integration_id="hr",
        entity_type="user",
        object_id="u007",
        kind="target",
        reason="quota exceeded",
        first_failed=now,
        last_failed=now,
        next_retry=now,
    )
    job = Job(id="failed", integration_id="hr", type="incremental", created_at=now)
    await h.store.commit_batch(BatchCommit(job=job, entity_type="user", add_escrows=[e]))
    key = {"entityType": "user", "objectId": "u007"}
    r = await client.post("/api/sync/integrations/hr/escrows/drop", json=key)
    assert r.status_code == 200, r.text
    again = await client.post("/api/sync/integrations/hr/escrows/drop", json=key)
    assert again.status_code == 404
    (drop,) = (await client.get(PATH, params={"action": "drop"})).json()["changes"]
    assert drop == {
        "id": drop["id"],
        "at": drop["at"],
        "jobId": None,
        "entityType": "user",
        "sourceId": "u007",
        "targetId": None,
        "action": "drop",
        "reason": OPERATOR_DROP,
        "kind": "target",
    }
    assert drop["at"] >= stamp(now)


async def test_a_deleted_integration_keeps_its_log_until_the_default_retention(
    served: Any,
) -> None:
    h, client = served
    table = {
        "id": "made",
        "entityTypes": ["user"],
        "source": {"connector": "memory"},
        "target": {"connector": "memory"},
    }
    assert (await client.post("/api/sync/integrations", json=table)).status_code == 201
    now = h.daemon.clock.now()
    job = Job(id="j", integration_id="made", type="full_sync", created_at=now)
    changes = [
        Change(
            integration_id="made",
            job_id="j",
            entity_type="user",
            source_id=sid,
            target_id=None,
            action="delete",
            at=now - age,
        )
        for sid, age in (("old", timedelta(days=29)), ("new", timedelta(0)))
    ]
    await h.store.commit_batch(BatchCommit(job=job, entity_type="user", changes=changes))
    made = "/api/sync/integrations/made/changes"
    logged = (await client.get(made)).json()["changes"]
    assert [c["sourceId"] for c in logged] == ["new", "old"]
    assert (await client.delete("/api/sync/integrations/made")).status_code == 200
    assert (await client.get("/api/sync/integrations/made")).status_code == 404
    r = await client.get(made)
    assert r.status_code == 200 and r.json()["changes"] == logged
    # The daemon's retention (30 days) prunes it like any other.
    h.daemon.pruner.clock = TrioClock(now + timedelta(days=2))
    await h.daemon.pruner.prune()
    assert [c["sourceId"] for c in (await client.get(made)).json()["changes"]] == ["new"]
    h.daemon.pruner.clock = TrioClock(now + timedelta(days=31))
    await h.daemon.pruner.prune()
    assert (await client.get(made)).status_code == 404


async def test_a_restart_resetting_the_escrows_logs_each_as_dropped(served: Any) -> None:
    h, client = served
    now = h.daemon.clock.now()
    e = Escrow(
        integration_id="hr",
        entity_type="user",
        object_id="u007",
        kind="target",
        reason="quota exceeded",
        first_failed=now,
        last_failed=now,
        next_retry=now,
    )
    job = Job(id="failed", integration_id="hr", type="incremental", created_at=now)
    await h.store.commit_batch(BatchCommit(job=job, entity_type="user", add_escrows=[e]))
    r = await client.post(
        "/api/sync/integrations/hr/restart", json={"criteria": {"resetScope": ["Escrows"]}}
    )
    assert r.status_code < 300, r.text
    (drop,) = (await client.get(PATH, params={"action": "drop"})).json()["changes"]
    assert (drop["sourceId"], drop["reason"], drop["jobId"]) == ("u007", RESET_DROP, None)
