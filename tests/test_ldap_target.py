"""The LDAP target against a real slapd (tests/slapd.py): adds, modifies of only what
changed, renames by modrdn (and the groups that list a renamed entry), members written
as DNs, matching with escaped filters, adoption, disabling both ways, one object's
refusal escrowed while the batch goes on, and the errors that stop a batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from sluiced.connectors import ConnectorContext, Op, OpResult
from sluiced.errors import CredentialsError, TransientError
from sluiced.tables import Problems, TableReader

from .conftest import running_slapd
from .slapd import SERVICE_PASSWORD, Slapd, person, skip_reason

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

if skip_reason() is None:
    import ldap

    from sluiced.plugins.ldap import LdapConnector
    from sluiced.plugins.ldap.directory import PostRead
    from sluiced.plugins.ldap.schema import AttributeSchema
    from sluiced.plugins.ldap.settings import EntitySettings
    from sluiced.plugins.ldap.target import LdapTarget
    from sluiced.plugins.ldap.writes import (
        add_entry,
        changed_attributes,
        encoder,
        new_rdn,
        reference_fix,
        references,
    )

PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"
DISABLED = "ou=disabled,dc=example,dc=org"


def users_table(**changes: Any) -> dict[str, Any]:
    """The user entity's table; a change to None leaves the key out."""
    table = {
        "base": PEOPLE,
        "filter": "(objectClass=inetOrgPerson)",
        "rdn_attribute": "uid",
        "object_classes": ["inetOrgPerson"],
        "disable": {"attribute": "employeeType", "value": "disabled"},
        **changes,
    }
    return {k: v for k, v in table.items() if v is not None}


def groups_table() -> dict[str, Any]:
    return {
        "base": GROUPS,
        "filter": "(objectClass=groupOfNames)",
        "rdn_attribute": "cn",
        "object_classes": ["groupOfNames"],
    }


def open_target(
    server: Slapd, tmp_path: Path, *, password: str = SERVICE_PASSWORD, **users: Any
) -> LdapTarget:
    (tmp_path / "ldap-password").write_text(password + "\n")
    table = {
        "url": server.url,
        "bind_dn": server.service_dn,
        "password_file": "ldap-password",
        "timeout": "5s",
        "page_size": 50,
        "entities": {"user": users_table(**users), "group": groups_table()},
    }
    problems = Problems("config.toml")
    reader = TableReader(table, path="integrations.i.target", problems=problems, base_dir=tmp_path)
    settings = LdapConnector().parse_settings(reader)
    problems.raise_if_any()
    target = LdapConnector().open_target(
        settings, ConnectorContext(integration_id="i", state_dir=tmp_path / "state")
    )
    assert isinstance(target, LdapTarget)
    return target


def user(uid: str, **extra: Any) -> dict[str, Any]:
    return {"uid": uid, "cn": uid.title(), "sn": "Tester", "mail": f"{uid}@example.org", **extra}


async def apply(target: LdapTarget, entity_type: str, *ops: Op) -> list[OpResult]:
    with trio.fail_after(30):
        results = list(await target.apply(entity_type, ops))
    assert len(results) == len(ops)
    return results


async def create(target: LdapTarget, entity_type: str, sid: str, data: dict[str, Any]) -> str:
    (result,) = await apply(target, entity_type, Op(kind="create", source_id=sid, data=data))
    assert result.ok and result.target_id, result
    return result.target_id


class Recording:
    """A python-ldap connection that notes every modify sent through it."""

    def __init__(self, conn: Any, sent: list[tuple[str, list[Any]]]) -> None:
        self.conn, self.sent = conn, sent

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.conn, name)
        if not name.startswith("modify"):
            return method

        def modify(dn: str, mods: list[Any], *args: Any, **kwargs: Any) -> Any:
            self.sent.append((dn, list(mods)))
            return method(dn, mods, *args, **kwargs)

        return modify


def record_modifies(target: LdapTarget) -> list[tuple[str, list[Any]]]:
    """Every modify the target sends from now on: (dn, modlist)."""
    sent: list[tuple[str, list[Any]]] = []
    call = target.conn.call

    async def recording(fn: Any) -> Any:
        return await call(lambda conn: fn(Recording(conn, sent)))

    target.conn.call = recording  # type: ignore[method-assign]
    return sent


