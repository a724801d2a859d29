"""The SCIM connector: pure resource shaping, and the client, target and source against a
real scim2-server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from sluiced.connectors import Op
from sluiced.errors import CredentialsError, ProtocolError, TransientError
from sluiced.plugins.scim.client import CORE_USER, ScimClient
from sluiced.plugins.scim.resources import (
    equality_filter,
    patch_operations,
    shape,
    top_path,
)
from sluiced.plugins.scim.source import ScimSource
from sluiced.plugins.scim.target import ScimTarget
from sluiced.tables import Secret

from .scimserver import ScimServer, scim_server

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


# -- pure ---------------------------------------------------------------------------------------
def test_flat_attributes_are_shaped_into_a_scim_resource() -> None:
    flat = {
        "userName": "ada@example.org",
        "name.givenName": "Ada",
        "name.familyName": "Lovelace",
        'emails[type eq "work"].value': "ada@example.org",
        'emails[type eq "work"].primary': True,
        f"{ENTERPRISE}:department": "Engineering",
        "title": None,
        "members": ["t1", {"value": "t2"}],
    }
    assert shape(flat, [CORE_USER]) == {
        "schemas": [CORE_USER, ENTERPRISE],
        "userName": "ada@example.org",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"type": "work", "value": "ada@example.org", "primary": True}],
        ENTERPRISE: {"department": "Engineering"},
        "members": [{"value": "t1"}, {"value": "t2"}],
    }
    assert top_path("name.givenName") == "name"
    assert top_path('emails[type eq "work"].value') == "emails"
    assert top_path(f"{ENTERPRISE}:department") == f"{ENTERPRISE}:department"


def test_a_patch_replaces_changed_top_level_attributes_only() -> None:
    previous = {"userName": "a@x", "name.givenName": "Ada", "name.familyName": "L", "title": "Dr"}
    data = {"userName": "a@x", "name.givenName": "Ada", "name.familyName": "Byron", "title": None}
    assert patch_operations(data, previous) == [
        {"op": "replace", "path": "name", "value": {"givenName": "Ada", "familyName": "Byron"}},
        {"op": "remove", "path": "title"},
    ]
    assert patch_operations(previous, previous) == []
    # Unknown previous state (matched by attributes): everything is replaced, nothing removed.
    ops = patch_operations({"userName": "a@x", "title": None}, None, enable=True)
    assert ops == [
        {"op": "replace", "path": "userName", "value": "a@x"},
        {"op": "replace", "path": "active", "value": True},
    ]


def test_re_enabling_follows_the_mapping_when_it_writes_active() -> None:
    """A disabled object coming back: `active` is what the mapping says, changed or not;
    only a mapping that does not write `active` re-enables it."""
    terminated = {"userName": "a@x", "active": False}
    assert patch_operations(terminated, terminated, enable=True) == [
        {"op": "replace", "path": "active", "value": False}
    ]
    working = {"userName": "a@x", "active": True}
    assert patch_operations(working, working, enable=True) == [
        {"op": "replace", "path": "active", "value": True}
    ]
    assert patch_operations({"userName": "a@x"}, {"userName": "a@x"}, enable=True) == [
        {"op": "replace", "path": "active", "value": True}
    ]
    assert patch_operations(terminated, terminated) == []


def test_filters_escape_quotes_and_backslashes() -> None:
    assert equality_filter("userName", ['a"b', "c\\d"]) == (
        'userName eq "a\\"b" or userName eq "c\\\\d"'
    )
    assert equality_filter("active", [True]) == "active eq true"


# -- against scim2-server --------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path) -> Iterator[ScimServer]:
    with scim_server(tmp_path) as s:
        yield s


def client(server: ScimServer, token: str | None = None) -> ScimClient:
    return ScimClient(server.url, token=Secret(token or server.token, "test"), attempts=2)


def user_op(sid: str, mail: str, **extra: Any) -> Op:
    data = {"userName": mail, "name.givenName": sid.upper(), "active": True, **extra}
    return Op(kind="create", source_id=sid, data=data)


async def test_discovery_reads_the_service_provider_config(server: ScimServer) -> None:
    c = client(server)
    try:
        p = await c.provider()
        assert p.patch and p.filter and p.etag and p.bulk
        assert p.resource_type("user").endpoint == "/Users"
        assert p.resource_type("Group").schema.endswith(":Group")
    finally:
        await c.aclose()


async def test_a_rejected_token_is_a_credentials_error_and_names_no_secret(
    server: ScimServer,
) -> None:
    target = ScimTarget(client(server, token="wrong-token-value"))
    try:
        with pytest.raises(CredentialsError) as info:
            await target.validate()
        assert "wrong-token-value" not in str(info.value) and "token_file" in str(info.value)
    finally:
        await target.aclose()


@pytest.mark.parametrize(("update", "bulk"), [("patch", True), ("patch", False), ("put", True)])
async def test_create_update_disable_enable_delete(
    server: ScimServer, update: str, bulk: bool
) -> None:
    target = ScimTarget(client(server), update=update, bulk=bulk)
    try:
        assert "SCIM service" in await target.validate()
        (created,) = await target.apply("User", [user_op("a", "ada@example.org", title="Dr")])
        assert created.ok and created.target_id
        tid = created.target_id
        previous = {"userName": "ada@example.org", "name.givenName": "A", "title": "Dr"}
        update_op = Op(
            kind="update",
            source_id="a",
            target_id=tid,
            data={"userName": "ada@example.org", "name.givenName": "Ada", "title": None},
            previous=previous,
        )
        assert (await target.apply("User", [update_op]))[0].ok
        (user,) = server.all()
        assert user["name"] == {"givenName": "Ada"} and "title" not in user
        disable = Op(kind="disable", source_id="a", target_id=tid, previous=previous)
        assert (await target.apply("User", [disable]))[0].ok
        assert server.all()[0]["active"] is False
        enable = Op(
            kind="update", source_id="a", target_id=tid, data={"title": "Prof"}, enable=True
        )
        assert (await target.apply("User", [enable]))[0].ok
        assert server.all()[0]["active"] is True and server.all()[0]["title"] == "Prof"
        delete = Op(kind="delete", source_id="a", target_id=tid)
        assert [r.ok for r in await target.apply("User", [delete, delete])] == [True, True]
        assert server.all() == []
    finally:
        await target.aclose()


@pytest.mark.parametrize(("update", "bulk"), [("patch", True), ("patch", False), ("put", True)])
async def test_a_returning_object_the_mapping_keeps_inactive_stays_inactive(
    server: ScimServer, update: str, bulk: bool
) -> None:
    target = ScimTarget(client(server), update=update, bulk=bulk)
    try:
        data = {"userName": "ada@example.org", "active": False}
        (created,) = await target.apply("User", [Op(kind="create", source_id="a", data=data)])
        tid = created.target_id
        disable = Op(kind="disable", source_id="a", target_id=tid, previous=data)
        assert (await target.apply("User", [disable]))[0].ok
        back = Op(
            kind="update", source_id="a", target_id=tid, data=data, previous=data, enable=True
        )
        assert (await target.apply("User", [back]))[0].ok
        assert server.all()[0]["active"] is False
    finally:
        await target.aclose()


async def test_find_answers_every_candidate_case_insensitively(server: ScimServer) -> None:
    server.post("/Users", {"schemas": [CORE_USER], "userName": "Ada@Example.org"})
    server.post("/Users", {"schemas": [CORE_USER], "userName": "bob@example.org"})
    target = ScimTarget(client(server))
    try:
        values = ["ada@example.org", "bob@example.org", "cy@example.org"] + [
            f"n{i}@example.org"
            for i in range(120)  # more than one filter's worth
        ]
        found = await target.find("User", "userName", values)
        assert found is not None and set(found) == {"ada@example.org", "bob@example.org"}
        assert all(len(ids) == 1 for ids in found.values())
        assert await target.find("User", 'emails[type eq "work"].value', ["x"]) is None
    finally:
        await target.aclose()


async def test_a_create_that_clashes_adopts_the_existing_object(server: ScimServer) -> None:
    existing = server.post("/Users", {"schemas": [CORE_USER], "userName": "ada@example.org"})
    target = ScimTarget(client(server))
    try:
        (result,) = await target.apply("User", [user_op("a", "ada@example.org", title="Dr")])
        assert result.ok and result.target_id == existing["id"]
        (user,) = server.all()
        assert user["title"] == "Dr"
        # A refused object is a per-object failure with the server's reason.
        (bad,) = await target.apply("User", [Op(kind="create", source_id="x", data={"title": "t"})])
        assert not bad.ok and bad.error and "400" in bad.error
    finally:
        await target.aclose()


async def test_an_update_of_an_object_deleted_in_the_target_creates_it_again(
    server: ScimServer,
) -> None:
    target = ScimTarget(client(server))
    try:
        op = Op(kind="update", source_id="a", target_id="gone", data={"userName": "a@example.org"})
        (result,) = await target.apply("User", [op])
        assert result.ok and result.target_id != "gone"
        assert [u["userName"] for u in server.all()] == ["a@example.org"]
    finally:
        await target.aclose()


async def test_the_source_pages_through_users_and_groups(server: ScimServer) -> None:
    ids = [
        server.post("/Users", {"schemas": [CORE_USER], "userName": f"u{i}@example.org"})["id"]
        for i in range(7)
    ]
    group = server.post(
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "admins",
            "members": [{"value": ids[0]}, {"value": ids[1]}],
        },
    )
    source = ScimSource(client(server))
    try:
        assert await source.watermark("User") is not None
        pages = [p async for p in source.read("User", since=None, cursor=None, page_size=3)]
        assert [len(p.items) for p in pages] == [3, 3, 1] and all(p.exhaustive for p in pages)
        records = [r for p in pages for r in p.items]
        assert sorted(r.id for r in records) == sorted(ids)
        assert "meta" not in records[0].data
        # Resuming at a cursor continues after that record.
        rest = [
            p async for p in source.read("User", since=None, cursor=records[4].cursor, page_size=3)
        ]
        assert [r.id for p in rest for r in p.items] == [r.id for r in records[5:]]
        groups = source.read("Group", since=None, cursor=None, page_size=10)
        (g,) = [r async for p in groups for r in p.items]
        assert g.id == group["id"] and {m["value"] for m in g.data["members"]} == set(ids[:2])
        got = await source.get_many("User", [ids[0], "missing"])
        assert set(got) == {ids[0]}
    finally:
        await source.aclose()


def test_scim2_tester_finds_the_test_server_a_faithful_scim_peer(server: ScimServer) -> None:
    """The server the tests sync into passes scim2-tester's RFC 7643/7644 checks:
    discovery, create, read, filter, replace, patch, delete of Users and Groups."""
    from collections import Counter

    from httpx2 import Client
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import check_server

    with Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as http:
        results = check_server(SyncSCIMClient(http))
    statuses = Counter(r.status.name for r in results)
    failures = [
        f"{r.status.name}: {r.title}: {r.reason}"
        for r in results
        if r.status.name in ("ERROR", "CRITICAL", "DEVIATION")
    ]
    assert failures == [] and statuses["SUCCESS"] >= 100, (statuses, failures)
    assert {r.resource_type for r in results} >= {"User", "Group"}


# -- the client's error handling, against a scripted server ------------------------------------
def scripted(*answers: httpx.Response) -> tuple[ScimClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    c = ScimClient(
        "http://scim.test/v2",
        token=Secret("tok-secret", "test"),
        attempts=3,
        transport=httpx.MockTransport(handler),
    )
    return c, seen


async def test_429_is_retried_after_the_time_the_server_asks_for(
    autojump_clock: trio.abc.Clock,
) -> None:
    c, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "30"}),
        httpx.Response(201, json={"id": "u1"}),
    )
    try:
        start = trio.current_time()
        r = await c.request("POST", "/Users", body={"userName": "a"})
        assert r.status == 201 and r.body == {"id": "u1"}
        assert trio.current_time() - start >= 30  # waited as asked, above the backoff cap
        assert len(seen) == 2 and seen[0].headers["Authorization"] == "Bearer tok-secret"
    finally:
        await c.aclose()


async def test_persistent_5xx_is_transient_and_401_is_credentials(
    autojump_clock: trio.abc.Clock,
) -> None:
    c, _ = scripted(*(httpx.Response(503) for _ in range(3)))
    try:
        with pytest.raises(TransientError, match="503"):
            await c.request("GET", "/Users")
    finally:
        await c.aclose()
    c, _ = scripted(httpx.Response(401))
    try:
        with pytest.raises(CredentialsError) as info:
            await c.request("GET", "/Users")
        assert "tok-secret" not in str(info.value)
    finally:
        await c.aclose()


async def test_an_answer_that_is_not_scim_is_a_protocol_error() -> None:
    c, _ = scripted(httpx.Response(200, text="<html>login</html>"))
    try:
        with pytest.raises(ProtocolError, match="not JSON"):
            await c.request("GET", "/ServiceProviderConfig")
    finally:
        await c.aclose()


async def test_bulk_requests_carry_up_to_100_operations(server: ScimServer) -> None:
    target = ScimTarget(client(server))
    try:
        ops = [user_op(f"u{i}", f"u{i}@example.org") for i in range(250)]
        results = await target.apply("User", ops)
        assert all(r.ok for r in results) and len({r.target_id for r in results}) == 250
        assert target.client.requests == 2 + 3  # discovery, then 100 + 100 + 50
        by_name = {u["userName"]: u["id"] for u in server.all()}
        assert [r.target_id for r in results] == [by_name[f"u{i}@example.org"] for i in range(250)]
        deletes = [
            Op(kind="delete", source_id=o.source_id, target_id=r.target_id)
            for o, r in zip(ops, results, strict=True)
        ]
        assert all(r.ok for r in await target.apply("User", deletes))
        assert server.all() == [] and target.client.requests == 5 + 3
    finally:
        await target.aclose()


async def test_an_incremental_read_asks_for_what_changed_since_the_watermark(
    server: ScimServer,
) -> None:
    from datetime import timedelta

    server.post("/Users", {"schemas": [CORE_USER], "userName": "before@example.org"})
    source = ScimSource(client(server), overlap=timedelta(0))
    try:
        await trio.sleep(1.1)  # the server's clock (its Date header) counts whole seconds
        watermark = await source.watermark("User")
        await trio.sleep(1.1)
        server.post("/Users", {"schemas": [CORE_USER], "userName": "after@example.org"})
        pages = [p async for p in source.read("User", since=watermark, cursor=None, page_size=10)]
        assert [r.data["userName"] for p in pages for r in p.items] == ["after@example.org"]
        assert not any(p.exhaustive for p in pages)
    finally:
        await source.aclose()


async def test_a_bulk_request_refused_whole_falls_back_to_one_request_per_op() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/ServiceProviderConfig"):
            return httpx.Response(
                200,
                json={
                    "patch": {"supported": True},
                    "bulk": {"supported": True, "maxOperations": 10},
                },
            )
        if request.url.path.endswith("/ResourceTypes"):
            return httpx.Response(404)
        if request.url.path.endswith("/Bulk"):
            return httpx.Response(413, json={"detail": "too large"})
        return httpx.Response(201, json={"id": f"id{len(seen)}"})

    c = ScimClient("http://scim.test/v2", transport=httpx.MockTransport(handler), concurrency=1)
    target = ScimTarget(c)
    try:
        results = await target.apply("User", [user_op("a", "a@x"), user_op("b", "b@x")])
        assert [r.ok for r in results] == [True, True]
        assert seen[2:] == ["POST /v2/Bulk", "POST /v2/Users", "POST /v2/Users"]
    finally:
        await target.aclose()
