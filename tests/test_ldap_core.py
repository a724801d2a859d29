"""The ldap connector's core: settings, the connection thread, errors, entries and
filters; against a real slapd (tests/slapd.py) where a server is involved."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

from sluiced.errors import ConfigError, CredentialsError, SyncError, TransientError
from sluiced.tables import Problems, Secret, TableReader

from .slapd import SERVICE_PASSWORD, Slapd, person, skip_reason

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

if skip_reason() is None:
    from sluiced.plugins.ldap import LdapConnector
    from sluiced.plugins.ldap.connection import LdapConnection
    from sluiced.plugins.ldap.entries import to_ldap_values, to_record_data
    from sluiced.plugins.ldap.errors import StaleCookieError, object_error, result_name, translate
    from sluiced.plugins.ldap.filters import (
        all_of,
        any_of,
        equals,
        escape,
        normalize_dn,
        parent,
        rdn,
    )
    from sluiced.plugins.ldap.schema import AttributeSchema
    from sluiced.plugins.ldap.settings import EntitySettings, LdapSettings

PEOPLE = "ou=people,dc=example,dc=org"


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    server = Slapd(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def settings_for(server: Slapd, **overrides: Any) -> LdapSettings:
    values: dict[str, Any] = {
        "url": server.url,
        "bind_dn": server.service_dn,
        "password": Secret(SERVICE_PASSWORD, "test"),
        "timeout": timedelta(seconds=5),
        "page_size": 100,
        "entities": {},
    }
    values.update(overrides)
    return LdapSettings(**values)


# -- settings --------------------------------------------------------------------------


def read(table: dict[str, Any], tmp_path: Path, path: str = "integrations.i.source") -> Any:
    problems = Problems("config.toml")
    reader = TableReader(table, path=path, problems=problems, base_dir=tmp_path)
    reader.ignore("connector")
    settings = LdapConnector().parse_settings(reader)
    problems.raise_if_any()
    return settings


def problems_of(table: dict[str, Any], tmp_path: Path, path: str = "integrations.i.source") -> str:
    with pytest.raises(ConfigError) as info:
        read(table, tmp_path, path)
    return str(info.value)


def test_settings_read_every_key_with_defaults(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    settings = read(
        {
            "url": "ldap://ldap.example.org",
            "bind_dn": "cn=x,dc=example,dc=org",
            "password_file": "pw",
            "entities": {"user": {"base": PEOPLE, "filter": "(objectClass=inetOrgPerson)"}},
        },
        tmp_path,
    )
    assert settings.password.reveal() == "s3cret"
    assert (settings.timeout, settings.page_size) == (timedelta(seconds=30), 500)
    assert (settings.incremental, settings.overlap) == ("auto", timedelta(minutes=5))
    assert settings.entity("user") == EntitySettings(
        name="user",
        base=PEOPLE,
        scope="sub",
        filter="(objectClass=inetOrgPerson)",
        id_attribute="entryUUID",
        dn_attributes=("member", "uniqueMember", "manager", "owner"),
    )
    with pytest.raises(SyncError, match=r"entities\.group .*user"):
        settings.entity("group")
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("table", "key", "expected"),
    [
        ({"url": "http://x"}, "url", "ldap://, ldaps:// or ldapi://"),
        ({"start_tls": "yes"}, "start_tls", "true or false"),
        ({"url": "ldaps://x", "start_tls": True}, "start_tls", "only with an ldap:// URL"),
        ({"bind_dn": "cn=x"}, "password_file", "password_file, password_env"),
        ({"password_env": "LDAP_PW_TEST"}, "bind_dn", "the bind_dn the password"),
        ({"password": "hunter2"}, "password", "never written inline"),
        ({"timeout": "0s"}, "timeout", "a positive duration"),
        ({"page_size": 0}, "page_size", "an integer >= 1"),
        ({"incremental": "sometimes"}, "incremental", '"auto", "syncrepl", "timestamps"'),
        ({"overlap": "soon"}, "overlap", "a duration"),
        ({"ca_file": 3}, "ca_file", "a path"),
        ({"colour": "red"}, "colour", "only the documented keys"),
        ({"entities": {}}, "entities", "at least one entity table"),
        ({"entities": {"user": {}}}, "entities.user.base", "a string"),
        ({"entities": {"user": {"base": PEOPLE, "scope": "all"}}}, "entities.user.scope", '"base"'),
        (
            {"entities": {"user": {"base": PEOPLE, "filter": "(&(uid=a)"}}},
            "entities.user.filter",
            "an LDAP filter",
        ),
        (
            {"entities": {"user": {"base": PEOPLE, "filter": "uid=a"}}},
            "entities.user.filter",
            "an LDAP filter",
        ),
        (
            {"entities": {"user": {"base": PEOPLE, "id_attribute": 1}}},
            "entities.user.id_attribute",
            "a string",
        ),
        (
            {"entities": {"user": {"base": PEOPLE, "dn_attributes": "member"}}},
            "entities.user.dn_attributes",
            "an array of strings",
        ),
        (
            {"entities": {"user": {"base": PEOPLE, "rdn_attribute": "uid"}}},
            "entities.user.rdn_attribute",
            "only on a target",
        ),
        ({"entities": {"user": {"base": PEOPLE, "x": 1}}}, "entities.user.x", "documented keys"),
        ({"entities": {"user": []}}, "entities.user", "a table"),
        ({"entities": 3}, "entities", "a table"),
        ({"url": 3}, "url", "a string"),
    ],
)
def test_every_bad_key_is_a_problem_naming_file_key_and_expectation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: dict[str, Any], key: str, expected: str
) -> None:
    monkeypatch.setenv("LDAP_PW_TEST", "pw")
    full: dict[str, Any] = {"url": "ldap://x", "entities": {"user": {"base": PEOPLE}}}
    full.update(table)
    message = problems_of(full, tmp_path)
    assert f"config.toml: integrations.i.source.{key}: found " in message
    assert expected in message
    assert "hunter2" not in message


TARGET = "integrations.i.target"


def test_a_target_entity_needs_rdn_attribute_and_object_classes(tmp_path: Path) -> None:
    message = problems_of(
        {"url": "ldap://x", "entities": {"user": {"base": PEOPLE}}}, tmp_path, TARGET
    )
    assert f"{TARGET}.entities.user.rdn_attribute: found nothing" in message
    assert f"{TARGET}.entities.user.object_classes: found nothing" in message
    both = {
        "base": PEOPLE,
        "rdn_attribute": "uid",
        "object_classes": ["inetOrgPerson"],
        "disable": {"attribute": "pwdAccountLockedTime", "value": "000001010000Z"},
        "move_to": "ou=disabled,dc=example,dc=org",
    }
    message = problems_of({"url": "ldap://x", "entities": {"user": both}}, tmp_path, TARGET)
    assert f"{TARGET}.entities.user.move_to: found both disable and move_to" in message
    for bad, key, expected in [
        ({"object_classes": []}, "object_classes", "a non-empty array of strings"),
        ({"rdn_attribute": ["uid"]}, "rdn_attribute", "a string"),
        ({"move_to": 1}, "move_to", "a string"),
        ({"disable": "locked"}, "disable", "a table"),
        ({"disable": {"attribute": "x"}}, "disable.value", "a string"),
        ({"disable": {"attribute": "x", "value": "y", "z": 1}}, "disable.z", "documented keys"),
    ]:
        entity = {"base": PEOPLE, "rdn_attribute": "uid", "object_classes": ["top"], **bad}
        message = problems_of({"url": "ldap://x", "entities": {"user": entity}}, tmp_path, TARGET)
        assert f"{TARGET}.entities.user.{key}: found " in message and expected in message
    del both["move_to"]
    user = read({"url": "ldap://x", "entities": {"user": both}}, tmp_path, TARGET).entity("user")
    assert (user.rdn_attribute, user.object_classes) == ("uid", ("inetOrgPerson",))
    assert (user.disable_attribute, user.disable_value, user.move_to) == (
        "pwdAccountLockedTime",
        "000001010000Z",
        None,
    )


# -- filters ---------------------------------------------------------------------------


def test_filters_escape_every_value() -> None:
    assert escape("a*(b)\\c\0") == "a\\2a\\28b\\29\\5cc\\00"
    assert equals("uid", "*)(uid=*") == "(uid=\\2a\\29\\28uid=\\2a)"
    assert any_of("uid", ["a", "b*"]) == "(|(uid=a)(uid=b\\2a))"
    assert any_of("uid", ["a"]) == "(uid=a)"
    assert all_of("(a=1)", "(b=2)") == "(&(a=1)(b=2))"
    assert rdn("cn", "Doe, John+x") == "cn=Doe\\, John\\+x"
    assert parent("uid=a,ou=people,dc=example,dc=org") == PEOPLE
    assert (
        normalize_dn("UID=A , OU=People,dc=Example, dc=org") == "uid=a,ou=people,dc=example,dc=org"
    )


# -- the connection against slapd ------------------------------------------------------


async def test_call_search_read_entry_root_dse_and_aclose(slapd: Slapd) -> None:
    slapd.add_many(person(f"p{i:04}", mail=f"p{i}@example.org") for i in range(1200))
    conn = LdapConnection(settings_for(slapd))
    assert conn.endpoint == slapd.url
    try:
        whoami = await conn.call(lambda c: c.whoami_s())
        assert whoami == f"dn:{slapd.service_dn}"
        pages = [
            (len(entries), cookie is None)
            async for entries, cookie in conn.search(
                PEOPLE, "one", "(objectClass=inetOrgPerson)", ["uid"], page_size=500
            )
        ]
        assert pages == [(500, False), (500, False), (200, True)]
        found = await conn.search_all(PEOPLE, "sub", "(uid=p00*)", ["uid", "entryUUID"])
        assert len(found) == 100
        dn, attrs = found[0]
        assert set(attrs) == {"uid", "entryUUID"} and dn.endswith(PEOPLE)
        entry = await conn.read_entry(f"uid=p0001,{PEOPLE}", ["mail"])
        assert entry == {"mail": [b"p1@example.org"]}
        assert await conn.read_entry(f"uid=nobody,{PEOPLE}") is None
        dse = await conn.root_dse()
        assert b"1.2.840.113556.1.4.319" in dse["supportedControl"]
    finally:
        await conn.aclose()
    await conn.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await conn.call(lambda c: c.whoami_s())


async def test_a_size_limit_never_cuts_a_read_short_silently(slapd: Slapd) -> None:
    slapd.add_many(person(f"p{i:04}") for i in range(600))
    conn = LdapConnection(settings_for(slapd))
    try:
        with pytest.raises(SyncError, match="sizeLimitExceeded"):
            await conn.call(lambda c: c.search_s(PEOPLE, 1, "(uid=*)", ["uid"]))
        assert len(await conn.search_all(PEOPLE, "one", "(uid=*)", ["1.1"])) == 600
    finally:
        await conn.aclose()


async def test_a_wrong_password_is_a_credentials_error_without_the_password(
    slapd: Slapd,
) -> None:
    conn = LdapConnection(settings_for(slapd, password=Secret("wrong-horse", "test")))
    try:
        with pytest.raises(CredentialsError) as info:
            await conn.call(lambda c: c.whoami_s())
        assert "invalidCredentials" in str(info.value)
        assert "wrong-horse" not in str(info.value) and "wrong-horse" not in repr(info.value)
    finally:
        await conn.aclose()


async def test_ldapi_binds_with_sasl_external_without_bind_dn(slapd: Slapd) -> None:
    conn = LdapConnection(settings_for(slapd, url=slapd.ldapi_url, bind_dn=None, password=None))
    try:
        whoami = await conn.call(lambda c: c.whoami_s())
        assert whoami.lower().startswith("dn:gidnumber=") and whoami.endswith(
            ",cn=external,cn=auth"
        )
    finally:
        await conn.aclose()


async def test_after_a_server_restart_a_call_fails_transiently_then_works(slapd: Slapd) -> None:
    conn = LdapConnection(settings_for(slapd))
    try:
        await conn.call(lambda c: c.whoami_s())
        slapd.stop()
        with pytest.raises(TransientError, match="serverDown"):
            await conn.call(lambda c: c.whoami_s())
        with pytest.raises(TransientError):
            await conn.call(lambda c: c.whoami_s())
        slapd.start()
        assert await conn.call(lambda c: c.whoami_s()) == f"dn:{slapd.service_dn}"
    finally:
        await conn.aclose()


# -- schema and entries ----------------------------------------------------------------


async def test_schema_from_the_server_and_entries_both_ways(slapd: Slapd) -> None:
    photo = bytes(range(256))
    slapd.add(*person("ada", mail=["ada@example.org", "a@example.org"], jpegPhoto=photo))
    conn = LdapConnection(settings_for(slapd))
    try:
        schema = await conn.schema()
        assert schema is await conn.schema()
        entry = await conn.read_entry(f"uid=ada,{PEOPLE}", ["*", "entryUUID"])
    finally:
        await conn.aclose()
    assert schema.canonical("MAIL") == "mail" and schema.canonical("2.5.4.3") == "cn"
    assert schema.single_valued("entryUUID") and not schema.single_valued("mail")
    assert schema.single_valued("displayName")
    assert schema.binary("jpegPhoto") and schema.binary("userCertificate;binary")
    assert not schema.binary("cn")
    assert schema.is_dn("member") and schema.is_dn("manager") and not schema.is_dn("cn")
    assert entry is not None
    data = to_record_data(f"uid=ada,{PEOPLE}", entry, schema)
    assert data["dn"] == f"uid=ada,{PEOPLE}"
    assert data["mail"] == ["ada@example.org", "a@example.org"]
    assert data["cn"] == ["Ada"] and isinstance(data["entryUUID"], str)
    assert data["jpegPhoto"] == [base64.b64encode(photo).decode()]
    assert to_ldap_values("jpegPhoto", data["jpegPhoto"], schema) == [photo]
    assert to_ldap_values("mail", "x@y", schema) == [b"x@y"]
    assert to_ldap_values("mail", None, schema) == [] == to_ldap_values("mail", [], schema)
    assert to_ldap_values("flag", True, schema) == [b"TRUE"]
    assert to_ldap_values("uidNumber", 7, schema) == [b"7"]
    with pytest.raises(ValueError, match="base64"):
        to_ldap_values("jpegPhoto", "not base64!", schema)
    unknown = to_record_data("cn=x", {"weird": [b"\xff\xfe"]}, AttributeSchema())
    assert unknown == {"dn": "cn=x", "weird": [base64.b64encode(b"\xff\xfe").decode()]}


# -- errors ----------------------------------------------------------------------------


def test_errors_map_onto_the_engine_vocabulary() -> None:
    import ldap

    def err(cls: Any, info: str = "the server says no") -> Any:
        return cls({"result": getattr(cls, "errnum", 80), "desc": "d", "info": info})

    assert result_name(err(ldap.CONSTRAINT_VIOLATION)) == "constraintViolation"
    assert result_name(err(ldap.INSUFFICIENT_ACCESS)) == "insufficientAccessRights"
    assert result_name(ldap.SERVER_DOWN({"desc": "Can't contact LDAP server"})) == "serverDown"
    for cls in (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT, ldap.BUSY, ldap.UNAVAILABLE):
        assert type(translate(err(cls))) is TransientError
    for cls in (ldap.INVALID_CREDENTIALS, ldap.INAPPROPRIATE_AUTH):
        assert type(translate(err(cls))) is CredentialsError
    assert type(translate(err(ldap.INSUFFICIENT_ACCESS), binding=True)) is CredentialsError
    assert type(translate(err(ldap.INSUFFICIENT_ACCESS))) is SyncError
    assert type(translate(err(ldap.OTHER))) is SyncError
    assert str(translate(err(ldap.BUSY))) == "busy: the server says no"
    assert object_error(err(ldap.CONSTRAINT_VIOLATION)) == "constraintViolation: the server says no"
    assert object_error(err(ldap.OBJECT_CLASS_VIOLATION)).startswith("objectClassViolation: ")
    assert object_error(err(ldap.SERVER_DOWN)) is None
    assert object_error(err(ldap.INVALID_CREDENTIALS)) is None


async def test_a_timeout_is_transient(slapd: Slapd) -> None:
    slapd.proc.send_signal(__import__("signal").SIGSTOP)  # accepts nothing, answers nothing
    conn = LdapConnection(settings_for(slapd, timeout=timedelta(seconds=0.5)))
    try:
        with trio.fail_after(10):
            with pytest.raises(TransientError):
                await conn.call(lambda c: c.whoami_s())
    finally:
        slapd.proc.send_signal(__import__("signal").SIGCONT)
        await conn.aclose()


# -- TLS -------------------------------------------------------------------------------


async def test_ldaps_and_start_tls_verify_the_server_with_ca_file(tmp_path: Path) -> None:
    server = Slapd(tmp_path, tls=True).start()
    try:
        for url, start_tls in ((server.ldaps_url, False), (server.url, True)):
            trusting = LdapConnection(
                settings_for(server, url=url, start_tls=start_tls, ca_file=server.ca_file)
            )
            try:
                assert await trusting.call(lambda c: c.whoami_s()) == f"dn:{server.service_dn}"
            finally:
                await trusting.aclose()
            # without ca_file, the system's CAs do not vouch for the test CA
            untrusting = LdapConnection(settings_for(server, url=url, start_tls=start_tls))
            try:
                with pytest.raises(TransientError, match=r"over TLS: .*ca_file"):
                    await untrusting.call(lambda c: c.whoami_s())
            finally:
                await untrusting.aclose()
    finally:
        server.stop()


# -- without python-ldap ---------------------------------------------------------------

WITHOUT_PYTHON_LDAP = """
import sys
sys.modules["ldap"] = None  # as if python-ldap were not installed
from pathlib import Path
from sluiced.pluginmanager import build_plugin_manager, build_registry
from sluiced.tables import Problems, TableReader