def uuid_of(server: Slapd, dn: str) -> str:
    return server.search(dn, attrs=["entryUUID"])[dn]["entryUUID"][0]


def test_entries_rdns_and_changes_are_decided_without_the_server() -> None:
    entity = EntitySettings(
        name="user",
        base=PEOPLE,
        scope="sub",
        filter="(objectClass=*)",
        id_attribute="entryUUID",
        dn_attributes=("member",),
        rdn_attribute="uid",
        object_classes=("inetOrgPerson",),
    )
    schema = AttributeSchema()
    refs = references(entity, schema)
    encode = encoder(schema, refs, {"t1": f"uid=ada,{PEOPLE}"})
    data = {"dn": "x", "uid": "a,b+c", "objectClass": ["extensibleObject"], "cn": None, "sn": "S"}
    dn, attrs = add_entry(entity, data, encode)
    assert dn == f"uid=a\\,b\\+c,{PEOPLE}"
    assert attrs == [
        ("objectClass", [b"inetOrgPerson", b"extensibleObject"]),
        ("uid", [b"a,b+c"]),
        ("sn", [b"S"]),
    ]
    assert new_rdn(entity, f"uid=ada,{PEOPLE}", {"uid": "ADA"}) is None
    assert new_rdn(entity, f"uid=ada,{PEOPLE}", {"uid": "a=b"}) == "uid=a\\=b"
    previous = {"uid": "x", "member": ["t1", "t2"], "mail": ["a", "b"], "sn": "S"}
    data = {"uid": "x", "member": [{"value": "t2"}, "t1"], "mail": ["b", "a"], "sn": "T"}
    assert changed_attributes(data, previous, list(data), schema, refs) == ["sn"]
    group = {"member": [b"UID=Ada, ou=People,dc=example,dc=org", b"uid=bob,ou=people"]}
    assert reference_fix(group, refs, f"uid=ada,{PEOPLE}", f"uid=ada2,{PEOPLE}") == [
        (ldap.MOD_DELETE, "member", [b"UID=Ada, ou=People,dc=example,dc=org"]),
        (ldap.MOD_ADD, "member", [f"uid=ada2,{PEOPLE}".encode()]),
    ]


def test_the_post_read_control_is_decoded_as_pyasn1_decodes_it() -> None:
    from pyasn1.codec.ber import encoder
    from pyasn1_modules import rfc2251

    entry = rfc2251.SearchResultEntry()
    entry.setComponentByPosition(0, rfc2251.LDAPDN(f"uid=ada,{PEOPLE}"))
    attributes = entry.setComponentByPosition(1).getComponentByPosition(1)
    values = {"entryUUID": [b"8f1c7c2a-0000"], "description": [b"x" * 300, b"y" * 130, b""]}
    for n, (name, vs) in enumerate(values.items()):
        attribute = attributes.setComponentByPosition(n).getComponentByPosition(n)
        attribute.setComponentByPosition(0, name)
        held = attribute.setComponentByPosition(1).getComponentByPosition(1)
        for m, v in enumerate(vs):
            held.setComponentByPosition(m, v)
    encoded = encoder.encode(entry)
    ours = PostRead()
    ours.decodeControlValue(encoded)
    assert ours.entry == values
    ours.decodeControlValue(encoded[:-5])  # cut short: no entry, no exception
    assert ours.entry is None


