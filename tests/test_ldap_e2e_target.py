"""JSONL → LDAP: a real daemon process syncing an HR export and its groups into a real
slapd through a schema (members mapped with ``referencedObject``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from .daemonproc import DaemonProc, daemons, first_job, wait_job
from .slapd import SERVICE_PASSWORD, Slapd, skip_reason

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]

PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"

SCHEMA: dict[str, Any] = {
    "objectMappings": [
        {
            "sourceObjectName": "user",
            "targetObjectName": "user",
            "flowTypes": ["Add", "Update", "Delete"],
            "attributeMappings": [
                {
                    "targetAttributeName": "uid",
                    "source": {"type": "Direct", "name": "login"},
                    "matchingPriority": 1,
                },
                {
                    "targetAttributeName": "cn",
                    "source": {"type": "Expression", "expression": 'Join(" ", [given], [family])'},
                },
                {"targetAttributeName": "givenName", "source": {"type": "Direct", "name": "given"}},
                {"targetAttributeName": "sn", "source": {"type": "Direct", "name": "family"}},
                {"targetAttributeName": "mail", "source": {"type": "Direct", "name": "mail"}},
                {
                    "targetAttributeName": "employeeNumber",
                    "source": {"type": "Direct", "name": "id"},
                },
                {
                    "targetAttributeName": "displayName",
                    "source": {"type": "Direct", "name": "nicknames"},
                },
            ],
        },
        {
            "sourceObjectName": "group",
            "targetObjectName": "group",
            "flowTypes": ["Add", "Update", "Delete"],
            "attributeMappings": [
                {
                    "targetAttributeName": "cn",
                    "source": {"type": "Direct", "name": "name"},
                    "matchingPriority": 1,
                },
                {
                    "targetAttributeName": "member",
                    "source": {"type": "Direct", "name": "members"},
                    "referencedObject": "user",
                },
            ],
        },
    ]
}


def person(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"E{i:05d}",
        "login": f"user{i}",
        "given": f"Given{i}",
        "family": f"Family{i}",
        "mail": f"user{i}@example.org",
        **extra,
    }


def config(server: Slapd, *, batch_size: int = 50) -> str:
    return f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"

[integrations.hr]
entity_types = ["user", "group"]
interval = "1h"
jitter = "0s"
batch_size = {batch_size}
schema = "schema.json"
[integrations.hr.deletion_threshold]
enabled = false
[integrations.hr.source]
connector = "jsonl"
paths = {{ user = "people.jsonl", group = "groups.jsonl" }}
[integrations.hr.target]
connector = "ldap"
url = "{server.url}"
bind_dn = "{server.service_dn}"
password_file = "ldap-password"
timeout = "10s"
[integrations.hr.target.entities.user]
base = "{PEOPLE}"
filter = "(objectClass=inetOrgPerson)"
rdn_attribute = "uid"
object_classes = ["inetOrgPerson"]
move_to = "ou=disabled,dc=example,dc=org"
[integrations.hr.target.entities.group]
base = "{GROUPS}"
filter = "(objectClass=groupOfNames)"
rdn_attribute = "cn"
object_classes = ["groupOfNames"]
[integrations.hr.quarantine]
escalation = ["10m", "30m"]
"""


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


procs = pytest.fixture(daemons)


def start(
    root: Path,
    server: Slapd,
    procs: list[DaemonProc],
    people: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    *,
    password: str = SERVICE_PASSWORD,
    **kwargs: Any,
) -> DaemonProc:
    write_rows(root / "people.jsonl", people)
    write_rows(root / "groups.jsonl", groups)
    (root / "schema.json").write_text(json.dumps(SCHEMA))
    (root / "ldap-password").write_text(password + "\n")
    (root / "config.toml").write_text(config(server, **kwargs))
    d = DaemonProc(root)
    procs.append(d)
    return d.start()


def run(d: DaemonProc, job_type: str = "full_sync") -> dict[str, Any]:
    r = d.client().post("/api/sync/jobs", json={"integrationId": "hr", "type": job_type})
    assert r.status_code == 202, r.text
    return wait_job(d.client(), r.json()["jobId"], timeout=120)


def uuids(server: Slapd) -> dict[str, str]:
    """uid → entryUUID of the people."""
    found = server.people(["uid", "entryUUID"])
    return {e["uid"][0]: e["entryUUID"][0] for e in found.values()}


def members(server: Slapd) -> dict[str, set[str]]:
    return {e["cn"][0]: set(e.get("member", [])) for e in server.groups(["cn", "member"]).values()}


