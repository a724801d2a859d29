"""LDAP → LDAP: a real daemon process syncing one real slapd into another through a
schema (a user's ``manager`` and a group's ``member`` mapped with ``referencedObject``),
incremental passes by syncrepl, and kill -9 in the middle of a large sync."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .daemonproc import SLUICED, DaemonProc, daemons, first_job, wait_job
from .slapd import SERVICE_PASSWORD, Slapd, person, skip_reason

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]

PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"
#: Source people with this ``departmentNumber`` are outside the source filter.
OUTSIDE = "external"


def schema(deprovision: str = "delete") -> dict[str, Any]:
    return {
        "objectMappings": [
            {
                "sourceObjectName": "user",
                "targetObjectName": "user",
                "flowTypes": ["Add", "Update", "Delete"],
                "deprovision": deprovision,
                "attributeMappings": [
                    {
                        "targetAttributeName": "uid",
                        "source": {"type": "Direct", "name": "uid"},
                        "matchingPriority": 1,
                    },
                    {"targetAttributeName": "cn", "source": {"type": "Direct", "name": "cn"}},
                    {"targetAttributeName": "sn", "source": {"type": "Direct", "name": "sn"}},
                    {"targetAttributeName": "mail", "source": {"type": "Direct", "name": "mail"}},
                    {
                        "targetAttributeName": "telephoneNumber",
                        "source": {"type": "Direct", "name": "description"},
                    },
                    {
                        "targetAttributeName": "manager",
                        "source": {"type": "Direct", "name": "manager"},
                        "referencedObject": "user",
                    },
                ],
            },
            {
                "sourceObjectName": "group",
                "targetObjectName": "group",
                "flowTypes": ["Add", "Update", "Delete"],
                "deprovision": "delete",
                "attributeMappings": [
                    {
                        "targetAttributeName": "cn",
                        "source": {"type": "Direct", "name": "cn"},
                        "matchingPriority": 1,
                    },
                    {
                        "targetAttributeName": "member",
                        "source": {"type": "Direct", "name": "member"},
                        "referencedObject": "user",
                    },
                ],
            },
        ]
    }


def config(
    source: Slapd,
    target: Slapd,
    *,
    batch_size: int = 50,
    page_size: int = 100,
    disable: bool = False,
) -> str:
    how = 'disable = {attribute = "employeeType", value = "disabled"}' if disable else ""
    return f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
shutdown_grace = "20s"

[integrations.dirsync]
entity_types = ["user", "group"]
interval = "1h"
jitter = "0s"
batch_size = {batch_size}
schema = "schema.json"
[integrations.dirsync.deletion_threshold]
enabled = false
[integrations.dirsync.quarantine]
escalation = ["10m", "30m"]

[integrations.dirsync.source]
connector = "ldap"
url = "{source.url}"
bind_dn = "{source.service_dn}"
password_file = "source-password"
timeout = "10s"
page_size = {page_size}
incremental = "syncrepl"
[integrations.dirsync.source.entities.user]
base = "{PEOPLE}"
filter = "(&(objectClass=inetOrgPerson)(!(departmentNumber={OUTSIDE})))"
[integrations.dirsync.source.entities.group]
base = "{GROUPS}"
filter = "(objectClass=groupOfNames)"

[integrations.dirsync.target]
connector = "ldap"
url = "{target.url}"
bind_dn = "{target.service_dn}"
password_file = "target-password"
timeout = "10s"
[integrations.dirsync.target.entities.user]
base = "{PEOPLE}"
filter = "(objectClass=inetOrgPerson)"
rdn_attribute = "uid"
object_classes = ["inetOrgPerson"]
{how}
[integrations.dirsync.target.entities.group]
base = "{GROUPS}"
filter = "(objectClass=groupOfNames)"
rdn_attribute = "cn"
object_classes = ["groupOfNames"]
"""


def dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def gdn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


def group(cn: str, uids: list[str]) -> tuple[str, dict[str, Any]]:
    return gdn(cn), {"objectClass": ["groupOfNames"], "cn": cn, "member": [dn(u) for u in uids]}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Slapd, Slapd]]:
    """An empty source and target slapd (each seeded with its suffix and service account);
    the source keeps its groups' members right on a rename (refint), as a directory whose
    groups are read must."""
    source = Slapd(tmp_path, refint=True).start()
    try:
        target = Slapd(tmp_path).start()
        try:
            yield source, target
        finally:
            target.stop()
    finally:
        source.stop()


procs = pytest.fixture(daemons)


