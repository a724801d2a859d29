"""The in-memory twins a plugin author tests with (``sluiced.testing``), and the public
surface of the contracts they implement."""

from __future__ import annotations

import re
import traceback
from pathlib import Path
from typing import Any

import pytest
import trio

import sluiced.connectors
import sluiced.testing
from sluiced.connectors import ConnectorContext, EntityType, Malformed, Op, OpResult, Record
from sluiced.errors import CredentialsError, SyncError, TransientError
from sluiced.plugins.stash.entities import BUILTIN_ENTITY_TYPES
from sluiced.testing import MemoryConnector, MemorySource, MemoryTarget


def test_the_public_surface() -> None:
    assert sorted(sluiced.connectors.__all__) == [
        "Checkpoint",
        "ConnectorContext",
        "ConnectorFactory",
        "EntityType",
        "Gone",
        "JobPlan",
        "LinkingSource",
        "Malformed",
        "Op",
        "OpResult",
        "Page",
        "PlanningTarget",
        "Reconciler",
        "ReconcilingTarget",
        "Record",
        "Source",
        "SourceKeyedTarget",
        "Survey",
        "Target",
        "TargetCapabilities",
        "TransactionalTarget",
        "Writes",
        "parse_connector",
    ]
    assert sluiced.testing.__all__ == ["MemoryConnector", "MemorySource", "MemoryTarget"]
    for module in (sluiced.connectors, sluiced.testing):
        for name in module.__all__:
            assert getattr(module, name).__module__.startswith(module.__name__), name


def test_entity_types_of_plugins_are_entity_types() -> None:
    assert all(isinstance(e, EntityType) for e in BUILTIN_ENTITY_TYPES)
    assert not isinstance(object(), EntityType)


async def read_ids(source: MemorySource) -> list[str]:
    pages = source.read("user", since=None, cursor=None, page_size=2)
    return [i.id if isinstance(i, Record) else i.key async for p in pages for i in p.items]


async def test_a_planned_failure_hits_the_nth_call_and_every_call_is_counted() -> None:
    source = MemorySource()
    for n in range(5):
        source.put("user", f"u{n}", name=str(n))
    source.fail("read", after=1)  # the second read from now
    assert await read_ids(source) == ["u0", "u1", "u2", "u3", "u4"]
    with pytest.raises(TransientError):
        await read_ids(source)
    assert await read_ids(source) == ["u0", "u1", "u2", "u3", "u4"]
    source.fail("page", after=2, error=CredentialsError("rejected"))
    with pytest.raises(CredentialsError):
        await read_ids(source)
    assert source.calls["read"] == 4 and source.open_reads == 0
    assert source.reads == [("user", None)] * 4


async def test_after_counts_from_the_call_of_fail_whatever_else_is_planned() -> None:
    target = MemoryTarget()
    target.fail("apply", times=3)
    target.fail("apply", after=1, error=CredentialsError("second from now"))
    target.fail("apply", after=4)
    outcomes: list[str] = []
    for _ in range(7):
        try:
            await target.apply("user", [])
        except Exception as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
        else:
            outcomes.append("ok")
    assert outcomes == [
        "TransientError: apply failed (planned)",
        "TransientError: apply failed (planned)",  # the first plan, planned first
        "TransientError: apply failed (planned)",
        "ok",
        "TransientError: apply failed (planned)",
        "ok",
        "ok",
    ]
    target.fail("apply", after=1, error=CredentialsError("rejected"))
    await target.apply("user", [])
    with pytest.raises(CredentialsError, match="rejected"):
        await target.apply("user", [])
    assert target.calls["apply"] == 9


class Refused(CredentialsError):
    def __init__(self, who: str, *, status: int) -> None:
        super().__init__(f"{who} refused ({status})")
        self.status = status