async def test_create_update_only_what_changed_and_delete(slapd: Slapd, tmp_path: Path) -> None:
    target = open_target(slapd, tmp_path)
    try:
        data = user("ada", telephoneNumber=["+1 555 0100", "+1 555 0101"], title="Engineer")
        tid = await create(target, "user", "s1", data)
        dn = f"uid=ada,{PEOPLE}"
        entry = slapd.people()[dn]
        assert uuid_of(slapd, dn) == tid
        assert sorted(entry["objectClass"]) == ["inetOrgPerson"]
        assert sorted(entry["telephoneNumber"]) == ["+1 555 0100", "+1 555 0101"]
        assert entry["mail"] == ["ada@example.org"] and "dn" not in entry

        sent = record_modifies(target)
        changed = {**data, "mail": "ada@lovelace.org", "title": None}
        update = Op(kind="update", source_id="s1", target_id=tid, data=changed, previous=data)
        assert [r.ok for r in await apply(target, "user", update)] == [True]
        assert sent == [
            (
                dn,
                [
                    (ldap.MOD_REPLACE, "mail", [b"ada@lovelace.org"]),
                    (ldap.MOD_REPLACE, "title", None),
                ],
            )
        ]
        entry = slapd.people()[dn]
        assert entry["mail"] == ["ada@lovelace.org"] and "title" not in entry
        # Replayed as it was (the title is gone already): nothing more changes.
        assert [r.ok for r in await apply(target, "user", update)] == [True]
        assert slapd.people()[dn] == entry

        # Without the last export: the entry is read and compared.
        sent.clear()
        unknown = {**changed, "sn": "Lovelace"}
        update = Op(kind="update", source_id="s1", target_id=tid, data=unknown)
        assert [r.ok for r in await apply(target, "user", update)] == [True]
        assert sent == [(dn, [(ldap.MOD_REPLACE, "sn", [b"Lovelace"])])]
        sent.clear()
        assert [r.ok for r in await apply(target, "user", update)] == [True]
        assert sent == []  # nothing differs: nothing is sent

        delete = Op(kind="delete", source_id="s1", target_id=tid)
        assert [r.ok for r in await apply(target, "user", delete, delete)] == [True, True]
        assert dn not in slapd.people()
    finally:
        await target.aclose()


@pytest.mark.parametrize("refint", [False, True])
async def test_a_changed_rdn_value_is_a_modrdn_and_groups_follow_it(
    tmp_path: Path, refint: bool
) -> None:
    with running_slapd(tmp_path, refint=refint) as server:
        await rename_with_groups(server, tmp_path)


async def rename_with_groups(server: Slapd, tmp_path: Path) -> None:
    target = open_target(server, tmp_path)
    try:
        ada, bob = user("ada"), user("bob")
        tids = [await create(target, "user", "a", ada), await create(target, "user", "b", bob)]
        group = {"cn": "staff", "member": tids}
        await create(target, "group", "g", group)
        members = server.groups()[f"cn=staff,{GROUPS}"]["member"]
        assert sorted(members) == [f"uid=ada,{PEOPLE}", f"uid=bob,{PEOPLE}"]

        renamed = {**ada, "uid": "ada.lovelace", "cn": "Ada Lovelace"}
        update = Op(kind="update", source_id="a", target_id=tids[0], data=renamed, previous=ada)
        assert [r.ok for r in await apply(target, "user", update)] == [True]
        people = server.people()
        new_dn = f"uid=ada.lovelace,{PEOPLE}"
        assert f"uid=ada,{PEOPLE}" not in people and people[new_dn]["uid"] == ["ada.lovelace"]
        assert uuid_of(server, new_dn) == tids[0]  # the same entry: not deleted and added
        members = server.groups()[f"cn=staff,{GROUPS}"]["member"]
        assert sorted(members) == [new_dn, f"uid=bob,{PEOPLE}"]

        # A group written after the rename names the new DN (the job remembers it).
        update = Op(
            kind="update",
            source_id="g",
            target_id=uuid_of(server, f"cn=staff,{GROUPS}"),
            data={"cn": "staff", "member": [tids[0]]},
            previous=group,
        )
        assert [r.ok for r in await apply(target, "group", update)] == [True]
        assert server.groups()[f"cn=staff,{GROUPS}"]["member"] == [new_dn]
    finally:
        await target.aclose()


async def test_a_group_fixed_by_the_server_between_the_read_and_the_fix_is_left_fixed(
    slapd: Slapd, tmp_path: Path
) -> None:
    """The server's referential integrity updates the groups after the rename's answer:
    the target's own fix may find a group changed since it read it; its refused modify
    is made again from the group as it is now (here: nothing left to do)."""
    target = open_target(slapd, tmp_path)
    try:
        ada, bob = user("ada"), user("bob")
        tids = [await create(target, "user", "a", ada), await create(target, "user", "b", bob)]
        await create(target, "group", "g", {"cn": "staff", "member": tids})
        new_dn, group_dn = f"uid=ada.lovelace,{PEOPLE}", f"cn=staff,{GROUPS}"
        directory = target.directory
        modify = directory.modify
        raced: list[str] = []

        async def raced_by_the_server(dn: str, mods: Any) -> Any:
            if dn == group_dn and not raced:  # as refint would, just before our modify
                raced.append(dn)
                slapd.modify(dn, {"member": [new_dn, f"uid=bob,{PEOPLE}"]})
            return await modify(dn, mods)

        directory.modify = raced_by_the_server  # type: ignore[method-assign]
        renamed = {**ada, "uid": "ada.lovelace", "cn": "Ada Lovelace"}
        update = Op(kind="update", source_id="a", target_id=tids[0], data=renamed, previous=ada)
        assert [r.ok for r in await apply(target, "user", update)] == [True]
        assert raced == [group_dn]
        members = slapd.groups()[group_dn]["member"]
        assert sorted(members) == [new_dn, f"uid=bob,{PEOPLE}"]
    finally:
        await target.aclose()