def start(
    root: Path,
    source: Slapd,
    target: Slapd,
    procs: list[DaemonProc],
    *,
    deprovision: str = "delete",
    password: str = SERVICE_PASSWORD,
    **kwargs: Any,
) -> DaemonProc:
    (root / "schema.json").write_text(json.dumps(schema(deprovision)))
    (root / "source-password").write_text(password + "\n")
    (root / "target-password").write_text(SERVICE_PASSWORD + "\n")
    (root / "config.toml").write_text(config(source, target, **kwargs))
    d = DaemonProc(root)
    procs.append(d)
    return d.start()


def run(d: DaemonProc, job_type: str = "incremental_sync") -> dict[str, Any]:
    r = d.client().post("/api/sync/jobs", json={"integrationId": "dirsync", "type": job_type})
    assert r.status_code == 202, r.text
    return wait_job(d.client(), r.json()["jobId"], timeout=180)


def completed(job: dict[str, Any], d: DaemonProc, *, errors: bool = False) -> dict[str, Any]:
    assert job["status"] == "completed", (job, d.log.read_text()[-3000:])
    assert job["completedWithErrors"] is errors, job
    return job


def written(job: dict[str, Any]) -> tuple[int, int, int]:
    stats = job["stats"]
    return stats["created"], stats["updated"], stats["deleted"]


def people(server: Slapd, *attrs: str) -> dict[str, dict[str, list[str]]]:
    """uid → the person's attributes (*attrs*, or every user attribute)."""
    found = server.people([*attrs, "uid"] if attrs else None)
    return {e["uid"][0]: e for e in found.values()}


def members(server: Slapd) -> dict[str, set[str]]:
    return {e["cn"][0]: set(e.get("member", [])) for e in server.groups(["cn", "member"]).values()}


def stamps(server: Slapd) -> dict[str, tuple[str, ...]]:
    """DN → (entryCSN, modifyTimestamp) of every entry under the suffix."""
    found = server.search(attrs=["entryCSN", "modifyTimestamp"])
    return {k: (v["entryCSN"][0], v["modifyTimestamp"][0]) for k, v in found.items()}


def escrows(d: DaemonProc) -> list[dict[str, Any]]:
    r = d.client().get("/api/sync/integrations/dirsync/escrows")
    return r.json()["escrows"]  # type: ignore[no-any-return]


def seed_small(source: Slapd) -> None:
    source.add_many(
        [
            person("boss", mail="boss@example.org", description="+49 30 1234"),
            *(
                person(u, mail=f"{u}@example.org", manager=dn("boss"))
                for u in ("ada", "bob", "carl", "dora", "emil")
            ),
            person("zed", mail="zed@example.org", departmentNumber=OUTSIDE),
            group("staff", ["ada", "bob", "carl"]),
            group("leads", ["boss", "carl"]),
        ]
    )


