"""The LDAP source against a real slapd (tests/slapd.py): paged full reads through a
size-limited account, record data, DN values resolved to source ids, and incremental
reads by syncrepl (with and without a session log) and by timestamps."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
import trio

from sluiced.connectors import ConnectorContext, Gone, Malformed, Page, Record
from sluiced.tables import Problems, TableReader

from .slapd import SERVICE_PASSWORD, Slapd, person, skip_reason

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

JPEG = bytes(range(256)) * 4


def open_source(server: Slapd, tmp_path: Path, **options: Any) -> Any:
    from sluiced.plugins.ldap import LdapConnector
    from sluiced.plugins.ldap.source import LdapSource

    (tmp_path / "ldap-password").write_text(SERVICE_PASSWORD)
    user = {"base": server.dn("ou=people"), "filter": "(objectClass=inetOrgPerson)"}
    group = {"base": server.dn("ou=groups"), "filter": "(objectClass=groupOfNames)"}
    user.update(options.pop("user", {}))
    table = {
        "url": server.url,
        "bind_dn": server.service_dn,
        "password_file": "ldap-password",
        "entities": {"user": user, "group": group},
        **options,
    }
    factory = LdapConnector()
    problems = Problems("test.toml")
    parsed = factory.parse_settings(
        TableReader(table, path="integrations.t.source", problems=problems, base_dir=tmp_path)
    )
    problems.raise_if_any()
    source = factory.open_source(
        parsed, ConnectorContext(integration_id="t", state_dir=tmp_path / "state")
    )
    assert isinstance(source, LdapSource)
    return source


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Slapd]:
    s = Slapd(tmp_path).start()
    try:
        yield s
    finally:
        s.stop()


async def read(source: Any, entity: str = "user", **kw: Any) -> list[Page]:
    kw.setdefault("since", None)
    kw.setdefault("cursor", None)
    kw.setdefault("page_size", 100)
    with trio.fail_after(60):
        return [page async for page in source.read(entity, **kw)]


def items(pages: Sequence[Page]) -> list[Any]:
    return [i for p in pages for i in p.items]


def by_uid(pages: Sequence[Page]) -> dict[str, Record]:
    return {i.data["uid"][0]: i for i in items(pages) if isinstance(i, Record)}


def uuid_of(server: Slapd, dn: str) -> str:
    return server.search(dn, attrs=["entryUUID"])[dn]["entryUUID"][0]


def group(cn: str, *members: str) -> tuple[str, dict[str, Any]]:
    return f"cn={cn},ou=groups,dc=example,dc=org", {
        "objectClass": ["groupOfNames"],
        "cn": cn,
        "member": list(members),
    }


async def test_a_full_read_through_a_size_limited_account_reads_every_entry(
    server: Slapd, tmp_path: Path
) -> None:
    server.add_many(person(f"p{n:04d}") for n in range(1200))
    source = open_source(server, tmp_path, page_size=500)
    try:
        pages = await read(source, page_size=300)
        got = items(pages)
        assert all(p.exhaustive for p in pages) and all(len(p.items) <= 300 for p in pages)
        assert all(isinstance(i, Record) for i in got)
        assert len({i.id for i in got}) == 1200
    finally:
        await source.aclose()


async def test_records_hold_the_dn_lists_base64_binaries_and_member_ids(
    server: Slapd, tmp_path: Path
) -> None:
    ada_dn, ada = person("ada", mail=["ada@example.org", "a@example.org"], jpegPhoto=JPEG)
    bob_dn, bob = person("bob", displayName="Bob", manager=ada_dn)
    server.add_many([(ada_dn, ada), (bob_dn, bob)])
    ghost = "uid=ghost,ou=people,dc=example,dc=org"
    far = "uid=far,dc=elsewhere,dc=net"  # outside what the server holds
    server.add_many([group("staff", ada_dn, bob_dn.upper().replace("DC=", "dc="), ghost, far)])
    source = open_source(server, tmp_path)
    try:
        users = by_uid(await read(source))
        a, b = users["ada"], users["bob"]
        assert a.data["dn"] == ada_dn and a.id == uuid_of(server, ada_dn)
        assert sorted(a.data["mail"]) == ["a@example.org", "ada@example.org"]
        assert base64.b64decode(a.data["jpegPhoto"][0]) == JPEG
        assert b.data["displayName"] == "Bob"  # single-valued: a string
        assert b.data["manager"] == [a.id]
        (staff,) = [i for i in items(await read(source, "group")) if isinstance(i, Record)]
        assert sorted(staff.data["member"]) == sorted([a.id, b.id, ghost, far])
    finally:
        await source.aclose()


async def test_a_renamed_entry_keeps_its_id_and_its_groups_name_it_by_id(
    server: Slapd, tmp_path: Path
) -> None:
    ada_dn, ada = person("ada")
    server.add_many([(ada_dn, ada), group("staff", ada_dn)])
    before = uuid_of(server, ada_dn)
    server.rename(ada_dn, "uid=lovelace")
    source = open_source(server, tmp_path)
    try:
        (record,) = [i for i in items(await read(source)) if isinstance(i, Record)]
        assert record.id == before
        assert record.data["dn"] == "uid=lovelace,ou=people,dc=example,dc=org"
        # The group still names the old DN (no refint): the source looks the DN up.
        (staff,) = items(await read(source, "group"))
        assert staff.data["member"] == [ada_dn]
    finally:
        await source.aclose()
    server.modify(group("staff")[0], {"member": "uid=lovelace,ou=people,dc=example,dc=org"})
    source = open_source(server, tmp_path)
    try:
        (staff,) = items(await read(source, "group"))
        assert staff.data["member"] == [before]  # resolved without reading users first
    finally:
        await source.aclose()


async def test_an_entry_without_its_id_attribute_is_malformed(
    server: Slapd, tmp_path: Path
) -> None:
    server.add_many([person("ada", employeeNumber="1"), person("bob")])
    source = open_source(server, tmp_path, user={"id_attribute": "employeeNumber"})
    try:
        got = items(await read(source))
        assert [i.id for i in got if isinstance(i, Record)] == ["1"]
        (bad,) = [i for i in got if isinstance(i, Malformed)]
        assert bad.key == "uid=bob,ou=people,dc=example,dc=org" and "employeeNumber" in bad.reason
    finally:
        await source.aclose()


async def test_syncrepl_reads_what_changed_and_what_was_deleted_since_the_cookie(
    server: Slapd, tmp_path: Path
) -> None:
    server.add_many(person(f"p{n}") for n in range(5))
    source = open_source(server, tmp_path)
    try:
        assert "syncrepl (RFC 4533)" in await source.validate()
        full = by_uid(await read(source))
        cookie = await source.watermark("user")
        assert cookie is not None and cookie.startswith("rid=000,csn=")
        server.modify(full["p1"].data["dn"], {"displayName": "changed"})
        server.add_many([person("new")])
        server.delete(full["p3"].data["dn"])
        pages = await read(source, since=cookie)
        got = items(pages)
        assert not any(p.exhaustive for p in pages)
        records = {i.data["uid"][0]: i for i in got if isinstance(i, Record)}
        assert sorted(records) == ["new", "p1"]
        assert records["p1"].data["displayName"] == "changed"
        assert records["p1"].id == full["p1"].id
        assert [i.id for i in got if isinstance(i, Gone)] == [full["p3"].id]
        # Nothing changed since the next watermark: nothing to read.
        later = await source.watermark("user")
        assert items(await read(source, since=later)) == []
    finally:
        await source.aclose()


async def test_syncrepl_without_a_session_log_reads_the_entity_whole(tmp_path: Path) -> None:
    server = Slapd(tmp_path, sessionlog=0).start()
    try:
        server.add_many(person(f"p{n}") for n in range(5))
        source = open_source(server, tmp_path)
        try:
            full = by_uid(await read(source))
            cookie = await source.watermark("user")
            server.modify(full["p1"].data["dn"], {"displayName": "changed"})
            server.delete(full["p3"].data["dn"])
            pages = await read(source, since=cookie, page_size=2)
            assert pages and all(p.exhaustive for p in pages)
            got = items(pages)
            assert not any(isinstance(i, Gone) for i in got)
            assert sorted(by_uid(pages)) == ["p0", "p1", "p2", "p4"]
            assert by_uid(pages)["p1"].data["displayName"] == "changed"
        finally:
            await source.aclose()
    finally:
        server.stop()


async def test_syncrepl_cut_short_by_a_size_limit_reads_the_entity_whole(
    server: Slapd, tmp_path: Path
) -> None:
    source = open_source(server, tmp_path)
    try:
        cookie = await source.watermark("user")
        server.add_many(person(f"p{n:04d}") for n in range(600))
        pages = await read(source, since=cookie, page_size=250)
        assert pages[-1].exhaustive
        assert len({i.id for i in items(pages) if isinstance(i, Record)}) == 600
    finally:
        await source.aclose()


async def test_timestamps_without_syncprov_read_changes_within_the_overlap(
    tmp_path: Path,
) -> None:
    server = Slapd(tmp_path, syncprov=False).start()
    try:
        server.add_many(person(f"p{n}") for n in range(4))
        source = open_source(server, tmp_path, overlap="0s")
        try:
            found = await source.validate()
            assert "timestamps (modifyTimestamp, deletions on full passes)" in found
            assert "OpenLDAP" in found
            full = by_uid(await read(source))
            mark = await source.watermark("user")
            assert mark is not None and len(mark) == 15 and mark.endswith("Z")
            await trio.sleep(1.1)  # timestamps have whole seconds
            server.modify(full["p1"].data["dn"], {"displayName": "changed"})
            server.add_many([person("new")])
            server.delete(full["p3"].data["dn"])
            pages = await read(source, since=mark)
            assert not any(p.exhaustive for p in pages)
            changed = by_uid(pages)
            # The entries stamped in the watermark's second come again (>=), no more.
            assert {"p1", "new"} <= set(changed) <= {"p0", "p1", "p2", "new"}
            assert not any(isinstance(i, Gone) for i in items(pages))
            # Deletions show on the next full pass: the entry is not there.
            assert "p3" not in by_uid(await read(source))
        finally:
            await source.aclose()
        source = open_source(server, tmp_path)  # the default overlap: 5 minutes
        try:
            assert len(by_uid(await read(source, since=mark))) == 4
        finally:
            await source.aclose()
    finally:
        server.stop()


async def test_incremental_mode_can_be_forced_and_auto_needs_entry_uuid(
    server: Slapd, tmp_path: Path
) -> None:
    source = open_source(server, tmp_path, incremental="timestamps")
    try:
        assert "user: incremental by timestamps" in await source.validate()
        assert not (await source.watermark("user") or "").startswith("rid=")
    finally:
        await source.aclose()
    source = open_source(server, tmp_path, user={"id_attribute": "uid"})
    try:
        found = await source.validate()
        assert "user: incremental by timestamps" in found
        assert "group: incremental by syncrepl (RFC 4533)" in found
        assert "paged results" in found
    finally:
        await source.aclose()


async def test_a_since_of_the_other_mode_reads_everything(server: Slapd, tmp_path: Path) -> None:
    server.add_many(person(f"p{n}") for n in range(3))
    source = open_source(server, tmp_path)
    try:
        pages = await read(source, since="20250101000000Z")
        assert all(p.exhaustive for p in pages) and len(by_uid(pages)) == 3
    finally:
        await source.aclose()


async def test_get_many_escapes_ids_so_no_filter_can_be_injected(
    server: Slapd, tmp_path: Path
) -> None:
    server.add_many(person(f"p{n}") for n in range(3))
    source = open_source(server, tmp_path, user={"id_attribute": "uid"})
    try:
        with trio.fail_after(30):
            assert await source.get_many("user", ["*)(uid=*", "*", "p1)(|(uid=*"]) == {}
            got = await source.get_many("user", ["p1", "P2", "nobody"])
        assert sorted(got) == ["P2", "p1"]
        assert all(isinstance(r, Record) for r in got.values())
    finally:
        await source.aclose()
    source = open_source(server, tmp_path)
    try:
        with trio.fail_after(30):
            assert await source.get_many("user", ["*)(entryUUID=*", "*"]) == {}
    finally:
        await source.aclose()


async def test_validate_names_a_base_that_does_not_exist(server: Slapd, tmp_path: Path) -> None:
    from sluiced.errors import SyncError

    source = open_source(server, tmp_path, user={"base": "ou=nowhere,dc=example,dc=org"})
    try:
        with pytest.raises(SyncError, match="ou=nowhere"):
            await source.validate()
    finally:
        await source.aclose()


def test_generalized_times_with_fractions_and_offsets_are_read_as_utc() -> None:
    from datetime import UTC, datetime

    from sluiced.plugins.ldap.timestamps import generalized_time, parse_generalized_time

    noon = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert parse_generalized_time("20250601120000Z") == noon
    assert parse_generalized_time("20250601120000.0Z") == noon  # Active Directory
    assert parse_generalized_time("20250601140000+0200") == noon
    assert generalized_time(noon) == "20250601120000Z"
    with pytest.raises(ValueError):
        parse_generalized_time("yesterday")


async def test_a_read_resumed_on_a_new_connection_continues_after_its_cursor(
    server: Slapd, tmp_path: Path
) -> None:
    server.add_many(person(f"p{n}") for n in range(7))
    source = open_source(server, tmp_path, page_size=3)
    try:
        first = [i for i in items(await read(source, page_size=3)) if isinstance(i, Record)]
        # Left after its first page, then read again from there on the same connection.
        pages = source.read("user", since=None, cursor=None, page_size=3)
        async with aclosing(pages):
            page = await pages.__anext__()
        assert "cookie" in page.items[-1].cursor
        rest = items(await read(source, cursor=page.items[-1].cursor, page_size=3))
        assert [r.id for r in rest] == [r.id for r in first[3:]]
    finally:
        await source.aclose()
    server.stop()
    server.start()  # the paging cookies of the old connection mean nothing now
    for k in (2, 3):  # the last item of a page (with a cookie), one inside a page
        source = open_source(server, tmp_path, page_size=3)
        try:
            rest = items(await read(source, cursor=first[k].cursor, page_size=3))
            assert [r.id for r in rest] == [r.id for r in first[k + 1 :]]
        finally:
            await source.aclose()


async def test_a_cursor_whose_place_changed_reads_everything_again(
    server: Slapd, tmp_path: Path
) -> None:
    server.add_many(person(f"p{n}") for n in range(5))
    source = open_source(server, tmp_path)
    try:
        first = [i for i in items(await read(source, page_size=2)) if isinstance(i, Record)]
        server.delete(first[0].data["dn"])  # what comes before the cursor moved by one
        source2 = open_source(server, tmp_path)
        try:
            again = by_uid(await read(source2, cursor=first[2].cursor, page_size=2))
        finally:
            await source2.aclose()
        assert sorted(again) == ["p1", "p2", "p3", "p4"]
    finally:
        await source.aclose()


async def test_many_member_dns_are_looked_up_when_their_entries_were_not_read(
    server: Slapd, tmp_path: Path
) -> None:
    people = [
        person(f"p{n:04d}") for n in range(5000)
    ]  # slapd drops a client with thousands pending
    server.add_many(people)
    server.add_many([group("all", *(dn for dn, _ in people))])
    ids = {dn: attrs["entryUUID"][0] for dn, attrs in server.people(["entryUUID"]).items()}
    source = open_source(server, tmp_path)
    try:
        (everyone,) = items(await read(source, "group"))  # no user read first
        assert sorted(everyone.data["member"]) == sorted(ids.values())
    finally:
        await source.aclose()


async def test_forced_syncrepl_with_another_id_reads_the_entity_whole_on_deletions(
    server: Slapd, tmp_path: Path
) -> None:
    server.add_many(person(f"p{n}") for n in range(3))
    source = open_source(server, tmp_path, incremental="syncrepl", user={"id_attribute": "uid"})
    try:
        cookie = await source.watermark("user")
        server.modify(server.dn("uid=p0,ou=people"), {"displayName": "changed"})
        assert sorted(by_uid(await read(source, since=cookie))) == ["p0"]
        server.delete(server.dn("uid=p1,ou=people"))
        pages = await read(source, since=cookie)
        assert all(p.exhaustive for p in pages) and sorted(by_uid(pages)) == ["p0", "p2"]
        assert not any(isinstance(i, Gone) for i in items(pages))
    finally:
        await source.aclose()


async def test_a_whole_read_after_a_present_phase_resumes_from_its_cursor(
    tmp_path: Path,
) -> None:
    server = Slapd(tmp_path, sessionlog=0).start()
    try:
        server.add_many(person(f"p{n}") for n in range(5))
        source = open_source(server, tmp_path)
        try:
            cookie = await source.watermark("user")
            server.modify(server.dn("uid=p1,ou=people"), {"displayName": "changed"})
            whole = items(await read(source, since=cookie, page_size=2))
            rest = await read(source, since=cookie, cursor=whole[1].cursor, page_size=2)
            assert all(p.exhaustive for p in rest)
            assert [i.id for i in items(rest)] == [i.id for i in whole[2:]]
        finally:
            await source.aclose()
    finally:
        server.stop()


async def test_a_read_whose_connection_was_opened_again_between_pages_is_transient(
    server: Slapd, tmp_path: Path
) -> None:
    from sluiced.errors import TransientError

    server.add_many(person(f"p{n}") for n in range(7))
    source = open_source(server, tmp_path, page_size=3)
    try:
        pages = source.read("user", since=None, cursor=None, page_size=3)
        async with aclosing(pages):
            first = await pages.__anext__()
            server.stop()
            server.start()
            with pytest.raises(TransientError):  # the call that finds the server gone
                await source.connection.root_dse()
            await source.connection.root_dse()  # a new connection
            with pytest.raises(TransientError, match="cookie"):
                await pages.__anext__()
        rest = items(await read(source, cursor=first.items[-1].cursor, page_size=3))
        assert len(rest) == 4
    finally:
        await source.aclose()


async def test_validate_names_a_filter_the_server_refuses(server: Slapd, tmp_path: Path) -> None:
    from sluiced.errors import SyncError

    source = open_source(server, tmp_path, user={"filter": "(uid>ada)"})
    try:
        with pytest.raises(SyncError, match=r"entities\.user: the server refused the filter"):
            await source.validate()
    finally:
        await source.aclose()


async def test_get_many_names_an_entry_it_cannot_read_malformed_never_gone(
    server: Slapd, tmp_path: Path
) -> None:
    # An escrowed object read again by id: left out, the engine would take it for gone.
    server.add_many([person("p1"), person("p2")])
    server.modify(server.dn("uid=p1,ou=people"), {"uid": ["p1", "first"]})
    source = open_source(server, tmp_path, user={"id_attribute": "uid"})
    try:
        with trio.fail_after(30):
            got = await source.get_many("user", ["p1", "FIRST", "p2", "nobody"])
        assert sorted(got) == ["FIRST", "p1", "p2"]
        assert isinstance(got["p2"], Record)
        for key in ("p1", "FIRST"):
            bad = got[key]
            assert isinstance(bad, Malformed) and "2 values of uid" in bad.reason
    finally:
        await source.aclose()


async def test_a_member_dn_names_the_entry_that_has_it_when_the_group_is_read(
    server: Slapd, tmp_path: Path
) -> None:
    ada_dn, ada = person("ada")
    server.add_many([(ada_dn, ada), person("bob")])
    source = open_source(server, tmp_path)
    try:
        users = by_uid(await read(source))
        # After the users were read, in the same job: ada renamed, another ada made,
        # and the group names the new one (its DN also names no entry, then one).
        server.rename(ada_dn, "uid=lovelace")
        server.add_many([person("ada")])
        cleo_dn = server.dn("uid=cleo,ou=people")
        server.add_many([group("staff", ada_dn, cleo_dn)])
        (staff,) = items(await read(source, "group"))
        assert staff.data["member"] == [uuid_of(server, ada_dn), cleo_dn]
        assert uuid_of(server, ada_dn) != users["ada"].id
        server.add_many([person("cleo")])
        server.modify(group("staff")[0], {"description": "again"})
        (staff,) = items(await read(source, "group"))
        assert staff.data["member"] == [uuid_of(server, ada_dn), uuid_of(server, cleo_dn)]
    finally:
        await source.aclose()


async def test_a_cookie_newer_than_the_server_says_a_full_sync_is_needed(
    server: Slapd, tmp_path: Path
) -> None:
    from sluiced.errors import SyncError, TransientError

    server.add_many(person(f"p{n}") for n in range(3))
    source = open_source(server, tmp_path)
    try:
        # The server was restored from a backup older than the last pass, or another
        # server with an older state answers: what changed since then cannot be told.
        newer = "rid=000,csn=20991231000000.000000Z#000000#000#000000"
        with pytest.raises(SyncError, match=r"older than the stored cookie.*full sync") as err:
            await read(source, since=newer)
        assert not isinstance(err.value, TransientError)
        assert len(by_uid(await read(source))) == 3  # the connection is still good
    finally:
        await source.aclose()


async def test_a_refresh_reporting_many_deletions_at_once_keeps_to_the_page_size(
    server: Slapd, tmp_path: Path
) -> None:
    server.add_many(person(f"p{n:03d}") for n in range(250))
    source = open_source(server, tmp_path)
    try:
        full = by_uid(await read(source))
        cookie = await source.watermark("user")
        for n in range(240):
            server.delete(server.dn(f"uid=p{n:03d},ou=people"))
        pages = await read(source, since=cookie, page_size=100)
        assert all(len(p.items) <= 100 for p in pages), [len(p.items) for p in pages]
        gone = [i.id for i in items(pages) if isinstance(i, Gone)]
        assert sorted(gone) == sorted(full[f"p{n:03d}"].id for n in range(240))
    finally:
        await source.aclose()


async def test_an_incremental_pass_read_whole_after_a_present_phase_deprovisions_the_deleted(
    tmp_path: Path,
) -> None:
    from sluiced.models import JobType

    from .test_engine import Env

    server = Slapd(tmp_path, sessionlog=0).start()  # every refresh: a present phase
    try:
        server.add_many(person(f"p{n}") for n in range(5))
        env = Env()
        env.source = open_source(server, tmp_path)
        await env.run(JobType.FULL)
        assert len(env.target.objects["user"]) == 5
        server.delete(server.dn("uid=p3,ou=people"))
        env.source = open_source(server, tmp_path)
        await env.run(JobType.INCREMENTAL)
        assert len(env.target.objects["user"]) == 4
    finally:
        server.stop()


class GuidSlapd(Slapd):
    """A slapd whose schema has Active Directory's binary ``objectGUID``."""

    def _config(self) -> str:
        guid = (
            "attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID' EQUALITY octetStringMatch"
            " SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )"
        )
        return super()._config().replace("database mdb", f"{guid}\ndatabase mdb", 1)