async def test_every_planned_failure_raises_a_new_exception() -> None:
    given = Refused("ldap", status=403)
    given.add_note("planned")
    target = MemoryTarget()
    target.fail("apply", times=2, error=given)
    target.fail("flush", times=2)
    target.fail("count", times=2, error=lambda: TransientError("made", retry_after=7))
    for method, call in (
        ("apply", lambda: target.apply("user", [])),
        ("flush", target.flush),
        ("count", lambda: target.count("user")),
    ):
        raised: list[BaseException] = []
        for _ in range(2):
            try:
                await call()
            except SyncError as exc:
                raised.append(exc)
        first, second = raised
        assert first is not second and first is not given, method
        assert type(first) is type(second) and first.args == second.args, method
        assert first.__traceback__ is not None and second.__traceback__ is not None
        assert len(list(traceback.walk_tb(second.__traceback__))) == len(
            list(traceback.walk_tb(first.__traceback__))
        ), method  # the second raise does not extend the first one's traceback
    assert given.__traceback__ is None and given.__notes__ == ["planned"]
    apply_errors = []
    for _ in range(2):
        target.fail("apply", error=given)
        try:
            await target.apply("user", [])
        except Refused as exc:
            exc.add_note("seen")
            apply_errors.append(exc)
    assert all(e.status == 403 and str(e) == "ldap refused (403)" for e in apply_errors)
    assert [e.__notes__ for e in apply_errors] == [["planned", "seen"]] * 2
    assert given.__notes__ == ["planned"]
    with pytest.raises(TransientError) as made:
        target.fail("count", error=lambda: TransientError("made", retry_after=7))
        await target.count("user")
    assert made.value.retry_after == 7


async def test_heal_drops_planned_failures() -> None:
    target = MemoryTarget()
    target.fail("apply", times=10**6)
    with pytest.raises(TransientError):
        await target.apply("user", [])
    target.heal()
    assert await target.apply("user", []) == []
    assert target.calls["apply"] == 2


async def test_a_source_yields_malformed_items_and_get_many_answers_them() -> None:
    source = MemorySource()
    source.put("user", "a")
    source.malformed["user"] = {"b": "damaged"}
    assert await read_ids(source) == ["b", "a"]
    got = await source.get_many("user", ["a", "b", "c"])
    assert set(got) == {"a", "b"} and got["b"] == Malformed(key="b", reason="damaged")


async def test_a_target_refuses_single_objects_and_can_offer_no_lookups() -> None:
    target = MemoryTarget(can_find=False, can_count=False)
    target.reject = lambda op: (
        "quota"
        if op.source_id == "b"
        else OpResult(ok=False, error="busy", transient=True)
        if op.source_id == "c"
        else None
    )
    ops = [Op(kind="create", source_id=s, data={"id": s}) for s in "abc"]
    results = await target.apply("user", ops)
    assert results == [
        OpResult(ok=True, target_id="t-a"),
        OpResult(ok=False, error="quota"),
        OpResult(ok=False, error="busy", transient=True),
    ]
    assert target.plain() == {"a": {"id": "a"}} and target.applied == [ops]
    assert await target.find("user", "id", ["a"]) is None
    assert await target.count("user") is None


async def test_an_apply_waits_its_delay_and_can_be_cancelled_before_it_writes(
    autojump_clock: trio.abc.Clock,
) -> None:
    target = MemoryTarget()
    target.apply_delay = 5
    with trio.move_on_after(1):
        await target.apply("user", [Op(kind="create", source_id="a", data={"id": "a"})])
    assert target.objects == {} and target.events == ["apply start 0"]


async def test_the_connector_hands_the_same_twins_to_every_job(tmp_path: Path) -> None:
    connector = MemoryConnector()
    ctx = ConnectorContext(integration_id="i", state_dir=tmp_path)
    assert connector.open_source(None, ctx) is connector.open_source(None, ctx)
    assert connector.open_target(None, ctx) is connector.target
    assert connector.name == "memory" and connector.roles == {"source", "target"}


README = Path(__file__).resolve().parent.parent / "README.md"


def plugin_example() -> str:
    """The README's example for plugin authors (the block after ``<!-- plugin-example -->``)."""
    found = re.search(
        r"<!-- plugin-example -->\n```python\n(.*?)^```$", README.read_text(), re.S | re.M
    )
    assert found is not None
    return found.group(1)


async def test_the_readme_example_for_plugin_authors_runs() -> None:
    namespace: dict[str, Any] = {"__name__": "plugin_example"}
    exec(compile(plugin_example(), "README.md", "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        await test()