def test_ldap_to_ldap_full_sync_then_syncrepl_edits_renames_members_and_deletions(
    tmp_path: Path, servers: tuple[Slapd, Slapd], procs: list[DaemonProc]
) -> None:
    source, target = servers
    seed_small(source)
    d = start(tmp_path, source, target, procs)
    job = completed(wait_job(d.client(), first_job(d.client(), "dirsync")["id"], timeout=120), d)
    # 6 people in the filter and 2 groups; the 5 who report to boss, read before his
    # entry existed, are written again at the pass's end with their manager.
    assert written(job) == (8, 5, 0), job

    # Every attribute, and the members as DNs of the target (the managers: see
    # test_a_manager_provisioned_in_the_same_pass_is_written_by_that_pass).
    got = people(target)
    assert sorted(got) == ["ada", "bob", "boss", "carl", "dora", "emil"]  # not zed
    ada, boss = got["ada"], got["boss"]
    assert (ada["cn"], ada["sn"], ada["mail"]) == (["Ada"], ["Ada"], ["ada@example.org"])
    assert boss["telephoneNumber"] == ["+49 30 1234"] and "manager" not in boss
    assert members(target) == {
        "staff": {dn("ada"), dn("bob"), dn("carl")},
        "leads": {dn("boss"), dn("carl")},
    }
    uuids = {u: e["entryUUID"][0] for u, e in people(target, "entryUUID").items()}

    # The incremental passes read by syncrepl: validate says so (and below, the job log
    # shows an incremental pass that saw deletions).
    checked = d.ctl("validate", "dirsync")
    assert checked.returncode == 0, checked.stderr
    assert "user: incremental by syncrepl (RFC 4533)" in checked.stdout, checked.stdout
    assert "group: incremental by syncrepl (RFC 4533)" in checked.stdout, checked.stdout

    # An edit, a rename, a membership change, a deletion, one leaving the filter, and a
    # phone number the target's schema refuses (``#`` is no telephoneNumber character).
    source.modify(dn("ada"), {"mail": "ada.lovelace@example.org", "sn": "Lovelace"})
    source.rename(dn("carl"), "uid=karl")
    source.modify(gdn("staff"), {"member": [dn("ada"), dn("bob"), dn("emil")]})
    source.delete(dn("dora"))
    source.modify(dn("bob"), {"departmentNumber": OUTSIDE})
    source.modify(dn("emil"), {"description": "ext #12"})
    source.add_many([person("fay", mail="fay@example.org", manager=dn("karl"))])
    job = completed(run(d), d, errors=True)

    got = people(target, "entryUUID", "*")
    assert sorted(got) == ["ada", "boss", "emil", "fay", "karl"]
    assert got["ada"]["mail"] == ["ada.lovelace@example.org"] and got["ada"]["sn"] == ["Lovelace"]
    # modrdn, not delete + add: the same entry under its new name
    assert got["karl"]["entryUUID"] == [uuids["carl"]]
    assert got["fay"]["manager"] == [dn("karl")]
    assert "telephoneNumber" not in got["emil"]
    assert members(target) == {
        "staff": {dn("ada"), dn("emil")},  # bob left the filter: no member of any group
        "leads": {dn("boss"), dn("karl")},  # lists the renamed entry by its new DN
    }
    (escrow,) = escrows(d)
    assert escrow["reason"].startswith("invalidAttributeSyntax: "), escrow
    assert "telephoneNumber" in escrow["reason"], escrow
    # Deletions seen by an incremental pass: the source reported them (syncrepl's
    # deletes), as no timestamp filter can.
    events = [line.get("event") for line in d.log_lines() if line.get("job_id") == job["id"]]
    assert "user: incremental pass started" in events, events
    assert "user: 2 objects left the source or its scope; deprovisioning" in events, events

    # The source fixed and the escrow retried now (sluicectl): the entry syncs.
    source.modify(dn("emil"), {"description": "+49 30 5678"})
    retried = d.ctl("escrow", "retry", "dirsync", "user", escrow["objectId"], "--json")
    assert retried.returncode == 0, retried.stderr
    # A retry runs a job at once when none runs (else the next run retries it).
    started = json.loads(retried.stdout)["jobId"]
    completed(wait_job(d.client(), started, timeout=180) if started else run(d), d)
    assert people(target)["emil"]["telephoneNumber"] == ["+49 30 5678"]
    assert escrows(d) == []

    # Nothing changed: nothing is written, to the letter of the target's entries.
    before = stamps(target)
    job = completed(run(d), d)
    assert written(job) == (0, 0, 0), job
    assert stamps(target) == before
    job = completed(run(d, "full_sync"), d)
    assert written(job) == (0, 0, 0), job
    assert stamps(target) == before


def test_a_manager_provisioned_in_the_same_pass_is_written_by_that_pass(
    tmp_path: Path, servers: tuple[Slapd, Slapd], procs: list[DaemonProc]
) -> None:
    source, target = servers
    seed_small(source)
    d = start(tmp_path, source, target, procs)
    job = completed(wait_job(d.client(), first_job(d.client(), "dirsync")["id"], timeout=120), d)
    expected = {"boss": None, **{u: [dn("boss")] for u in ("ada", "bob", "carl", "dora", "emil")}}
    assert {u: e.get("manager") for u, e in people(target).items()} == expected
    events = [line.get("event") for line in d.log_lines() if line.get("job_id") == job["id"]]
    assert any("user: reading 5 objects again" in str(e) for e in events), events
    # Nothing is owed: the incremental pass after it writes nothing.
    job = completed(run(d), d)
    assert written(job) == (0, 0, 0), job
    assert {u: e.get("manager") for u, e in people(target).items()} == expected


