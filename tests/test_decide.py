"""The engine's pure decisions, with no event loop: ops, deprovisioning, the gate."""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import sluiced.engine
import sluiced.sync
from sluiced.codec import object_hash
from sluiced.config import DeletionThreshold
from sluiced.connectors import Op
from sluiced.mapping import BUILTINS, parse_schema
from sluiced.mapping.mapper import SchemaMapper
from sluiced.models import Link
from sluiced.sync import _decide
from sluiced.sync._decide import (
    content_hash,
    deprovision_op,
    gate_reasons,
    op_for,
    plan_entry,
    reference_ids,
)

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def mapper(**users: Any) -> SchemaMapper:
    mapping: dict[str, Any] = {
        "sourceObjectName": "user",
        "targetObjectName": "User",
        "attributeMappings": [
            {"targetAttributeName": "userName", "source": {"type": "Direct", "name": "mail"}},
            {
                "targetAttributeName": "origin",
                "source": {"type": "Constant", "value": "hr"},
                "flowType": "ObjectAddOnly",
            },
        ],
        **users,
    }
    return SchemaMapper(parse_schema({"objectMappings": [mapping]}, BUILTINS, ["user"]))


def link(data: dict[str, Any], **kw: Any) -> Link:
    return Link(source_id="u1", target_id="t1", hash=object_hash(data), data=data, **kw)


DATA = {"userName": "ann@example.org"}


def test_an_unchanged_object_has_no_op_but_its_hash() -> None:
    op, digest = op_for(mapper(), "user", "u1", DATA, link(DATA), now=NOW)
    assert op is None and digest == object_hash(DATA)


def test_a_changed_object_is_updated_keeping_what_the_mapping_still_writes() -> None:
    before = {"userName": "old@example.org", "origin": "hr", "dropped": "x"}
    new = {"userName": "ann@example.org"}
    op, digest = op_for(mapper(), "user", "u1", new, link(before), now=NOW)
    assert op == Op(
        kind="update",
        source_id="u1",
        target_id="t1",
        data=new,
        previous={"userName": "old@example.org", "origin": "hr"},
        enable=False,
    )
    assert digest == object_hash(new)


def test_an_object_with_no_link_is_created_or_updated_when_matched() -> None:
    op, _ = op_for(mapper(), "user", "u1", DATA, None, now=NOW)
    assert op == Op(kind="create", source_id="u1", data=DATA)
    op, _ = op_for(mapper(), "user", "u1", DATA, None, "t9", now=NOW)
    assert op == Op(kind="update", source_id="u1", target_id="t9", data=DATA)
    assert op is not None and plan_entry("user", op)["matched"] is True


@pytest.mark.parametrize(
    ("flows", "linked", "matched"),
    [(["Update", "Delete"], False, None), (["Add"], True, None), (["Add"], False, "t9")],
)
def test_flows_the_mapping_does_not_allow_give_no_op(
    flows: list[str], linked: bool, matched: str | None
) -> None:
    before = link({"userName": "old@example.org"}) if linked else None
    op, digest = op_for(mapper(flowTypes=flows), "user", "u1", DATA, before, matched, now=NOW)
    assert op is None and digest == object_hash(DATA)


def test_a_disabled_object_back_in_scope_is_enabled_even_if_unchanged() -> None:
    op, _ = op_for(mapper(), "user", "u1", DATA, link(DATA, disabled_at=NOW), now=NOW)
    assert op is not None and (op.kind, op.enable) == ("update", True)
    assert plan_entry("user", op)["enable"] is True


def test_out_of_scope_is_deprovisioned_only_if_it_was_provisioned() -> None:
    assert op_for(mapper(), "user", "u1", None, None, now=NOW) == (None, None)
    op, digest = op_for(mapper(), "user", "u1", None, link(DATA), now=NOW)
    assert digest is None and op == Op(kind="delete", source_id="u1", target_id="t1")


def test_deprovisioning_deletes_or_disables_then_deletes_after_the_grace_period() -> None:
    assert deprovision_op(mapper(), "user", link(DATA), now=NOW) == Op(
        kind="delete", source_id="u1", target_id="t1"
    )
    m = mapper(deprovision="disable", deleteAfter="7d")
    assert deprovision_op(m, "user", link(DATA), now=NOW) == Op(
        kind="disable", source_id="u1", target_id="t1", previous=DATA
    )
    disabled = link(DATA, disabled_at=NOW)
    assert deprovision_op(m, "user", disabled, now=NOW + timedelta(days=6)) is None
    assert deprovision_op(m, "user", disabled, now=NOW + timedelta(days=7)) == Op(
        kind="delete", source_id="u1", target_id="t1"
    )
    forever = mapper(deprovision="disable")
    assert deprovision_op(forever, "user", disabled, now=NOW + timedelta(days=999)) is None
    no_delete = mapper(flowTypes=["Add", "Update"])
    assert deprovision_op(no_delete, "user", link(DATA), now=NOW) is None
    assert deprovision_op(mapper(), "group", link(DATA), now=NOW) is None


def test_the_gate_counts_the_percentage_and_an_emptied_target() -> None:
    assert gate_reasons(0, 0, DeletionThreshold(count=0)) == []
    assert gate_reasons(5, 100, DeletionThreshold(count=5)) == []
    assert gate_reasons(6, 100, DeletionThreshold(count=5)) == ["more than 5"]
    assert gate_reasons(10, 100, DeletionThreshold(count=None, percent=10)) == []
    assert gate_reasons(11, 100, DeletionThreshold(count=None, percent=10)) == [
        "more than 10% of 100"
    ]
    assert gate_reasons(3, 3, DeletionThreshold(count=None)) == [
        "every object in the target: the source returned none of them"
    ]
    assert gate_reasons(3, 3, DeletionThreshold(count=1, percent=50)) == [
        "more than 1",
        "more than 50% of 3",
        "every object in the target: the source returned none of them",
    ]


def test_plan_entries_say_what_an_update_changes() -> None:
    op = Op(kind="update", source_id="u1", target_id="t1", data=DATA, previous={"userName": "x"})
    assert plan_entry("user", op) == {
        "action": "update",
        "entityType": "user",
        "sourceId": "u1",
        "targetId": "t1",
        "changes": {"userName": {"from": "x", "to": "ann@example.org"}},
    }
    create = plan_entry("user", Op(kind="create", source_id="u1", data=DATA))
    assert create == {
        "action": "create",
        "entityType": "user",
        "sourceId": "u1",
        "attributes": DATA,
    }


def test_reference_ids_and_content_hash() -> None:
    assert reference_ids("u1") == ["u1"]
    assert reference_ids(["u1", {"value": "u2"}, "", None, {"display": "x"}]) == ["u1", "u2"]
    assert reference_ids(None) == []
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_decisions_import_no_event_loop() -> None:
    tree = ast.parse(inspect.getsource(_decide))
    imported = {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert not {m for m in imported if m.split(".")[0] in ("trio", "anyio", "asyncio")}


def test_the_engine_module_exports_the_sync_package_names() -> None:
    assert sluiced.engine.__all__ == sluiced.sync.__all__
    for name in sluiced.sync.__all__:
        assert getattr(sluiced.engine, name) is getattr(sluiced.sync, name)
