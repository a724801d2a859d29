"""LDAP → SCIM and LDAP → JSONL: a real daemon process reading a real slapd."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .daemonproc import DaemonProc, daemons, first_job, wait_job
from .scimserver import ScimServer, scim_server
from .slapd import SERVICE_PASSWORD, Slapd, person, skip_reason

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

PEOPLE = ("ada", "bob", "carl", "dora", "emil")
STAFF = "cn=staff,ou=groups,dc=example,dc=org"

SCHEMA = {
    "objectMappings": [
        {
            "sourceObjectName": "user",
            "targetObjectName": "User",
            "flowTypes": ["Add", "Update", "Delete"],
            "deprovision": "delete",
            "attributeMappings": [
                {
                    "targetAttributeName": "userName",
                    "source": {"type": "Expression", "expression": "ToLower([uid])"},
                    "matchingPriority": 1,
                },
                {
                    "targetAttributeName": "externalId",
                    "source": {"type": "Direct", "name": "entryUUID"},
                },
                {
                    "targetAttributeName": "displayName",
                    "source": {"type": "Expression", "expression": 'Join(" ", [cn])'},
                },
                {
                    "targetAttributeName": 'emails[type eq "work"].value',
                    "source": {"type": "Expression", "expression": "ToLower([mail])"},
                },
            ],
        },
        {
            "sourceObjectName": "group",
            "targetObjectName": "Group",
            "flowTypes": ["Add", "Update", "Delete"],
            "deprovision": "delete",
            "attributeMappings": [
                {
                    "targetAttributeName": "displayName",
                    "source": {"type": "Expression", "expression": 'Join(" ", [cn])'},
                    "matchingPriority": 1,
                },
                {
                    "targetAttributeName": "members",
                    "source": {"type": "Direct", "name": "member"},
                    "referencedObject": "user",
                },
            ],
        },
    ]
}


def source_table(server: Slapd, ident: str) -> str:
    return f"""
[integrations.{ident}.source]
connector = "ldap"
url = "{server.url}"
bind_dn = "{server.service_dn}"
password_file = "ldap-password"
page_size = 2
[integrations.{ident}.source.entities.user]
base = "ou=people,dc=example,dc=org"
filter = "(objectClass=inetOrgPerson)"
[integrations.{ident}.source.entities.group]
base = "ou=groups,dc=example,dc=org"
filter = "(objectClass=groupOfNames)"
"""


def header() -> str:
    return """
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
shutdown_grace = "20s"
"""


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    s = Slapd(tmp_path).start()
    s.add_many(person(uid, mail=f"{uid}@example.org") for uid in PEOPLE)
    s.add_many(
        [
            (
                STAFF,
                {
                    "objectClass": ["groupOfNames"],
                    "cn": "staff",
                    "member": [s.dn("uid=ada,ou=people"), s.dn("uid=bob,ou=people")],
                },
            )
        ]
    )
    (tmp_path / "ldap-password").write_text(SERVICE_PASSWORD + "\n")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def scim(tmp_path: Path) -> Iterator[ScimServer]:
    with scim_server(tmp_path) as s:
        yield s


procs = pytest.fixture(daemons)


def run(d: DaemonProc, ident: str, job_type: str) -> dict[str, Any]:
    r = d.client().post("/api/sync/jobs", json={"integrationId": ident, "type": job_type})
    assert r.status_code == 202, r.text
    job = wait_job(d.client(), r.json()["jobId"], timeout=120)
    assert job["status"] == "completed", (job, d.log.read_text()[-3000:])
    return job


def users(scim: ScimServer) -> dict[str, dict[str, Any]]:
    return {u["userName"]: u for u in scim.all("/Users")}


def staff_members(scim: ScimServer) -> list[str]:
    (group,) = [g for g in scim.all("/Groups") if g["displayName"] == "staff"]
    by_id = {u["id"]: u["userName"] for u in scim.all("/Users")}
    return sorted(by_id[m["value"]] for m in group.get("members", []))


def test_ldap_to_scim_users_groups_renames_memberships_and_deletions(
    tmp_path: Path, slapd: Slapd, scim: ScimServer, procs: list[DaemonProc]
) -> None:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "scim-token").write_text(scim.token + "\n")
    (tmp_path / "config.toml").write_text(
        header()
        + """