def test_jsonl_to_ldap_renames_deletes_escrows_and_keeps_groups_right(
    tmp_path: Path, slapd: Slapd, procs: list[DaemonProc]
) -> None:
    people = [person(i) for i in range(5)]
    groups = [
        {"id": "G1", "name": "staff", "members": ["E00000", "E00001", "E00002"]},
        {"id": "G2", "name": "leads", "members": ["E00001"]},
    ]
    d = start(tmp_path, slapd, procs, people, groups)
    job = wait_job(d.client(), first_job(d.client(), "hr")["id"], timeout=120)
    assert job["status"] == "completed" and job["stats"]["created"] == 7, job
    before = uuids(slapd)
    assert sorted(before) == [f"user{i}" for i in range(5)]
    entry = slapd.people()[f"uid=user1,{PEOPLE}"]
    assert entry["cn"] == ["Given1 Family1"] and entry["employeeNumber"] == ["E00001"]
    dn = f"uid={{}},{PEOPLE}".format
    assert members(slapd) == {
        "staff": {dn("user0"), dn("user1"), dn("user2")},
        "leads": {dn("user1")},
    }

    # user1 renamed, user3 gone from the export, a new person whose displayName (single-
    # valued in inetOrgPerson) the export gives twice: the server refuses that one.
    people[1]["login"] = "robert"
    del people[3]
    people.append(person(5, nicknames=["Five", "Fifth"]))
    write_rows(tmp_path / "people.jsonl", people)
    job = run(d)
    assert job["status"] == "completed" and job["completedWithErrors"] is True, job
    after = uuids(slapd)
    assert "user1" not in after and after["robert"] == before["user1"]  # modrdn: same entry
    assert "user3" not in after and "user5" not in after
    assert members(slapd) == {
        "staff": {dn("user0"), dn("robert"), dn("user2")},
        "leads": {dn("robert")},
    }
    (escrow,) = d.client().get("/api/sync/integrations/hr/escrows").json()["escrows"]
    assert (
        escrow["reason"].startswith("constraintViolation: ") and "displayName" in escrow["reason"]
    ), escrow

    # Nothing changed: nothing is written (the escrowed person is not due yet).
    job = run(d)
    stats = job["stats"]
    assert (stats["created"], stats["updated"], stats["deleted"]) == (0, 0, 0), job


def test_a_wrong_password_quarantines_the_integration(
    tmp_path: Path, slapd: Slapd, procs: list[DaemonProc]
) -> None:
    d = start(tmp_path, slapd, procs, [person(0)], [], password="not-the-password")
    job = wait_job(d.client(), first_job(d.client(), "hr")["id"])
    assert job["status"] == "failed" and job["errorCode"] == "CredentialsRejected", job
    assert "not-the-password" not in json.dumps(job)
    assert "not-the-password" not in d.log.read_text()
    status = d.client().get("/api/sync/integrations/hr").json()["status"]
    assert status["code"] == "Quarantine"
    assert status["quarantine"]["reason"] == "CredentialsRejected"
    assert uuids(slapd) == {}


def test_kill_9_during_a_sync_into_ldap_leaves_every_entry_exactly_once(
    tmp_path: Path, slapd: Slapd, procs: list[DaemonProc]
) -> None:
    # Large enough that the job is still running when the kill lands, even on a
    # loaded machine (the adds of a batch are pipelined: thousands a second).
    count = 4000
    people = [person(i) for i in range(count)]
    groups = [{"id": "G1", "name": "everyone", "members": [p["id"] for p in people[:100]]}]
    d = start(tmp_path, slapd, procs, people, groups, batch_size=50)
    job_id = first_job(d.client(), "hr")["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if d.client().get(f"/api/sync/jobs/{job_id}").json()["progress"] >= 25:
            break
        time.sleep(0.01)
    d.kill()  # SIGKILL: no checkpoint, no goodbye, a batch may be half applied
    written = len(uuids(slapd))
    assert 0 < written < count
    again = DaemonProc(tmp_path)
    procs.append(again)
    again.start()  # the interrupted job resumes from its last checkpoint
    job = wait_job(again.client(), job_id, timeout=300)
    assert job["status"] == "completed" and job["completedWithErrors"] is False, job
    found = slapd.people(["uid", "employeeNumber"])
    assert len(found) == count
    assert sorted(e["employeeNumber"][0] for e in found.values()) == [p["id"] for p in people]
    assert members(slapd) == {"everyone": {f"uid=user{i},{PEOPLE}" for i in range(100)}}
    assert again.client().get("/api/sync/integrations/hr/escrows").json()["escrows"] == []
    # The resumed job replayed at most the batch in flight: it did not start over.
    assert job["stats"]["created"] + job["stats"]["updated"] < count + 1 + 50
    # A run over the same data writes nothing.
    job = run(again)
    stats = job["stats"]
    assert (stats["created"], stats["updated"], stats["deleted"]) == (0, 0, 0), job
