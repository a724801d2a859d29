"""SCIM servers in the wild (scripted, see tests/wildscim.py): endpoints written
root-relative or absolute, 501 answers, attributes a server drops."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from sluiced.connectors import Op
from sluiced.errors import ProtocolError
from sluiced.plugins.scim.client import CORE_USER
from sluiced.plugins.scim.source import ScimSource
from sluiced.plugins.scim.target import ScimTarget

from .wildscim import BASE_PATH, WildScim


def user(sid: str, **extra: Any) -> Op:
    return Op(kind="create", source_id=sid, data={"userName": f"{sid}@example.org", **extra})


def group(sid: str, members: list[str]) -> Op:
    return Op(kind="create", source_id=sid, data={"displayName": sid, "members": members})


# -- endpoints ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "endpoint",
    [
        "Users",
        "/Users",
        "/scim/v2/Users",  # root-relative
        "http://scim.test/scim/v2/Users",  # absolute
        "HTTP://SCIM.test:80/scim/v2/Users/",
    ],
)
async def test_an_endpoint_however_written_is_joined_to_the_base_url_once(endpoint: str) -> None:
    server = WildScim(endpoints={"User": endpoint, "Group": "/Groups"}, bulk=True)
    target = ScimTarget(server.client())
    source = ScimSource(server.client())
    try:
        created = await target.apply("User", [user("a"), user("b")])  # in one bulk request
        assert [r.ok for r in created] == [True, True], created
        a_id = created[0].target_id
        update = Op(
            kind="update",
            source_id="a",
            target_id=a_id,
            data={"userName": "a@example.org", "title": "Dr"},
            previous={"userName": "a@example.org"},
        )
        (single,) = await (ScimTarget(server.client(), bulk=False)).apply("User", [update])
        assert single.ok
        found = await target.find("User", "userName", ["b@example.org"])
        assert found == {"b@example.org": [created[1].target_id]}
        pages = [p async for p in source.read("User", since=None, cursor=None, page_size=10)]
        assert sorted(r.id for p in pages for r in p.items) == sorted(r.target_id for r in created)
        assert set(await source.get_many("User", [str(a_id)])) == {a_id}
        assert all(
            s.split(" ", 1)[1].startswith(f"{BASE_PATH}/") and "/scim/v2/scim" not in s
            for s in server.seen
        ), server.seen
        assert server.resources("Users")[0]["title"] == "Dr"
    finally:
        await target.aclose()
        await source.aclose()


async def test_an_endpoint_on_another_origin_is_refused_and_never_gets_the_token() -> None:
    server = WildScim(endpoints={"User": "https://elsewhere.test/Users", "Group": "/Groups"})
    target = ScimTarget(server.client())
    try:
        with pytest.raises(ProtocolError, match=r"elsewhere\.test/Users"):
            await target.apply("User", [user("a")])
        (ok,) = await target.apply("Group", [group("g", [])])  # the other types still work
        assert ok.ok and server.hosts == {"scim.test"}
    finally:
        await target.aclose()


# -- 501 -----------------------------------------------------------------------------------------
async def test_a_patch_answered_501_is_done_by_read_merge_put_from_then_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = WildScim(patch_501=True)
    target = ScimTarget(server.client())
    try:
        (a,) = await target.apply("User", [user("a", title="Dr")])
        server.seen.clear()
        data = {"userName": "a@example.org", "title": "Prof"}
        op = Op(kind="update", source_id="a", target_id=a.target_id, data=data, previous={})
        (r,) = await target.apply("User", [op])
        assert r.ok, r
        path = f"{BASE_PATH}/Users/{a.target_id}"
        assert server.seen == [f"PATCH {path}", f"GET {path}", f"PUT {path}"]
        server.seen.clear()
        disable = Op(kind="disable", source_id="a", target_id=a.target_id)
        assert (await target.apply("User", [disable]))[0].ok
        assert server.seen == [f"GET {path}", f"PUT {path}"]  # PATCH is not tried again
        assert server.resources("Users")[0] | {"id": "x"} == {
            "id": "x",
            "schemas": [CORE_USER],
            "userName": "a@example.org",
            "title": "Prof",
            "active": False,
        }
    finally:
        await target.aclose()


async def test_a_501_with_no_other_way_fails_that_object_with_the_servers_detail(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = WildScim(unimplemented=frozenset({"x509Certificates"}))
    target = ScimTarget(server.client(), update="put")
    try:
        cert = [{"value": "MIIC"}]
        results = await target.apply("User", [user("a"), user("b", x509Certificates=cert)])
        assert results[0].ok and not results[1].ok
        assert results[1].error == (
            "HTTP 501 (not implemented): the attribute x509Certificates is not implemented"
        )
        assert server.seen.count(f"POST {BASE_PATH}/Users") == 2  # not retried
        put = Op(
            kind="update",
            source_id="a",
            target_id=results[0].target_id,
            data={"userName": "a@example.org", "x509Certificates": cert},
        )
        (r,) = await target.apply("User", [put])
        assert not r.ok and r.error is not None and "501" in r.error
    finally:
        await target.aclose()


async def test_a_bulk_patch_answered_501_goes_the_single_way_by_put() -> None:
    server = WildScim(bulk=True, patch_501=True)
    target = ScimTarget(server.client())
    try:
        created = await target.apply("User", [user("a"), user("b")])
        updates = [
            Op(
                kind="update",
                source_id=sid,
                target_id=r.target_id,
                data={"userName": f"{sid}@example.org", "title": "Dr"},
                previous={"userName": f"{sid}@example.org"},
            )
            for sid, r in zip("ab", created, strict=True)
        ]
        server.seen.clear()
        assert all(r.ok for r in await target.apply("User", updates))
        assert server.seen[0] == f"POST {BASE_PATH}/Bulk"
        assert sorted(s.split(" ")[0] for s in server.seen[1:]) == ["GET", "GET", "PUT", "PUT"]
        assert {u["title"] for u in server.resources("Users")} == {"Dr"}
    finally:
        await target.aclose()


async def test_a_bulk_request_answered_501_is_not_sent_again() -> None:
    server = WildScim(bulk=True, bulk_501=True)
    target = ScimTarget(server.client())
    try:
        assert all(r.ok for r in await target.apply("User", [user("a"), user("b")]))
        assert all(r.ok for r in await target.apply("User", [user("c"), user("d")]))
        assert server.seen.count(f"POST {BASE_PATH}/Bulk") == 1
        assert len(server.resources("Users")) == 4
    finally:
        await target.aclose()


async def test_matching_on_an_attribute_the_server_cannot_filter_on_says_so(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = WildScim(unfilterable=frozenset({"externalId"}))
    target = ScimTarget(server.client())
    try:
        with pytest.raises(ProtocolError) as info:
            await target.find("User", "externalId", ["E1", "E2", "E3"])
        assert str(info.value) == (
            "the SCIM server cannot filter User resources on externalId (HTTP 501 (not "
            "implemented): filtering on externalId is not implemented): match on an "
            "attribute it can filter on"
        )
        assert len(server.seen) == 2 + 3  # discovery, then one filter per value, not retried
    finally:
        await target.aclose()


# -- attributes a server drops ---------------------------------------------------------------------
async def test_a_group_whose_members_the_server_drops_fails_and_is_not_left_behind() -> None:
    server = WildScim(bulk=True, drop_on_create=frozenset({"members"}))
    server.drop_on_update = frozenset({"members"})
    target = ScimTarget(server.client())
    try:
        users = await target.apply("User", [user("a"), user("b")])
        ids = [str(r.target_id) for r in users]
        (g,) = await target.apply("Group", [group("g", ids)])
        assert not g.ok
        assert g.error == ("the server ignored `members`; the Group it created was deleted"), (
            g.error
        )
        assert server.resources("Groups") == []
        # An update that drops some of the members fails the same way.
        server.drop_on_create = frozenset()
        (g,) = await target.apply("Group", [group("g", ids[:1])])
        assert g.ok
        update = Op(
            kind="update",
            source_id="g",
            target_id=g.target_id,
            data={"displayName": "g", "members": ids},
            previous={"displayName": "g", "members": ids[:1]},
        )
        server.drop_on_update = frozenset()
        server.normalise = lambda r: {**r, "members": r.get("members", [])[:1]}
        (u,) = await target.apply("Group", [update])
        assert not u.ok and u.error == "the server ignored `members` (1 of 2 values)", u.error
    finally:
        await target.aclose()


async def test_members_a_server_takes_only_in_an_update_are_written_so() -> None:
    server = WildScim(drop_on_create=frozenset({"members"}))
    target = ScimTarget(server.client())
    try:
        ids = [str(r.target_id) for r in await target.apply("User", [user("a"), user("b")])]
        server.seen.clear()
        (g,) = await target.apply("Group", [group("g", ids)])
        assert g.ok, g
        (stored,) = server.resources("Groups")
        assert {m["value"] for m in stored["members"]} == set(ids)
        assert [s.split(" ")[0] for s in server.seen] == ["POST", "GET", "PATCH"]
    finally:
        await target.aclose()


async def test_answers_a_server_normalised_are_not_taken_for_ignored_attributes() -> None:
    def normalise(resource: dict[str, Any]) -> dict[str, Any]:
        out = {k.lower(): v for k, v in resource.items()}  # attribute names in another case
        if "username" in out:
            out["username"] = out["username"].upper()
        if "emails" in out:
            out["emails"] = [{**e, "primary": True} for e in out["emails"]]
        if "members" in out:  # reordered, ids in another case
            out["members"] = [{"value": m["value"].upper()} for m in reversed(out["members"])]
        out.pop("password", None)  # never returned
        return out

    server = WildScim(normalise=normalise)
    target = ScimTarget(server.client())
    try:
        emails = [{"type": "work", "value": "a@example.org"}]
        (a,) = await target.apply("User", [user("a", emails=emails, password="pw-secret")])
        (b,) = await target.apply("User", [user("b")])
        (g,) = await target.apply("Group", [group("g", [str(a.target_id), str(b.target_id)])])
        assert a.ok and b.ok and g.ok, (a, b, g)
        assert [s.split(" ")[0] for s in server.seen[2:]] == ["POST", "POST", "POST"]
    finally:
        await target.aclose()


async def test_attributes_left_out_of_an_answer_are_read_back_before_judging() -> None:
    server = WildScim(omit_in_answers=frozenset({"members"}))
    target = ScimTarget(server.client())
    try:
        ids = [str(r.target_id) for r in await target.apply("User", [user("a")])]
        server.seen.clear()
        (g,) = await target.apply("Group", [group("g", ids)])
        assert g.ok and [s.split(" ")[0] for s in server.seen] == ["POST", "GET"]
        (h,) = await target.apply("Group", [group("h", ids)])  # known: not read back again
        assert h.ok and [s.split(" ")[0] for s in server.seen] == ["POST", "GET", "POST"]
    finally:
        await target.aclose()


def test_ignored_attributes_compares_names_case_insensitively_and_members_as_sets() -> None:
    from sluiced.plugins.scim.resources import ignored_attributes

    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    sent = {
        "schemas": ["x"],
        "userName": "Ada",
        "name": {"givenName": "Ada", "familyName": "L"},
        enterprise: {"department": "R&D"},
        "members": [{"value": "1"}, {"value": "2"}],
        "active": False,
        "title": "",
        "password": "secret",
    }
    answered = {
        "id": "u1",
        "USERNAME": "ada",
        "Name": {"givenName": "Ada", "familyName": None},
        enterprise.upper(): {},
        "members": [{"value": "2"}, {"value": "3"}],
        "active": False,
    }
    assert ignored_attributes(sent, answered) == {
        "name.familyName": "",
        enterprise: "",
        "members": "1 of 2 values",
    }
    assert ignored_attributes(sent, {**answered, "members": [{"value": "1"}]}) == {
        "name.familyName": "",
        enterprise: "",
        "members": "1 of 2 values",
    }