[integrations.dir]
entity_types = ["user", "group"]
interval = "1h"
jitter = "0s"
batch_size = 2
schema = "schema.json"
"""
        + source_table(slapd, "dir")
        + f"""
[integrations.dir.target]
connector = "scim"
url = "{scim.url}"
token_file = "scim-token"
"""
    )
    d = DaemonProc(tmp_path)
    procs.append(d)
    d.start()
    job = wait_job(d.client(), first_job(d.client(), "dir")["id"], timeout=120)
    assert job["status"] == "completed", job
    before = users(scim)
    assert sorted(before) == sorted(PEOPLE)
    assert before["ada"]["emails"] == [{"type": "work", "value": "ada@example.org"}]
    assert staff_members(scim) == ["ada", "bob"]

    # A rename (the id stays), a membership change, a deletion; then an incremental pass.
    slapd.rename(slapd.dn("uid=carl,ou=people"), "uid=karl")
    slapd.modify(STAFF, {"member": [slapd.dn("uid=ada,ou=people"), slapd.dn("uid=karl,ou=people")]})
    slapd.delete(slapd.dn("uid=dora,ou=people"))
    job = run(d, "dir", "incremental_sync")
    after = users(scim)
    assert sorted(after) == ["ada", "bob", "emil", "karl"]
    assert after["karl"]["id"] == before["carl"]["id"]  # updated, not made again
    assert after["karl"]["externalId"] == before["carl"]["externalId"]
    assert staff_members(scim) == ["ada", "karl"]
    assert job["stats"]["deleted"] >= 1

    # Nothing changed: nothing is written.
    job = run(d, "dir", "incremental_sync")
    stats = job["stats"]
    assert (stats["created"], stats["updated"], stats["deleted"]) == (0, 0, 0)
    job = run(d, "dir", "full_sync")
    stats = job["stats"]
    assert (stats["created"], stats["updated"], stats["deleted"]) == (0, 0, 0)


def test_ldap_to_jsonl_writes_every_entry_with_its_dn(
    tmp_path: Path, slapd: Slapd, procs: list[DaemonProc]
) -> None:
    (tmp_path / "config.toml").write_text(
        header()
        + """
[integrations.dir]
entity_types = ["user", "group"]
interval = "1h"
jitter = "0s"
batch_size = 2
"""
        + source_table(slapd, "dir")
        + """
[integrations.dir.target]
connector = "jsonl"
paths = { user = "out/people.jsonl", group = "out/groups.jsonl" }
"""
    )
    d = DaemonProc(tmp_path)
    procs.append(d)
    d.start()
    job = wait_job(d.client(), first_job(d.client(), "dir")["id"], timeout=120)
    assert job["status"] == "completed", job

    def lines(name: str) -> list[dict[str, Any]]:
        path = tmp_path / "out" / name
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    people = {p["uid"][0]: p for p in lines("people.jsonl")}
    assert sorted(people) == sorted(PEOPLE)
    assert people["ada"]["dn"] == slapd.dn("uid=ada,ou=people")
    (group,) = lines("groups.jsonl")
    ids = slapd.people(["entryUUID"])
    assert sorted(group["member"]) == sorted(
        ids[slapd.dn(f"uid={u},ou=people")]["entryUUID"][0] for u in ("ada", "bob")
    )

    slapd.delete(slapd.dn("uid=emil,ou=people"))
    slapd.modify(slapd.dn("uid=bob,ou=people"), {"displayName": "Robert"})
    run(d, "dir", "incremental_sync")
    people = {p["uid"][0]: p for p in lines("people.jsonl")}
    assert "emil" not in people and people["bob"]["displayName"] == "Robert"