async def test_a_rename_whose_group_fix_was_cut_short_is_finished_by_the_replay(
    slapd: Slapd, tmp_path: Path
) -> None:
    target = open_target(slapd, tmp_path)
    try:
        ada = user("ada")
        tid = await create(target, "user", "a", ada)
        await create(target, "group", "g", {"cn": "staff", "member": [tid]})
    finally:
        await target.aclose()
    slapd.rename(f"uid=ada,{PEOPLE}", "uid=ada2")  # the rename done, then a crash
    target = open_target(slapd, tmp_path)  # the next job replays the update
    try:
        renamed = {**ada, "uid": "ada2"}
        update = Op(kind="update", source_id="a", target_id=tid, data=renamed, previous=ada)
        assert [r.ok for r in await apply(target, "user", update)] == [True]
        assert slapd.groups()[f"cn=staff,{GROUPS}"]["member"] == [f"uid=ada2,{PEOPLE}"]
    finally:
        await target.aclose()


async def test_members_are_written_as_the_dns_of_the_linked_entries(
    slapd: Slapd, tmp_path: Path
) -> None:
    target = open_target(slapd, tmp_path)
    try:
        tid = await create(target, "user", "a", user("ada"))
    finally:
        await target.aclose()
    target = open_target(slapd, tmp_path)  # a new job: the DN is looked up by id
    try:
        ok, missing = await apply(
            target,
            "group",
            Op(kind="create", source_id="g1", data={"cn": "one", "member": [tid]}),
            Op(kind="create", source_id="g2", data={"cn": "two", "member": [tid, "no-such-id"]}),
        )
        assert ok.ok and slapd.groups()[f"cn=one,{GROUPS}"]["member"] == [f"uid=ada,{PEOPLE}"]
        assert not missing.ok and missing.error == "member no-such-id not found in the target"
        assert f"cn=two,{GROUPS}" not in slapd.groups()
        # manager (a dn_attribute) and secretary (of the DN syntax) name entries too;
        # a value that is a DN already is written as it is.
        dn = f"cn=one,{GROUPS}"
        bob = user("bob", manager=tid, secretary=[tid, dn])
        await create(target, "user", "b", bob)
        entry = slapd.people()[f"uid=bob,{PEOPLE}"]
        assert entry["manager"] == [f"uid=ada,{PEOPLE}"]
        assert sorted(entry["secretary"]) == sorted([f"uid=ada,{PEOPLE}", dn])
    finally:
        await target.aclose()


async def test_find_escapes_values_and_finds_only_the_exact_value(
    slapd: Slapd, tmp_path: Path
) -> None:
    target = open_target(slapd, tmp_path)
    try:
        tricky = "x*)(uid=*"
        tids = {
            uid: await create(target, "user", uid, user(uid))
            for uid in ("alice", "bob", tricky, "x")
        }
        assert [e["uid"] for e in slapd.people().values()].count([tricky]) == 1
        found = await target.find("user", "uid", [tricky, "*", "nobody"])
        assert {k: list(v) for k, v in found.items()} == {tricky: [tids[tricky]]}
        found = await target.find("user", "mail", ["Alice@Example.org", "x@example.org"])
        assert {k: list(v) for k, v in found.items()} == {
            "Alice@Example.org": [tids["alice"]],
            "x@example.org": [tids["x"]],
        }
        assert await target.count("user") == 4
        assert await target.count("group") == 0
    finally:
        await target.aclose()