def test_deprovision_disable_marks_entries_gone_from_the_source(
    tmp_path: Path, servers: tuple[Slapd, Slapd], procs: list[DaemonProc]
) -> None:
    source, target = servers
    seed_small(source)
    d = start(tmp_path, source, target, procs, deprovision="disable", disable=True)
    completed(wait_job(d.client(), first_job(d.client(), "dirsync")["id"], timeout=120), d)
    assert "employeeType" not in people(target)["dora"]

    source.delete(dn("dora"))
    source.modify(dn("bob"), {"departmentNumber": OUTSIDE})
    job = completed(run(d), d)
    assert job["stats"]["deleted"] == 0, job
    got = people(target)
    assert sorted(got) == ["ada", "bob", "boss", "carl", "dora", "emil"]  # none deleted
    assert got["dora"]["employeeType"] == ["disabled"]
    assert got["bob"]["employeeType"] == ["disabled"]
    assert "employeeType" not in got["ada"]
    assert members(target)["staff"] == {dn("ada"), dn("carl")}  # disabled: no member

    # bob back in the filter: enabled again and a member again.
    source.modify(dn("bob"), {"departmentNumber": None})
    completed(run(d), d)
    assert "employeeType" not in people(target)["bob"]
    assert members(target)["staff"] == {dn("ada"), dn("bob"), dn("carl")}