async def test_get_many_finds_entries_by_a_binary_object_guid(tmp_path: Path) -> None:
    from uuid import UUID

    server = GuidSlapd(tmp_path).start()
    try:
        guids = {
            f"p{n}": UUID(f"0000000{n}-2a3b-4c5d-8e9f-{n:012d}") for n in range(3)
        }  # bytes_le of the first one holds "*" (0x2a): escaped too
        server.add_many(
            person(uid, objectClass=["inetOrgPerson", "extensibleObject"], objectGUID=g.bytes_le)
            for uid, g in guids.items()
        )
        source = open_source(server, tmp_path, user={"id_attribute": "objectGUID"})
        try:
            read_ids = sorted(i.id for i in items(await read(source)))
            assert read_ids == sorted(str(g) for g in guids.values())
            with trio.fail_after(30):
                got = await source.get_many("user", [str(guids["p0"]), str(guids["p2"]).upper()])
            assert sorted(got) == sorted([str(guids["p0"]), str(guids["p2"]).upper()])
            assert all(isinstance(r, Record) for r in got.values())
            assert await source.get_many("user", ["not-a-guid"]) == {}
        finally:
            await source.aclose()
    finally:
        server.stop()


async def test_deletions_a_refresh_names_before_a_size_limit_cuts_it_are_read(
    server: Slapd, tmp_path: Path
) -> None:
    server.add_many(person(f"old{n:03d}") for n in range(100))
    source = open_source(server, tmp_path)
    try:
        old = by_uid(await read(source))
        cookie = await source.watermark("user")
        for n in range(100):
            server.delete(server.dn(f"uid=old{n:03d},ou=people"))
        server.add_many(person(f"new{n:03d}") for n in range(600))  # past the size limit
        pages = await read(source, since=cookie, page_size=1000)
        assert all(p.exhaustive for p in pages)  # read whole: the refresh was cut short
        gone = [i.id for i in items(pages) if isinstance(i, Gone)]
        assert sorted(gone) == sorted(r.id for r in old.values())
        assert len(by_uid(pages)) == 600
    finally:
        await source.aclose()


async def test_entries_behind_a_referral_make_the_read_incomplete_not_shorter(
    server: Slapd, tmp_path: Path
) -> None:
    # Part of ou=people is held by another server: the search returns a continuation
    # reference there, which is not followed. The read must not look complete (a full
    # pass would take the entries behind it for deleted).
    server.add_many([person("ada"), person("bob")])
    remote = "ldap://other.example.org/ou=remote,ou=people,dc=example,dc=org"
    server.add(
        server.dn("ou=remote,ou=people"),
        {"objectClass": ["referral", "extensibleObject"], "ou": "remote", "ref": remote},
    )
    source = open_source(server, tmp_path)
    try:
        got = items(await read(source))
        assert sorted(i.data["uid"][0] for i in got if isinstance(i, Record)) == ["ada", "bob"]
        (bad,) = [i for i in got if isinstance(i, Malformed)]
        assert bad.key.startswith("ldap://other.example.org/") and "not read" in bad.reason
    finally:
        await source.aclose()