async def test_an_entry_already_there_is_adopted(slapd: Slapd, tmp_path: Path) -> None:
    slapd.add(*person("bob", title="Intern"))
    target = open_target(slapd, tmp_path)
    try:
        data = user("bob", title="Engineer")
        (result,) = await apply(target, "user", Op(kind="create", source_id="b", data=data))
        assert result.ok and result.target_id == uuid_of(slapd, f"uid=bob,{PEOPLE}")
        entry = slapd.people()[f"uid=bob,{PEOPLE}"]
        assert entry["title"] == ["Engineer"] and entry["mail"] == ["bob@example.org"]
    finally:
        await target.aclose()


async def test_disable_by_attribute_then_enable(slapd: Slapd, tmp_path: Path) -> None:
    target = open_target(slapd, tmp_path)
    try:
        data = user("ada")
        tid = await create(target, "user", "a", data)
        disable = Op(kind="disable", source_id="a", target_id=tid, previous=data)
        assert [r.ok for r in await apply(target, "user", disable, disable)] == [True, True]
        entry = slapd.people()[f"uid=ada,{PEOPLE}"]
        assert entry["employeeType"] == ["disabled"]
        enable = Op(
            kind="update", source_id="a", target_id=tid, data=data, previous=data, enable=True
        )
        assert [r.ok for r in await apply(target, "user", enable, enable)] == [True, True]
        assert "employeeType" not in slapd.people()[f"uid=ada,{PEOPLE}"]
    finally:
        await target.aclose()


async def test_disable_by_move_then_enable_moves_back(slapd: Slapd, tmp_path: Path) -> None:
    target = open_target(slapd, tmp_path, disable=None, move_to=DISABLED)
    try:
        data = user("ada")
        tid = await create(target, "user", "a", data)
        await create(target, "group", "g", {"cn": "staff", "member": [tid]})
        disable = Op(kind="disable", source_id="a", target_id=tid, previous=data)
        assert [r.ok for r in await apply(target, "user", disable, disable)] == [True, True]
        moved = f"uid=ada,{DISABLED}"
        assert f"uid=ada,{PEOPLE}" not in slapd.people() and uuid_of(slapd, moved) == tid
        assert slapd.groups()[f"cn=staff,{GROUPS}"]["member"] == [moved]
    finally:
        await target.aclose()
    target = open_target(slapd, tmp_path, disable=None, move_to=DISABLED)  # a later job
    try:
        enable = Op(
            kind="update", source_id="a", target_id=tid, data=data, previous=data, enable=True
        )
        assert [r.ok for r in await apply(target, "user", enable, enable)] == [True, True]
        assert uuid_of(slapd, f"uid=ada,{PEOPLE}") == tid
        assert slapd.groups()[f"cn=staff,{GROUPS}"]["member"] == [f"uid=ada,{PEOPLE}"]
    finally:
        await target.aclose()


async def test_a_refused_object_is_escrowed_with_the_code_and_the_rest_is_written(
    slapd: Slapd, tmp_path: Path
) -> None:
    target = open_target(slapd, tmp_path)
    try:
        ops = [
            Op(kind="create", source_id="1", data=user("one")),
            Op(kind="create", source_id="2", data=user("two", displayName=["A", "B"])),
            Op(kind="create", source_id="3", data={"uid": "three", "cn": "Three"}),  # no sn
            Op(kind="create", source_id="4", data=user("four", mail="fo\u00fcr@example.org")),
            Op(kind="create", source_id="5", data={"cn": "no uid", "sn": "x"}),
            Op(kind="create", source_id="6", data=user("six")),
        ]
        results = await apply(target, "user", *ops)
        assert [r.ok for r in results] == [True, False, False, False, False, True]
        errors = [r.error or "" for r in results]
        assert errors[1].startswith("constraintViolation: ") and "displayName" in errors[1]
        assert errors[2].startswith("objectClassViolation: ") and "sn" in errors[2]
        assert errors[3].startswith("invalidAttributeSyntax: ") and "mail" in errors[3]
        assert errors[4] == "no value for the RDN attribute uid"
        assert sorted(slapd.people()) == [f"uid=one,{PEOPLE}", f"uid=six,{PEOPLE}"]

        tid = results[0].target_id
        bad = Op(
            kind="update",
            source_id="1",
            target_id=tid,
            data=user("one", displayName=["A", "B"]),
            previous=user("one"),
        )
        fine = Op(kind="delete", source_id="6", target_id=results[5].target_id)
        results = await apply(target, "user", bad, fine)
        assert [r.ok for r in results] == [False, True]
        assert (results[0].error or "").startswith("constraintViolation: ")
    finally:
        await target.aclose()