def test_a_wrong_source_password_quarantines_and_deletes_nothing_in_the_target(
    tmp_path: Path, servers: tuple[Slapd, Slapd], procs: list[DaemonProc]
) -> None:
    source, target = servers
    seed_small(source)
    d = start(tmp_path, source, target, procs)
    completed(wait_job(d.client(), first_job(d.client(), "dirsync")["id"], timeout=120), d)
    before = stamps(target)
    d.stop()

    (tmp_path / "source-password").write_text("not-the-password\n")
    again = DaemonProc(tmp_path)
    procs.append(again)
    again.start()
    for job_type in ("incremental_sync", "full_sync"):
        job = run(again, job_type)
        assert job["status"] == "failed" and job["errorCode"] == "CredentialsRejected", job
        assert "not-the-password" not in json.dumps(job)
        status = again.client().get("/api/sync/integrations/dirsync").json()["status"]
        assert status["code"] == "Quarantine"
        assert status["quarantine"]["reason"] == "CredentialsRejected"
    assert "not-the-password" not in again.log.read_text()
    assert stamps(target) == before  # nothing deleted, nothing written


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_example_config_loads_with_check_config() -> None:
    result = subprocess.run(
        [*SLUICED, "check-config", str(EXAMPLES / "ldap-to-ldap.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SLUICED_CONFIG": ""},
    )
    assert result.returncode == 0, result.stderr
    assert "ok (1 integrations)" in result.stdout


def test_the_example_syncs_two_directories_over_start_tls(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    """examples/ldap-to-ldap.toml as it is, but for its URLs, CA and passwords: the source
    under dc=example,dc=org, the target under dc=example,dc=com."""
    source = Slapd(tmp_path, tls=True, refint=True).start()
    target = Slapd(tmp_path, tls=True, suffix="dc=example,dc=com").start()
    try:
        source.add_many(
            [
                person("boss", givenName="Grace", telephoneNumber="+1 555 0100"),
                person("ada", givenName="Ada", mail="ada@example.org", manager=dn("boss")),
                person("bob", givenName="Bob", mail="bob@example.org", manager=dn("boss")),
                (
                    gdn("staff"),
                    {
                        "objectClass": ["groupOfNames"],
                        "cn": "staff",
                        "description": "Everyone",
                        "member": [dn("ada"), dn("bob"), dn("boss")],
                    },
                ),
            ]
        )
        text = (EXAMPLES / "ldap-to-ldap.toml").read_text()
        for side, server in (("source", source), ("target", target)):
            text = text.replace(
                f'url = "ldap://ldap-{side}.example.org"\nstart_tls = true\n',
                f'url = "{server.url}"\nstart_tls = true\nca_file = "{server.ca_file}"\n',
            )
            (tmp_path / f"demo-ldap-{side}-password").write_text(SERVICE_PASSWORD + "\n")
        assert text.count("ca_file") == 2, text
        text = text.replace(
            'control_socket = "state/control.sock"', 'control_socket = "state/ctl.sock"'
        )
        text = text.replace('interval = "5m"', 'interval = "5m"\njitter = "0s"')
        (tmp_path / "config.toml").write_text(text)
        shutil.copy(EXAMPLES / "ldap-to-ldap-schema.json", tmp_path)
        d = DaemonProc(tmp_path)
        procs.append(d)
        d.start()
        job = completed(
            wait_job(d.client(), first_job(d.client(), "dir-to-dir")["id"], timeout=120), d
        )
        # ada and bob, read before boss had an entry, are written again with their manager.
        assert written(job) == (4, 2, 0), job
        com = "ou=people,dc=example,dc=com"
        got = {e["uid"][0]: e for e in target.people().values()}
        assert got["ada"]["manager"] == got["bob"]["manager"] == [f"uid=boss,{com}"]
        assert sorted(got) == ["ada", "bob", "boss"]
        assert got["ada"]["givenName"] == ["Ada"] and got["ada"]["mail"] == ["ada@example.org"]
        assert got["boss"]["telephoneNumber"] == ["+1 555 0100"]
        (staff,) = target.groups().values()
        assert staff["description"] == ["Everyone"]
        assert set(staff["member"]) == {f"uid={u},{com}" for u in ("ada", "bob", "boss")}

        # bob leaves the source: moved to ou=disabled of the target, and out of the group.
        source.delete(dn("bob"))
        r = d.client().post(
            "/api/sync/jobs", json={"integrationId": "dir-to-dir", "type": "incremental_sync"}
        )
        assert r.status_code == 202, r.text
        completed(wait_job(d.client(), r.json()["jobId"], timeout=120), d)
        assert sorted(e["uid"][0] for e in target.people().values()) == ["ada", "boss"]
        assert list(target.search(target.dn("ou=disabled"), "(uid=bob)", ["uid"])) == [
            target.dn("uid=bob,ou=disabled")
        ]
        (staff,) = target.groups().values()
        assert set(staff["member"]) == {f"uid={u},{com}" for u in ("ada", "boss")}
    finally:
        target.stop()
        source.stop()


#: Entries of the crash trials (3,000): people, and groups: one of everyone, the others
#: of 14 people each.
CRASH_PEOPLE = 2800
CRASH_GROUPS = 200


def count(conn: Any, base: str) -> int:
    """How many entries are right under *base* (over an open root connection)."""
    import ldap

    return len(conn.search_s(base, ldap.SCOPE_ONELEVEL, "(objectClass=*)", ["1.1"]))


@pytest.mark.parametrize("trial", range(4))
def test_kill_9_at_a_random_moment_of_a_large_sync_then_rerun_loses_nothing(
    tmp_path: Path, servers: tuple[Slapd, Slapd], procs: list[DaemonProc], trial: int
) -> None:
    source, target = servers
    uids = [f"user{i:04d}" for i in range(CRASH_PEOPLE)]
    source.add_many(person(u, mail=f"{u}@example.org") for u in uids)
    size = CRASH_PEOPLE // CRASH_GROUPS
    groups = {f"g{k}": uids[k * size : (k + 1) * size] for k in range(1, CRASH_GROUPS)}
    groups["everyone"] = uids
    source.add_many(group(cn, list(listed)) for cn, listed in groups.items())
    # The moment: once the target holds a random number of people, or (the last trial)
    # of groups.
    rng = random.Random(trial)
    people_at, groups_at = rng.randint(1, CRASH_PEOPLE - 1), 0
    if trial == 3:
        # (before the last of the group pass's batches of 50)
        people_at, groups_at = CRASH_PEOPLE, rng.randint(1, CRASH_GROUPS - 60)
    d = start(tmp_path, source, target, procs, batch_size=50, page_size=250)
    job_id = first_job(d.client(), "dirsync")["id"]
    watch = target.connect()
    try:
        deadline = time.monotonic() + 120
        for base, at in ((PEOPLE, people_at), (GROUPS, groups_at)):
            while count(watch, base) < at:
                assert time.monotonic() < deadline, d.log.read_text()[-3000:]
                assert d.proc is not None and d.proc.poll() is None, d.log.read_text()[-3000:]
        d.kill()  # SIGKILL: no checkpoint, no goodbye, a batch may be half applied
        made = count(watch, PEOPLE), count(watch, GROUPS)
    finally:
        watch.unbind_s()
    events = [line.get("event", "") for line in d.log_lines()]
    assert not any(e.startswith("completed") for e in events), made  # killed mid-job
    again = DaemonProc(tmp_path)
    procs.append(again)
    again.start()  # the interrupted job resumes from its last checkpoint
    completed(wait_job(again.client(), job_id, timeout=300), again)
    found = target.people(["uid", "mail"])
    assert sorted(e["uid"][0] for e in found.values()) == uids  # each exactly once
    assert all(e["mail"] == [f"{e['uid'][0]}@example.org"] for e in found.values())
    # nothing elsewhere: the suffix, four units and the service account, then the sync's
    assert len(target.search(attrs=["1.1"])) == 6 + CRASH_PEOPLE + CRASH_GROUPS
    assert members(target) == {cn: {dn(u) for u in listed} for cn, listed in groups.items()}
    assert escrows(again) == []
    # A rerun over the same data writes nothing.
    before = stamps(target)
    assert written(completed(run(again, "full_sync"), again)) == (0, 0, 0)
    assert written(completed(run(again), again)) == (0, 0, 0)
    assert stamps(target) == before