registry = build_registry(build_plugin_manager())
assert {"jsonl", "csv", "scim", "ldap"} <= set(registry.connectors)
problems = Problems("c.toml")
table = {"url": "ldap://x", "entities": {"user": {"base": "ou=people,dc=x", "scope": "all"}}}
reader = TableReader(table, path="integrations.i.source", problems=problems, base_dir=Path("."))
registry.connectors["ldap"].parse_settings(reader)
for problem in problems.items:
    print(problem)
"""


def test_without_python_ldap_the_factory_registers_and_names_the_extra() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYTHON_LDAP], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "c.toml: integrations.i.source.connector: found python-ldap missing; "
        "expected connector ldap needs python-ldap: pip install 'sluiced[ldap]'",
        'c.toml: integrations.i.source.entities.user.scope: found "all"; '
        'expected one of "base", "one", "sub"',
    ]


# -- a server that ignores paging ------------------------------------------------------


class Unpaged:
    """A python-ldap connection stand-in: its server answers one entry and one search
    reference, with the paging control given at construction or none."""

    def __init__(self, controls: list[Any]) -> None:
        self.controls = controls

    def search_ext(self, *args: Any, **kwargs: Any) -> int:
        return 1

    def result3(self, msgid: int, **kwargs: Any) -> tuple[Any, ...]:
        data = [("uid=a,dc=x", {"uid": [b"a"]}), (None, ["ldap://elsewhere/"])]
        return (101, data, 1, self.controls)


async def test_a_server_that_drops_the_paging_control_is_an_error_not_a_short_read() -> None:
    conn = LdapConnection(LdapSettings(url="ldap://127.0.0.1:1", entities={}))
    from ldap.controls import SimplePagedResultsControl

    def page(controls: list[Any]) -> Any:
        return conn._page(
            Unpaged(controls), base="dc=x", scope="sub", filterstr="(uid=*)", attrs=None,
            page_size=10, cookie=None,
        )  # fmt: skip

    with pytest.raises(SyncError, match="without the paging control"):
        page([])
    last = SimplePagedResultsControl(size=10, cookie=b"")
    assert page([last]) == ([("uid=a,dc=x", {"uid": [b"a"]})], ["ldap://elsewhere/"], None)
    await conn.aclose()


async def test_a_paged_cookie_resumes_on_its_connection_and_is_stale_on_another(
    slapd: Slapd,
) -> None:
    slapd.add_many(person(f"p{i:02}") for i in range(30))
    first, second = LdapConnection(settings_for(slapd)), LdapConnection(settings_for(slapd))
    try:
        pages = first.search(PEOPLE, "one", "(uid=*)", ["uid"], page_size=10)
        entries, cookie = await pages.__anext__()
        await pages.aclose()
        assert len(entries) == 10 and cookie
        rest = [
            len(e)
            async for e, _ in first.search(
                PEOPLE, "one", "(uid=*)", ["uid"], page_size=10, cookie=cookie
            )
        ]
        assert rest == [10, 10]
        with pytest.raises(StaleCookieError, match="cookie"):
            async for _ in second.search(
                PEOPLE, "one", "(uid=*)", ["uid"], page_size=10, cookie=cookie
            ):
                pass
    finally:
        await first.aclose()
        await second.aclose()


async def test_the_connection_can_be_a_syncrepl_consumer(slapd: Slapd) -> None:
    import ldap
    from ldap.ldapobject import SimpleLDAPObject
    from ldap.syncrepl import SyncreplConsumer

    class Consumer(SyncreplConsumer, SimpleLDAPObject):
        def __init__(self, uri: str) -> None:
            super().__init__(uri)
            self.seen: list[str] = []

        def syncrepl_entry(self, dn: str, attrs: Any, uuid: str) -> None:
            self.seen.append(dn)

    slapd.add_many(person(f"p{i}") for i in range(3))
    conn = LdapConnection(settings_for(slapd), object_class=Consumer)

    def refresh(c: Any) -> list[str]:
        msgid = c.syncrepl_search(
            PEOPLE, ldap.SCOPE_ONELEVEL, mode="refreshOnly", filterstr="(uid=*)"
        )
        while c.syncrepl_poll(msgid=msgid, all=1):
            pass
        return sorted(c.seen)

    try:
        assert await conn.call(refresh) == [f"uid=p{i},{PEOPLE}" for i in range(3)]
    finally:
        await conn.aclose()