async def test_a_wrong_password_is_a_credentials_error(slapd: Slapd, tmp_path: Path) -> None:
    target = open_target(slapd, tmp_path, password="not-the-password")
    try:
        with pytest.raises(CredentialsError) as info:
            await apply(target, "user", Op(kind="create", source_id="a", data=user("ada")))
        assert "not-the-password" not in str(info.value)
        with pytest.raises(CredentialsError):
            await target.validate()
    finally:
        await target.aclose()


async def test_a_stopped_server_is_a_transient_error(slapd: Slapd, tmp_path: Path) -> None:
    target = open_target(slapd, tmp_path)
    try:
        await create(target, "user", "a", user("ada"))
        slapd.stop()
        with pytest.raises(TransientError):
            await apply(target, "user", Op(kind="create", source_id="b", data=user("bob")))
        slapd.start()
        await create(target, "user", "b", user("bob"))  # the connection is opened again
    finally:
        await target.aclose()


async def test_validate_says_what_it_writes_and_finds_missing_bases(
    slapd: Slapd, tmp_path: Path
) -> None:
    target = open_target(slapd, tmp_path)
    try:
        found = await target.validate()
        assert slapd.url.removeprefix("ldap://") in found and "post-read" in found
        assert f"inetOrgPerson entries uid=...,{PEOPLE}" in found
    finally:
        await target.aclose()
    target = open_target(slapd, tmp_path, base="ou=nowhere,dc=example,dc=org")
    try:
        with pytest.raises(Exception, match="ou=nowhere,dc=example,dc=org does not exist"):
            await target.validate()
    finally:
        await target.aclose()


async def test_an_entry_this_job_created_for_another_object_is_not_adopted(
    slapd: Slapd, tmp_path: Path
) -> None:
    target = open_target(slapd, tmp_path)
    try:
        first = Op(kind="create", source_id="b1", data=user("bob", title="First"))
        second = Op(kind="create", source_id="b2", data=user("bob", title="Second"))
        one, two = await apply(target, "user", first, second)
        assert one.ok and not two.ok
        assert (two.error or "").startswith("entryAlreadyExists: ")
        assert slapd.people()[f"uid=bob,{PEOPLE}"]["title"] == ["First"]
        # The same object's create replayed (its answer lost) adopts its own entry.
        (again,) = await apply(target, "user", first)
        assert again.ok and again.target_id == one.target_id
    finally:
        await target.aclose()


async def test_an_entry_outside_the_entity_filter_is_not_adopted(
    slapd: Slapd, tmp_path: Path
) -> None:
    dn = f"uid=svc,{PEOPLE}"
    slapd.add(*person("svc", title="Service account", employeeType="service"))
    staff = "(&(objectClass=inetOrgPerson)(!(employeeType=service)))"
    target = open_target(slapd, tmp_path, filter=staff)
    try:
        data = user("svc", title="Taken over")
        (result,) = await apply(target, "user", Op(kind="create", source_id="s", data=data))
        assert not result.ok and (result.error or "").startswith("entryAlreadyExists: ")
        assert "is not a user entry" in (result.error or "")
        assert slapd.people()[dn]["title"] == ["Service account"]
    finally:
        await target.aclose()


async def test_a_rename_keeps_the_other_values_of_a_multi_valued_rdn(
    slapd: Slapd, tmp_path: Path
) -> None:
    dn = f"cn=Bob B+uid=bob,{PEOPLE}"
    attrs = {"objectClass": ["inetOrgPerson"], "uid": "bob", "cn": ["Bob B", "Bobby"], "sn": "B"}
    slapd.add(dn, attrs)
    named_by_cn = f"cn=Carol C,{PEOPLE}"
    carol = {"objectClass": ["inetOrgPerson"], "uid": "carol", "cn": ["Carol C", "Caz"], "sn": "C"}
    slapd.add(named_by_cn, carol)
    target = open_target(slapd, tmp_path)
    try:
        bob = {"uid": "bob", "cn": ["Bob B", "Bobby"], "sn": "B"}
        renamed = {**bob, "uid": "bob2"}
        tid = uuid_of(slapd, dn)
        update = Op(kind="update", source_id="b", target_id=tid, data=renamed, previous=bob)
        carol_data = {"uid": "carol", "cn": ["Carol C", "Caz"], "sn": "Carol"}
        carol_id = uuid_of(slapd, named_by_cn)
        carol_update = Op(
            kind="update",
            source_id="c",
            target_id=carol_id,
            data=carol_data,
            previous={**carol_data, "sn": "C"},
        )
        assert [r.ok for r in await apply(target, "user", update, carol_update)] == [True, True]
        people = slapd.people()
        moved = f"cn=Bob B+uid=bob2,{PEOPLE}"
        assert uuid_of(slapd, moved) == tid
        assert sorted(people[moved]["cn"]) == ["Bob B", "Bobby"]
        assert people[moved]["uid"] == ["bob2"]
        # An entry named by another attribute keeps its name and every value.
        assert uuid_of(slapd, named_by_cn) == carol_id
        assert sorted(people[named_by_cn]["cn"]) == ["Carol C", "Caz"]
        assert people[named_by_cn]["sn"] == ["Carol"]
    finally:
        await target.aclose()


