"""Directory semantics of the engine: matching, soft deletes, references, plans."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sluiced.mapping import BUILTINS, parse_schema
from sluiced.mapping.mapper import SchemaMapper
from sluiced.models import JobType

from .test_engine import Env

USERS: dict[str, Any] = {
    "sourceObjectName": "user",
    "targetObjectName": "User",
    "deprovision": "disable",
    "deleteAfter": "7d",
    "scope": {
        "groups": [
            {
                "clauses": [
                    {
                        "sourceOperandName": "status",
                        "operatorName": "EQUALS",
                        "targetOperand": {"values": ["active"]},
                    }
                ]
            }
        ]
    },
    "attributeMappings": [
        {
            "targetAttributeName": "userName",
            "source": {"type": "Direct", "name": "mail"},
            "matchingPriority": 2,
        },
        {
            "targetAttributeName": "externalId",
            "source": {"type": "Direct", "name": "id"},
            "matchingPriority": 1,
        },
        {"targetAttributeName": "title", "source": {"type": "Direct", "name": "title"}},
        {
            "targetAttributeName": "origin",
            "source": {"type": "Constant", "value": "hr"},
            "flowType": "ObjectAddOnly",
        },
    ],
}
GROUPS: dict[str, Any] = {
    "sourceObjectName": "group",
    "targetObjectName": "Group",
    "attributeMappings": [
        {
            "targetAttributeName": "displayName",
            "source": {"type": "Direct", "name": "name"},
            "matchingPriority": 1,
        },
        {
            "targetAttributeName": "members",
            "source": {"type": "Direct", "name": "members"},
            "referencedObject": "user",
        },
    ],
}


def mapper(*mappings: dict[str, Any]) -> SchemaMapper:
    schema = {"objectMappings": [copy.deepcopy(m) for m in mappings]}
    return SchemaMapper(parse_schema(schema, BUILTINS, ["user", "group"]))


def user(env: Env, sid: str, mail: str, **extra: Any) -> None:
    env.source.put("user", sid, **{"mail": mail, "status": "active", "title": "engineer", **extra})


def by_name(env: Env, entity_type: str = "User") -> dict[str, dict[str, Any]]:
    return {
        o.get("userName", o.get("displayName")): o for o in env.target.objects[entity_type].values()
    }


async def test_an_object_with_no_link_is_matched_in_priority_order_and_linked() -> None:
    env = Env()
    m = mapper(USERS)
    # In the target already: ada by userName only (no externalId), bob by externalId.
    env.target.objects["User"] = {
        "T-ada": {"userName": "ada@example.org", "title": "old"},
        "T-bob": {"userName": "robert@example.org", "externalId": "b"},
    }
    user(env, "a", "ada@example.org")
    user(env, "b", "bob@example.org")
    user(env, "c", "cy@example.org")
    result = await env.run(mapper=m)
    s = result.job.stats
    assert (s.created, s.updated) == (1, 2)
    objects = env.target.objects["User"]
    assert objects["T-ada"] == {
        "userName": "ada@example.org",
        "externalId": "a",
        "title": "engineer",
    }  # matched: updated in place, the add-only attribute not applied
    assert objects["T-bob"]["userName"] == "bob@example.org"  # externalId (priority 1) won
    assert objects["t-c"]["origin"] == "hr"  # no candidate: created
    links = await env.store.get_links("hr", "user", ["a", "b", "c"])
    assert {k: v.target_id for k, v in links.items()} == {"a": "T-ada", "b": "T-bob", "c": "t-c"}
    # Priority order: externalId first, for all three; userName only for those left.
    assert [(attr, vals) for _, attr, vals in env.target.finds] == [
        ("externalId", ["a", "b", "c"]),
        ("userName", ["ada@example.org", "cy@example.org"]),
    ]
    # Later runs use the links: nothing is looked up again.
    env.target.finds.clear()
    user(env, "a", "ada@example.org", title="lead")
    await env.run(mapper=m)
    assert env.target.finds == [] and objects["T-ada"]["title"] == "lead"


async def test_an_ambiguous_match_is_escrowed_never_guessed() -> None:
    env = Env()
    m = mapper(USERS)
    env.target.objects["User"] = {
        "T1": {"userName": "ada@example.org"},
        "T2": {"userName": "ada@example.org"},
    }
    user(env, "a", "ada@example.org")
    user(env, "b", "bob@example.org")
    result = await env.run(mapper=m)
    assert result.job.stats.created == 1 and result.job.stats.errors == 1
    assert env.target.objects["User"]["T1"] == {"userName": "ada@example.org"}  # untouched
    (escrow,) = await env.store.list_escrows("hr")
    assert escrow.object_id == "a" and escrow.kind == "target"
    assert "ambiguous match: 2 User objects" in escrow.reason and "T1, T2" in escrow.reason
    # Someone removes the duplicate; the escrow's retry then matches the one left.
    del env.target.objects["User"]["T2"]
    await env.store.retry_escrow_at("hr", "user", "a", escrow.first_failed)
    await env.run(mapper=m)
    assert await env.store.list_escrows("hr") == []
    assert (await env.store.get_links("hr", "user", ["a"]))["a"].target_id == "T1"


async def test_out_of_scope_disables_then_deletes_after_the_grace_period() -> None:
    env = Env()
    m = mapper(USERS)
    user(env, "a", "ada@example.org")
    user(env, "b", "bob@example.org")
    await env.run(mapper=m)
    env.source.put("user", "a", mail="ada@example.org", status="left", title="engineer")
    result = await env.run(mapper=m)
    assert by_name(env)["ada@example.org"]["active"] is False  # disabled, not deleted
    assert (result.job.stats.disabled, result.job.stats.deleted) == (1, 0)
    link = (await env.store.get_links("hr", "user", ["a"]))["a"]
    assert link.disabled_at is not None
    # Back in scope within the grace period: enabled again.
    user(env, "a", "ada@example.org")
    await env.run(mapper=m)
    assert by_name(env)["ada@example.org"]["active"] is True
    assert (await env.store.get_links("hr", "user", ["a"]))["a"].disabled_at is None
    # Gone from the source: a full pass disables it; full passes within 7 days keep it.
    env.source.delete("user", "a")
    await env.run(JobType.FULL, mapper=m)
    assert by_name(env)["ada@example.org"]["active"] is False
    assert env.clock is not None
    env.clock = type(env.clock)(env.clock.now() + timedelta(days=6))
    await env.run(JobType.FULL, mapper=m)
    assert "ada@example.org" in by_name(env)
    env.clock = type(env.clock)(env.clock.now() + timedelta(days=2))
    result = await env.run(JobType.FULL, mapper=m)
    assert "ada@example.org" not in by_name(env)
    assert (result.job.stats.disabled, result.job.stats.deleted) == (0, 1)
    assert await env.store.get_links("hr", "user", ["a"]) == {}
    assert set(by_name(env)) == {"bob@example.org"}


async def test_group_members_are_mapped_through_the_links() -> None:
    env = Env()
    env.cfg = replace(env.cfg, entity_types=("user", "group"))
    m = mapper(USERS, GROUPS)
    user(env, "a", "ada@example.org")
    user(env, "b", "bob@example.org")
    env.source.put("user", "x", mail="x@example.org", status="left")  # never provisioned
    env.source.put("group", "g", name="admins", members=["a", {"value": "b"}, "x"])
    await env.run(mapper=m)
    group = by_name(env, "Group")["admins"]
    assert group["members"] == ["t-a", "t-b"]  # target ids; x has no link
    # x comes into scope: the incremental run creates x, then reads the groups again
    # (unchanged in the source, but their members now resolve further).
    env.source.put("user", "x", mail="x@example.org", status="active")
    await env.run(mapper=m)
    assert by_name(env, "Group")["admins"]["members"] == ["t-a", "t-b", "t-x"]
    assert any("reading every object again" in line for line in env.logs)


async def test_members_deprovisioned_leave_their_groups_in_the_same_run() -> None:
    env = Env()
    env.cfg = replace(env.cfg, entity_types=("user", "group"))
    m = mapper(USERS, GROUPS)
    for sid in "abc":
        user(env, sid, f"{sid}@example.org")
    env.source.put("group", "g", name="admins", members=["a", "b", "c"])
    await env.run(mapper=m)
    assert by_name(env, "Group")["admins"]["members"] == ["t-a", "t-b", "t-c"]
    # a leaves the scope (disabled, still linked), c leaves the source (a full pass
    # disables it too): an incremental run, then a full one; groups unchanged in the source.
    env.source.put("user", "a", mail="a@example.org", status="left", title="engineer")
    result = await env.run(mapper=m)
    assert by_name(env)["a@example.org"]["active"] is False
    assert (result.job.stats.disabled, result.job.stats.deleted) == (1, 0)
    assert by_name(env, "Group")["admins"]["members"] == ["t-b", "t-c"]
    env.source.delete("user", "c")
    await env.run(JobType.FULL, mapper=m)
    assert by_name(env, "Group")["admins"]["members"] == ["t-b"]
    # A new group lists a disabled user: not written into its members.
    env.source.put("group", "h", name="staff", members=["a", "b"])
    await env.run(mapper=m)
    assert by_name(env, "Group")["staff"]["members"] == ["t-b"]
    # a comes back: enabled again, and back in its groups in the same run.
    user(env, "a", "a@example.org")
    await env.run(mapper=m)
    assert by_name(env, "Group")["admins"]["members"] == ["t-a", "t-b"]
    assert by_name(env, "Group")["staff"]["members"] == ["t-a", "t-b"]


async def test_a_deleted_member_leaves_its_groups_in_the_same_incremental_run() -> None:
    env = Env()
    env.cfg = replace(env.cfg, entity_types=("user", "group"))
    users = {k: v for k, v in USERS.items() if k != "deleteAfter"}
    m = mapper({**users, "deprovision": "delete"}, GROUPS)
    for sid in "ab":
        user(env, sid, f"{sid}@example.org")
    env.source.put("group", "g", name="admins", members=["a", "b"])
    await env.run(mapper=m)
    env.source.put("user", "b", mail="b@example.org", status="left", title="engineer")
    result = await env.run(mapper=m)
    assert (result.job.stats.deleted, result.job.stats.disabled) == (1, 0)
    assert set(by_name(env)) == {"a@example.org"}
    assert by_name(env, "Group")["admins"]["members"] == ["t-a"]


class Plan:
    def __init__(self) -> None:
        self.entries: list[Mapping[str, Any]] = []

    async def add(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self.entries += entries


async def test_a_dry_run_plans_creates_updates_with_changes_and_deletes_and_writes_nothing() -> (
    None
):
    env = Env()
    m = mapper(USERS)
    user(env, "a", "ada@example.org")
    user(env, "b", "bob@example.org")
    await env.run(mapper=m)
    before = copy.deepcopy(env.target.objects)
    calls = len(env.target.applied)
    user(env, "a", "ada@example.org", title="lead")
    env.source.delete("user", "b")
    user(env, "c", "cy@example.org")
    plan = Plan()
    result = await env.run(JobType.FULL, mapper=m, plan=plan)
    by_action = {e["action"]: e for e in plan.entries}
    assert set(by_action) == {"create", "update", "disable"}
    assert by_action["update"]["changes"] == {"title": {"from": "engineer", "to": "lead"}}
    assert by_action["create"]["attributes"]["userName"] == "cy@example.org"
    assert by_action["disable"]["sourceId"] == "b"
    assert (result.job.stats.created, result.job.stats.updated) == (1, 1)
    # Nothing was written: the target, the links and the watermark are as they were.
    assert env.target.objects == before and len(env.target.applied) == calls
    assert set(await env.store.get_links("hr", "user", ["a", "b", "c"])) == {"a", "b"}
    (link,) = (await env.store.get_links("hr", "user", ["a"])).values()
    assert link.data is not None and link.data["title"] == "engineer"


async def test_a_pass_into_an_empty_target_creates_without_looking_each_object_up() -> None:
    env = Env()
    m = mapper(USERS)
    for i in range(25):
        user(env, f"u{i}", f"u{i}@example.org")
    result = await env.run(mapper=m)
    assert result.job.stats.created == 25 and env.target.finds == []
    # Once the target holds objects, new ones are looked up before they are created.
    user(env, "late", "late@example.org")
    await env.run(mapper=m)
    assert [attr for _, attr, _ in env.target.finds] == ["externalId", "userName"]


async def test_objects_leaving_the_scope_in_an_incremental_run_pass_the_threshold_first() -> None:
    from sluiced.config import DeletionThreshold
    from sluiced.engine import TooManyDeletes

    env = Env()
    env.cfg = replace(env.cfg, deletion_threshold=DeletionThreshold(count=3))
    m = mapper(USERS)
    for i in range(10):
        user(env, f"u{i}", f"u{i}@example.org")
    await env.run(mapper=m)
    for i in range(5):  # a bad export marks half the people as gone
        env.source.put("user", f"u{i}", mail=f"u{i}@example.org", status="left", title="engineer")
    calls = len(env.target.applied)
    result = await env.run(mapper=m)  # incremental: no delete phase, yet gated
    assert isinstance(result.failed.get("user"), TooManyDeletes)
    assert "5 deletions staged" in str(result.failed["user"])
    assert len(env.target.applied) == calls  # nothing was touched
    assert all(u.get("active", True) for u in by_name(env).values())
    assert len(await env.store.list_staged_deletions("hr")) == 5
    result = await env.run(JobType.FULL, mapper=m, approved=True)  # restart with ForceDeletes
    assert result.failed == {} and result.job.stats.disabled == 5
    assert sum(u.get("active") is False for u in by_name(env).values()) == 5
