"""File → SCIM: a real daemon process syncing an HR export into a real scim2-server."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .daemonproc import DaemonProc, daemons, first_job, wait_job
from .scimserver import ScimServer, scim_server
from .test_matching import GROUPS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
DEPARTMENTS = ("Engineering", "Research", "Sales", "Support", "Finance")


def person(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"E{i:05d}",
        "givenName": f"Given{i}",
        "familyName": f"Family{i}",
        "mail": f"Person.{i}@Example.org",
        "department": DEPARTMENTS[i % len(DEPARTMENTS)],
        "status": "terminated" if i % 7 == 3 else "active",
        **extra,
    }


def write_hr(root: Path, people: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(p) + "\n" for p in people)
    (root / "hr.jsonl").write_text(text)


def schema(**changes: Any) -> dict[str, Any]:
    data = json.loads((EXAMPLES / "hr-scim-schema.json").read_text())
    data["objectMappings"][0].update(changes)
    return data


def config(
    server: ScimServer,
    *,
    batch_size: int = 50,
    extra: str = "",
    groups: bool = False,
    target_extra: str = "",
) -> str:
    types = '["user", "group"]' if groups else '["user"]'
    paths = '{ user = "hr.jsonl", group = "groups.jsonl" }' if groups else '{ user = "hr.jsonl" }'
    return f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"

[integrations.hr]
entity_types = {types}
interval = "1h"
jitter = "0s"
batch_size = {batch_size}
schema = "schema.json"
{extra}
[integrations.hr.source]
connector = "jsonl"
paths = {paths}
[integrations.hr.target]
connector = "scim"
url = "{server.url}"
token_file = "scim-token"
{target_extra}
[integrations.hr.quarantine]
escalation = ["10m", "30m"]
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ScimServer]:
    with scim_server(tmp_path) as s:
        yield s


procs = pytest.fixture(daemons)


def start(
    root: Path,
    server: ScimServer,
    procs: list[DaemonProc],
    people: list[dict[str, Any]],
    *,
    token: str | None = None,
    the_schema: dict[str, Any] | None = None,
    **kwargs: Any,
) -> DaemonProc:
    write_hr(root, people)
    (root / "schema.json").write_text(json.dumps(the_schema or schema()))
    (root / "scim-token").write_text((token or server.token) + "\n")
    (root / "config.toml").write_text(config(server, **kwargs))
    d = DaemonProc(root)
    procs.append(d)
    return d.start()


def run(d: DaemonProc, job_type: str = "full_sync", **options: Any) -> dict[str, Any]:
    r = d.client().post(
        "/api/sync/jobs", json={"integrationId": "hr", "type": job_type, "options": options}
    )
    assert r.status_code == 202, r.text
    return wait_job(d.client(), r.json()["jobId"], timeout=120)


def by_user_name(server: ScimServer) -> dict[str, dict[str, Any]]:
    return {u["userName"]: u for u in server.all()}


def expected(people: list[dict[str, Any]]) -> dict[str, bool]:
    """userName → active, for the people in scope."""
    return {
        p["mail"].lower(): p["status"] == "active" for p in people if p["department"] != "Finance"
    }


def test_file_to_scim_creates_updates_disables_and_deletes(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    people = [person(i) for i in range(40)]
    d = start(tmp_path, server, procs, people, the_schema=schema(deleteAfter="3s"))
    job = wait_job(d.client(), first_job(d.client(), "hr")["id"], timeout=120)
    assert job["status"] == "completed", job
    users = by_user_name(server)
    assert {n: u["active"] for n, u in users.items()} == expected(people)
    ada = users["person.1@example.org"]
    assert ada["name"] == {"givenName": "Given1", "familyName": "Family1"}
    assert ada["emails"] == [{"type": "work", "value": "person.1@example.org"}]
    assert ada[ENTERPRISE]["department"] == DEPARTMENTS[1] and ada["externalId"] == "E00001"
    assert job["stats"]["created"] == len(expected(people))

    # Nothing changed: nothing is written.
    again = run(d)
    assert (again["stats"]["created"], again["stats"]["updated"], again["stats"]["deleted"]) == (
        0,
        0,
        0,
    )

    # An update, one person leaving the scope, one leaving the source.
    people[1]["familyName"] = "Lovelace"
    people[2]["department"] = "Finance"
    gone = people.pop(5)
    write_hr(tmp_path, people)
    job = run(d)
    assert job["status"] == "completed", job
    users = by_user_name(server)
    assert users["person.1@example.org"]["name"]["familyName"] == "Lovelace"
    assert users["person.2@example.org"]["active"] is False  # disabled, not deleted
    assert users[gone["mail"].lower()]["active"] is False
    assert job["stats"]["updated"] == 1 and job["stats"]["disabled"] == 2
    assert job["stats"]["deleted"] == 0

    # After the grace period, a full pass deletes what stayed disabled.
    time.sleep(3.2)
    job = run(d)
    assert job["status"] == "completed", job
    users = by_user_name(server)
    assert "person.2@example.org" not in users and gone["mail"].lower() not in users
    assert {n: u["active"] for n, u in users.items()} == expected(people)


def test_the_deletion_threshold_trips_and_restart_force_deletes_approves(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    people = [person(i) for i in range(30)]
    d = start(
        tmp_path, server, procs, people, extra="[integrations.hr.deletion_threshold]\ncount = 3\n"
    )
    wait_job(d.client(), first_job(d.client(), "hr")["id"], timeout=120)
    write_hr(tmp_path, people[:20])  # 10 people gone, of whom 8 are in scope
    job = run(d)
    assert job["status"] == "failed" and job["errorCode"] == "TooManyDeletes"
    status = d.client().get("/api/sync/integrations/hr").json()["status"]
    assert status["code"] == "Quarantine" and status["quarantine"]["reason"] == "TooManyDeletes"
    assert all(u["active"] == expected(people)[n] for n, u in by_user_name(server).items())
    r = d.client().post(
        "/api/sync/integrations/hr/restart", json={"criteria": {"resetScope": "ForceDeletes"}}
    )
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        users = by_user_name(server)
        if sum(not u["active"] for u in users.values()) == sum(
            not a for a in expected(people).values()
        ) + len(expected(people[20:])):
            break
        time.sleep(0.1)
    for p in people[20:]:
        if p["department"] != "Finance":
            assert users[p["mail"].lower()]["active"] is False
    status = d.client().get("/api/sync/integrations/hr").json()["status"]
    assert status["quarantine"] is None


def test_a_rejected_token_quarantines_and_start_lifts_it(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    people = [person(i) for i in range(10)]
    d = start(tmp_path, server, procs, people, token="not-the-token")
    job = wait_job(d.client(), first_job(d.client(), "hr")["id"])
    assert job["status"] == "failed" and job["errorCode"] == "CredentialsRejected"
    assert "not-the-token" not in json.dumps(job) and "not-the-token" not in d.log.read_text()
    status = d.client().get("/api/sync/integrations/hr").json()["status"]
    q = status["quarantine"]
    assert status["code"] == "Quarantine" and q["reason"] == "CredentialsRejected"
    from datetime import datetime, timedelta

    began, nxt = (
        datetime.fromisoformat(q[k].replace("Z", "+00:00")) for k in ("currentBegan", "nextAttempt")
    )
    assert timedelta(minutes=9) < nxt - began <= timedelta(minutes=11)  # escalation[0] = 10m
    job = run(d)  # an attempt in quarantine that fails again escalates: 30m next
    assert job["errorCode"] == "CredentialsRejected"
    q = d.client().get("/api/sync/integrations/hr").json()["status"]["quarantine"]
    began, nxt = (
        datetime.fromisoformat(q[k].replace("Z", "+00:00")) for k in ("currentBegan", "nextAttempt")
    )
    assert q["seriesCount"] == 2 and timedelta(minutes=29) < nxt - began <= timedelta(minutes=31)
    assert server.all() == []
    (tmp_path / "scim-token").write_text(server.token)  # the operator fixes the token file
    r = d.client().post("/api/sync/integrations/hr/start", json={})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = d.client().get("/api/sync/integrations/hr").json()["status"]
        if status["quarantine"] is None and status["lastSuccessfulExecution"]:
            break
        time.sleep(0.1)
    assert status["quarantine"] is None and status["code"] == "Active"
    assert set(by_user_name(server)) == set(expected(people))


def test_an_ambiguous_match_is_escrowed_and_retried_once_resolved(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    mappings = schema()["objectMappings"][0]["attributeMappings"]
    for a in mappings:  # match by employee id first, then by userName
        if a["targetAttributeName"] == "externalId":
            a["matchingPriority"] = 1
        elif a["targetAttributeName"] == "userName":
            a["matchingPriority"] = 2
    the_schema = schema(attributeMappings=mappings)
    core = "urn:ietf:params:scim:schemas:core:2.0:User"
    one = server.post("/Users", {"schemas": [core], "userName": "old.a", "externalId": "E00001"})
    two = server.post("/Users", {"schemas": [core], "userName": "old.b", "externalId": "E00001"})
    people = [person(i) for i in range(5)]
    d = start(tmp_path, server, procs, people, the_schema=the_schema)
    job = wait_job(d.client(), first_job(d.client(), "hr")["id"])
    escrows = d.client().get("/api/sync/integrations/hr/escrows").json()["escrows"]
    assert [e["objectId"] for e in escrows] == ["E00001"], escrows
    assert "ambiguous match: 2 User objects" in escrows[0]["reason"]
    assert job["stats"]["errors"] == 1 and "person.1@example.org" not in by_user_name(server)
    with server.client() as c:  # someone removes the duplicate
        assert c.delete(f"/Users/{two['id']}").status_code == 204
    out = d.ctl("escrow", "retry", "hr", "user", "E00001")
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and d.client().get("/api/sync/integrations/hr/escrows").json()["escrows"]
    ):
        time.sleep(0.1)
    users = by_user_name(server)
    assert users["person.1@example.org"]["id"] == one["id"]  # matched and updated, not created
    assert "old.a" not in users


def test_provision_on_demand_and_its_dry_run(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    people = [person(i) for i in range(6)]
    d = start(tmp_path, server, procs, people)
    wait_job(d.client(), first_job(d.client(), "hr")["id"])
    people.append(person(100, familyName="Hopper"))
    write_hr(tmp_path, people)
    out = d.ctl("provision", "hr", "E00100", "--dry-run")
    assert out.returncode == 0, out.stderr
    for word in (
        "import",
        "scoping",
        "inScope",
        "matching",
        "noMatch",
        "action",
        "create",
        "userName='person.100@example.org'",
        "dry run",
    ):
        assert word in out.stdout, out.stdout
    assert "person.100@example.org" not in by_user_name(server)
    r = (
        d.client()
        .post("/api/sync/integrations/hr/provision-on-demand", json={"objectId": "E00100"})
        .json()
    )
    assert [(s["step"], s["status"]) for s in r["steps"]] == [
        ("import", "ok"),
        ("scoping", "inScope"),
        ("matching", "noMatch"),
        ("action", "create"),
        ("export", "ok"),
    ]
    assert "person.100@example.org" in by_user_name(server)
    # The link is remembered: the next run has nothing to do for it.
    job = run(d, "incremental_sync")
    assert job["stats"]["created"] == 0
    again = (
        d.client()
        .post(
            "/api/sync/integrations/hr/provision-on-demand",
            json={"objectId": "E00100", "dryRun": True},
        )
        .json()
    )
    assert [(s["step"], s["status"]) for s in again["steps"]][2:] == [
        ("matching", "linked"),
        ("action", "none"),
    ]
    bad = d.client().post("/api/sync/integrations/hr/provision-on-demand", json={"object": "x"})
    assert bad.status_code == 422 and "objectId" in bad.text
    missing = (
        d.client()
        .post("/api/sync/integrations/hr/provision-on-demand", json={"objectId": "nobody"})
        .json()
    )
    assert missing["steps"][0]["status"] == "notFound"


def test_a_plan_lists_changes_and_applies_nothing(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    people = [person(i) for i in range(12)]
    d = start(tmp_path, server, procs, people)
    wait_job(d.client(), first_job(d.client(), "hr")["id"])
    before = by_user_name(server)
    people[1]["familyName"] = "Lovelace"
    people[2]["department"] = "Finance"
    people.append(person(200))
    write_hr(tmp_path, people)
    out = d.ctl("plan", "hr")
    assert out.returncode == 0, out.stderr
    assert "1 create, 1 disable, 1 update" in out.stdout, out.stdout
    assert "name.familyName: 'Family1' -> 'Lovelace'" in out.stdout
    assert by_user_name(server) == before
    data = json.loads(d.ctl("--json", "plan", "hr").stdout)
    assert data["summary"] == {"create": 1, "disable": 1, "update": 1}
    # The plan changed nothing: a real run now does exactly what it said.
    job = run(d)
    s = job["stats"]
    assert (s["created"], s["updated"], s["disabled"], s["deleted"]) == (1, 1, 1, 0)
    not_a_plan = d.client().get(f"/api/sync/jobs/{job['id']}/plan")
    assert not_a_plan.status_code == 409 and "not a dry run" in not_a_plan.text
    assert d.client().get("/api/sync/jobs/nope/plan").status_code == 404
    bad = d.client().get(f"/api/sync/jobs/{job['id']}/plan", params={"limit": "many"})
    assert bad.status_code == 422 and "limit" in bad.text


def test_kill_9_during_a_sync_into_scim_leaves_each_user_exactly_once(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    # 20 batches, killed after 5 or more: the kill lands mid-run with 15 batches to spare.
    people = [person(i) for i in range(1000)]
    d = start(tmp_path, server, procs, people, batch_size=50)
    job_id = first_job(d.client(), "hr")["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if d.client().get(f"/api/sync/jobs/{job_id}").json()["progress"] >= 25:
            break
        time.sleep(0.01)
    d.kill()  # SIGKILL: no checkpoint, no goodbye, a batch may be half applied
    written = len(server.all())
    assert 0 < written < len(expected(people))
    again = DaemonProc(tmp_path)
    procs.append(again)
    again.start()  # the interrupted job resumes from its last checkpoint
    job = wait_job(again.client(), job_id, timeout=300)
    assert job["status"] == "completed", job
    users = server.all()
    assert sorted(u["userName"] for u in users) == sorted(expected(people))
    assert len({u["externalId"] for u in users}) == len(users)  # none twice
    assert again.client().get("/api/sync/integrations/hr/escrows").json()["escrows"] == []
    # The resumed job replayed at most the batch in flight: it did not start over.
    assert job["stats"]["created"] + job["stats"]["updated"] < len(expected(people)) + 50


def test_a_schema_edited_in_its_file_makes_the_next_run_a_full_pass(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    people = [person(i) for i in range(10)]
    d = start(tmp_path, server, procs, people)
    wait_job(d.client(), first_job(d.client(), "hr")["id"])
    edited = schema()
    for a in edited["objectMappings"][0]["attributeMappings"]:
        if a["targetAttributeName"] == "displayName":
            a["source"]["expression"] = 'Join(", ", [familyName], [givenName])'
    (tmp_path / "schema.json").write_text(json.dumps(edited))
    assert d.ctl("reload").returncode == 0
    job = run(d, "incremental_sync")  # nothing changed in the source...
    assert job["stats"]["updated"] == len(expected(people))  # ...but every user is re-mapped
    logs = d.client().get(f"/api/sync/jobs/{job['id']}").json()["logs"]
    assert any("the schema changed" in e["message"] for e in logs)
    assert by_user_name(server)["person.1@example.org"]["displayName"] == "Family1, Given1"
    job = run(d, "incremental_sync")  # the full pass recorded the schema: incremental again
    logs = d.client().get(f"/api/sync/jobs/{job['id']}").json()["logs"]
    assert job["stats"]["updated"] == 0 and not any("schema changed" in e["message"] for e in logs)


def test_groups_are_provisioned_with_members_mapped_through_the_links(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    people = [person(i) for i in range(8)]  # person 4 (Finance) is never provisioned
    groups = [
        {"id": "G1", "name": "Engineering leads", "members": ["E00000", "E00001", "E00004"]},
        {"id": "G2", "name": "Everyone else", "members": ["E00002", "E00003"]},
    ]
    (tmp_path / "groups.jsonl").write_text("".join(json.dumps(g) + "\n" for g in groups))
    the_schema = schema()
    the_schema["objectMappings"].append(copy.deepcopy(GROUPS))  # members → referencedObject user
    d = start(tmp_path, server, procs, people, the_schema=the_schema, groups=True)
    job = wait_job(d.client(), first_job(d.client(), "hr")["id"], timeout=120)
    assert job["status"] == "completed", job
    ids = {u["externalId"]: u["id"] for u in server.all()}
    got = {
        g["displayName"]: {m["value"] for m in g.get("members", [])} for g in server.all("/Groups")
    }
    assert got == {
        "Engineering leads": {ids["E00000"], ids["E00001"]},  # E00004 is out of scope
        "Everyone else": {ids["E00002"], ids["E00003"]},
    }
    # A membership change is a PATCH of the group's members.
    groups[1]["members"] = ["E00002", "E00005"]
    (tmp_path / "groups.jsonl").write_text("".join(json.dumps(g) + "\n" for g in groups))
    job = run(d)
    assert job["stats"]["updated"] == 1, job
    got = {
        g["displayName"]: {m["value"] for m in g.get("members", [])} for g in server.all("/Groups")
    }
    assert got["Everyone else"] == {ids["E00002"], ids["E00005"]}


def test_deprovisioned_users_leave_their_groups_in_the_same_run(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    people = [person(i) for i in range(8)]
    groups = [
        {"id": "G1", "name": "Engineering leads", "members": ["E00000", "E00001"]},
        {"id": "G2", "name": "Everyone else", "members": ["E00002", "E00003", "E00005"]},
    ]

    def write_groups() -> None:
        (tmp_path / "groups.jsonl").write_text("".join(json.dumps(g) + "\n" for g in groups))

    def members() -> dict[str, set[str]]:
        names = {u["id"]: u["externalId"] for u in server.all()}
        return {
            g["displayName"]: {names[m["value"]] for m in g.get("members", [])}
            for g in server.all("/Groups")
        }

    write_groups()
    the_schema = schema()
    the_schema["objectMappings"].append(copy.deepcopy(GROUPS))
    d = start(tmp_path, server, procs, people, the_schema=the_schema, groups=True)
    job = wait_job(d.client(), first_job(d.client(), "hr")["id"], timeout=120)
    assert job["status"] == "completed", job
    assert members() == {
        "Engineering leads": {"E00000", "E00001"},
        "Everyone else": {"E00002", "E00003", "E00005"},
    }
    # Person 1 leaves the scope: disabled, and out of its group in the same incremental
    # run, although the groups did not change.
    people[1]["department"] = "Finance"
    write_hr(tmp_path, people)
    job = run(d, "incremental_sync")
    assert job["status"] == "completed", job
    assert (job["stats"]["disabled"], job["stats"]["deleted"], job["stats"]["updated"]) == (1, 0, 1)
    assert by_user_name(server)["person.1@example.org"]["active"] is False
    assert members()["Engineering leads"] == {"E00000"}
    # Person 2 leaves the source: the full pass disables it and takes it out of its group.
    gone = people.pop(2)
    write_hr(tmp_path, people)
    job = run(d)
    assert (job["stats"]["disabled"], job["stats"]["deleted"]) == (1, 0), job
    assert by_user_name(server)[gone["mail"].lower()]["active"] is False
    assert members()["Everyone else"] == {"E00003", "E00005"}
    # A new group listing a disabled user: it is not written into its members.
    groups.append({"id": "G3", "name": "Newcomers", "members": ["E00001", "E00006"]})
    write_groups()
    job = run(d, "incremental_sync")
    assert job["status"] == "completed", job
    assert members()["Newcomers"] == {"E00006"}


def writes(server: ScimServer) -> list[str]:
    """The write requests scim2-server logged (POST, PUT, PATCH, DELETE), in order."""
    log = (server.root / f"scim-{server.port}.log").read_text()
    return [
        line.split('"')[1]
        for line in log.splitlines()
        if '"POST ' in line or '"PUT ' in line or '"PATCH ' in line or '"DELETE ' in line
    ]


def test_a_run_that_escrows_most_objects_reads_as_entry_level_errors_and_escrows_wait(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    # 33 people in scope; the server refuses 28 of them (a number as givenName: 400).
    people = [person(i, department="Engineering") for i in range(33)]
    for p in people[5:]:
        p["givenName"] = 5
    d = start(tmp_path, server, procs, people)
    job = wait_job(d.client(), first_job(d.client(), "hr")["id"], timeout=120)
    assert job["status"] == "completed" and job["completedWithErrors"] is True, job
    assert (job["stats"]["created"], job["stats"]["errors"]) == (5, 28)
    one = d.client().get("/api/sync/integrations/hr").json()["status"]
    last = one["lastExecution"]
    assert last["state"] == "EntryLevelErrors" and last["countEscrowed"] == 28
    assert last["error"]["code"] == "EntryLevelErrors"
    assert "28 of 33 objects not synced" in last["error"]["message"]
    assert one["lastSuccessfulExecution"] is None and one["code"] == "Active"
    (entry,) = d.client().get("/api/sync/integrations/status").json()["integrations"]
    assert entry["lastResult"] == "EntryLevelErrors" and "28 objects stay escrowed" in (
        entry["lastError"] or ""
    )
    out = d.ctl("status")
    assert out.returncode == 0 and "EntryLevelErrors" in out.stdout, out.stdout + out.stderr
    out = d.ctl("job", job["id"])
    assert "completed with errors" in out.stdout, out.stdout
    escrows = d.client().get("/api/sync/integrations/hr/escrows").json()["escrows"]
    assert len(escrows) == 28 and {e["attempts"] for e in escrows} == {1}

    # A full pass over unchanged data before the retries are due: nothing is sent for
    # them, their backoff stands, and the run still does not read as healthy.
    before = len(writes(server))
    job = run(d)
    assert job["status"] == "completed" and job["stats"]["errors"] == 28, job
    assert writes(server)[before:] == []
    again = d.client().get("/api/sync/integrations/hr/escrows").json()["escrows"]
    assert again == escrows
    entry = d.client().get("/api/sync/integrations/status").json()["integrations"][0]
    assert entry["lastResult"] == "EntryLevelErrors"

    # Fixed in the source, escrows forgotten: a clean run is Succeeded again.
    for p in people:
        p["givenName"] = "Given"
    write_hr(tmp_path, people)
    r = d.client().post(
        "/api/sync/integrations/hr/restart", json={"criteria": {"resetScope": ["Escrows"]}}
    )
    assert r.status_code == 202, r.text
    job = wait_job(d.client(), r.json()["jobId"], timeout=120)
    assert job["status"] == "completed" and job["completedWithErrors"] is False, job
    one = d.client().get("/api/sync/integrations/hr").json()["status"]
    assert one["lastExecution"]["state"] == "Succeeded" and one["lastExecution"]["error"] is None
    assert one["lastSuccessfulExecution"]["activityIdentifier"] == job["id"]
    assert len(server.all()) == 33


def test_a_terminated_person_who_leaves_the_scope_and_returns_stays_inactive(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    people = [person(i) for i in range(5)]  # person 3 is terminated (active false)
    d = start(tmp_path, server, procs, people)
    wait_job(d.client(), first_job(d.client(), "hr")["id"], timeout=120)
    name = people[3]["mail"].lower()
    assert by_user_name(server)[name]["active"] is False
    home = people[3]["department"]
    people[3]["department"] = "Finance"  # leaves the scope: disabled
    write_hr(tmp_path, people)
    job = run(d)
    assert job["status"] == "completed" and job["stats"]["errors"] == 0, job
    people[3]["department"] = home  # back in scope, still terminated
    write_hr(tmp_path, people)
    job = run(d)
    assert job["status"] == "completed" and job["stats"]["updated"] == 1, job
    assert by_user_name(server)[name]["active"] is False
    assert {n: u["active"] for n, u in by_user_name(server).items()} == expected(people)


def test_groups_whose_members_the_server_drops_are_escrowed_not_left_behind(
    tmp_path: Path, server: ScimServer, procs: list[DaemonProc]
) -> None:
    """A server whose Group schema makes `members` read-only answers 201 and drops them
    (RFC 7644 §3.3 ignores read-only attributes sent)."""
    schemas = server.served_schemas()
    for s in schemas:
        for a in s["attributes"] if s["id"].endswith(":Group") else []:
            if a["name"] == "members":
                a["mutability"] = "readOnly"
                for sub in a.get("subAttributes", []):
                    sub["mutability"] = "readOnly"
    people = [person(i) for i in range(6)]
    groups = [
        {"id": "G1", "name": "Engineering leads", "members": ["E00000", "E00001"]},
        {"id": "G2", "name": "Nobody yet", "members": []},
    ]
    (tmp_path / "groups.jsonl").write_text("".join(json.dumps(g) + "\n" for g in groups))
    the_schema = schema()
    the_schema["objectMappings"].append(copy.deepcopy(GROUPS))
    with scim_server(tmp_path, schemas=schemas) as strict:
        d = start(tmp_path, strict, procs, people, the_schema=the_schema, groups=True)
        job = wait_job(d.client(), first_job(d.client(), "hr")["id"], timeout=120)
        escrows = d.client().get("/api/sync/integrations/hr/escrows").json()["escrows"]
        assert [e["objectId"] for e in escrows] == ["G1"], escrows
        reason = escrows[0]["reason"]
        assert reason.startswith("the server ignored `members`"), reason
        assert "'members' is read-only" in reason and "the Group it created was deleted" in reason
        assert [g["displayName"] for g in strict.all("/Groups")] == ["Nobody yet"]
        assert set(by_user_name(strict)) == set(expected(people))
        assert job["stats"]["errors"] == 1, job


def test_updates_a_server_does_not_take_by_patch_go_by_put(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    """`update = "patch"` against a server without PATCH: it answers 501, and sluiced
    reads, merges and PUTs instead of failing the run."""
    config = {
        "patch": {"supported": False},
        "bulk": {"supported": False},
        "filter": {"supported": True, "maxResults": 100},
        "etag": {"supported": True},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "authenticationSchemes": [],
    }
    people = [person(i) for i in range(6)]
    with scim_server(tmp_path, service_provider_config=config) as server:
        d = start(tmp_path, server, procs, people, target_extra='update = "patch"')
        job = wait_job(d.client(), first_job(d.client(), "hr")["id"], timeout=120)
        assert job["status"] == "completed", job
        people[1]["familyName"] = "Lovelace"
        people[2]["department"] = "Finance"  # leaves the scope: disabled
        write_hr(tmp_path, people)
        job = run(d)
        assert job["status"] == "completed" and job["stats"]["errors"] == 0, job
        users = by_user_name(server)
        assert users["person.1@example.org"]["name"]["familyName"] == "Lovelace"
        assert users["person.2@example.org"]["active"] is False