async def test_count_leaves_out_the_base_entry(slapd: Slapd, tmp_path: Path) -> None:
    target = open_target(slapd, tmp_path, filter=None)  # (objectClass=*): ou=people matches
    try:
        assert await target.count("user") == 0
        await create(target, "user", "a", user("ada"))
        assert await target.count("user") == 1
    finally:
        await target.aclose()


@pytest.mark.parametrize("uid", ['a,b+c"d\\e<f>g;h=i', " lead", "trail ", "#hash", "x*)(uid=*"])
async def test_rdn_values_needing_escapes_are_created_renamed_and_followed_by_groups(
    slapd: Slapd, tmp_path: Path, uid: str
) -> None:
    target = open_target(slapd, tmp_path)
    try:
        data = user(uid)
        tid = await create(target, "user", "a", data)
        await create(target, "group", "g", {"cn": "staff", "member": [tid]})
        (dn,) = slapd.people()
        assert slapd.people()[dn]["uid"] == [uid] and uuid_of(slapd, dn) == tid
        renamed = {**data, "uid": uid + ",2"}
        update = Op(kind="update", source_id="a", target_id=tid, data=renamed, previous=data)
        assert [r.ok for r in await apply(target, "user", update, update)] == [True, True]
        ((new_dn, entry),) = slapd.people().items()
        assert entry["uid"] == [uid + ",2"] and uuid_of(slapd, new_dn) == tid
        assert slapd.groups()[f"cn=staff,{GROUPS}"]["member"] == [new_dn]
    finally:
        await target.aclose()


async def test_binary_values_are_written_as_the_bytes_their_base64_gives(
    slapd: Slapd, tmp_path: Path
) -> None:
    import base64

    photo = bytes(range(256)) * 4
    target = open_target(slapd, tmp_path)
    try:
        data = user("ada", jpegPhoto=base64.b64encode(photo).decode(), employeeNumber=7)
        tid = await create(target, "user", "a", data)
        conn = slapd.connect()
        try:
            ((_, entry),) = conn.search_s(f"uid=ada,{PEOPLE}", ldap.SCOPE_BASE)
        finally:
            conn.unbind_s()
        assert entry["jpegPhoto"] == [photo] and entry["employeeNumber"] == [b"7"]
        sent = record_modifies(target)
        update = Op(kind="update", source_id="a", target_id=tid, data=data)  # read, compared
        assert [r.ok for r in await apply(target, "user", update)] == [True]
        assert sent == []
        bad = Op(kind="update", source_id="a", target_id=tid, data={**data, "jpegPhoto": "no!"})
        (result,) = await apply(target, "user", bad)
        assert not result.ok and result.error == "jpegPhoto: a binary value that is not base64"
    finally:
        await target.aclose()


class BusyOnce:
    """A python-ldap connection whose third answer read is ``busy``, once."""

    def __init__(self, conn: Any, state: dict[str, int]) -> None:
        self.conn, self.state = conn, state

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.conn, name)
        if name != "result3":
            return method

        def result3(*args: Any, **kwargs: Any) -> Any:
            self.state["read"] += 1
            if self.state["read"] == 3:
                raise ldap.BUSY({"desc": "Server is busy"})
            return method(*args, **kwargs)

        return result3


async def test_a_busy_answer_mid_pipeline_fails_the_batch_and_its_replay_links_each_op(
    slapd: Slapd, tmp_path: Path
) -> None:
    target = open_target(slapd, tmp_path)
    try:
        old = await create(target, "user", "old", user("old"))
        ops = [Op(kind="create", source_id=f"s{i}", data=user(f"u{i}")) for i in range(6)]
        ops.append(Op(kind="delete", source_id="old", target_id=old))
        state = {"read": 0}
        call = target.conn.call

        async def busy(fn: Any) -> Any:
            return await call(lambda conn: fn(BusyOnce(conn, state)))

        target.conn.call = busy  # type: ignore[method-assign]
        with pytest.raises(TransientError, match="busy"):
            await apply(target, "user", *ops)
        results = await apply(target, "user", *ops)  # the engine's retry
        assert all(r.ok for r in results)
        people = slapd.people()
        assert sorted(people) == sorted(f"uid=u{i},{PEOPLE}" for i in range(6))
        for i, result in enumerate(results[:6]):
            assert uuid_of(slapd, f"uid=u{i},{PEOPLE}") == result.target_id
    finally:
        await target.aclose()


async def test_without_the_post_read_control_each_entry_is_added_once_and_its_id_read(
    slapd: Slapd, tmp_path: Path
) -> None:
    target = open_target(slapd, tmp_path)
    try:
        target.directory._post_read = False  # a server that does not offer it
        sent: list[str] = []
        call = target.conn.call

        class Adds:
            def __init__(self, conn: Any) -> None:
                self.conn = conn

            def __getattr__(self, name: str) -> Any:
                method = getattr(self.conn, name)
                if name.startswith("add"):
                    sent.append(name)
                return method

        async def counting(fn: Any) -> Any:
            return await call(lambda conn: fn(Adds(conn)))

        target.conn.call = counting  # type: ignore[method-assign]
        ops = [Op(kind="create", source_id=f"s{i}", data=user(f"u{i}")) for i in range(3)]
        results = await apply(target, "user", *ops)
        assert len(sent) == 3
        for i, result in enumerate(results):
            assert result.ok and uuid_of(slapd, f"uid=u{i},{PEOPLE}") == result.target_id
    finally:
        await target.aclose()


async def test_an_rdn_value_given_up_by_a_rename_in_the_batch_goes_to_a_new_entry(
    slapd: Slapd, tmp_path: Path
) -> None:
    target = open_target(slapd, tmp_path)
    try:
        old = user("jsmith", title="Old")
        old_id = await create(target, "user", "old", old)
    finally:
        await target.aclose()
    target = open_target(slapd, tmp_path)  # a later job
    try:
        hire = Op(kind="create", source_id="new", data=user("jsmith", title="New"))
        renamed = {**old, "uid": "jsmith1"}
        rename = Op(kind="update", source_id="old", target_id=old_id, data=renamed, previous=old)
        created, updated = await apply(target, "user", hire, rename)
        assert created.ok and updated.ok and created.target_id != old_id
        people = slapd.people()
        assert uuid_of(slapd, f"uid=jsmith1,{PEOPLE}") == old_id
        assert people[f"uid=jsmith1,{PEOPLE}"]["title"] == ["Old"]
        assert uuid_of(slapd, f"uid=jsmith,{PEOPLE}") == created.target_id
        assert people[f"uid=jsmith,{PEOPLE}"]["title"] == ["New"]
    finally:
        await target.aclose()


async def test_an_entry_another_op_of_the_batch_is_linked_to_is_not_adopted(
    slapd: Slapd, tmp_path: Path
) -> None:
    target = open_target(slapd, tmp_path)
    try:
        await create(target, "user", "x", user("jsmith1"))  # the rename will collide
        old = user("jsmith", title="Old")
        old_id = await create(target, "user", "old", old)
    finally:
        await target.aclose()
    target = open_target(slapd, tmp_path)  # a later job
    try:
        hire = Op(kind="create", source_id="new", data=user("jsmith", title="New"))
        renamed = {**old, "uid": "jsmith1"}
        rename = Op(kind="update", source_id="old", target_id=old_id, data=renamed, previous=old)
        created, updated = await apply(target, "user", hire, rename)
        assert not updated.ok and (updated.error or "").startswith("entryAlreadyExists: ")
        assert not created.ok and "linked to another object (old)" in (created.error or "")
        assert slapd.people()[f"uid=jsmith,{PEOPLE}"]["title"] == ["Old"]
    finally:
        await target.aclose()
