"""Regular expressions from schemas are bounded in time: a pattern that backtracks
catastrophically escrows the one object it ran out of time on, quickly, and the others
sync. The bound is the ``regex`` package's own (inside the match), so these tests run on
the real clock, with ``fail_after`` as the guard."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from sluiced.connectors import Record
from sluiced.mapping import BUILTINS, SchemaError, parse_schema
from sluiced.mapping.mapper import SchemaMapper
from sluiced.mapping.patterns import PatternTimeout, compile_pattern, object_budget
from sluiced.models import JobType

from .test_engine import Env

#: Backtracks exponentially in ``regex`` (and in ``re``): 2**40 paths over POISON.
CATASTROPHIC = "(a|a)+$"
POISON = "a" * 40 + "!"


def scoped(pattern: str, operator: str = "NOT REGEX MATCH") -> dict[str, Any]:
    return {
        "objectMappings": [
            {
                "sourceObjectName": "user",
                "flowTypes": ["Add", "Update", "Delete"],
                "scope": {
                    "groups": [
                        {
                            "clauses": [
                                {
                                    "sourceOperandName": "name",
                                    "operatorName": operator,
                                    "targetOperand": {"values": [pattern]},
                                }
                            ]
                        }
                    ]
                },
            }
        ]
    }


def replacing(pattern: str) -> dict[str, Any]:
    expression = f'Replace([name], , "{pattern}", , "x", , )'
    return {
        "objectMappings": [
            {
                "sourceObjectName": "user",
                "attributeMappings": [
                    {"targetAttributeName": "id", "source": {"type": "Direct", "name": "id"}},
                    {
                        "targetAttributeName": "name",
                        "source": {"type": "Expression", "expression": expression},
                    },
                ],
            }
        ]
    }


def mapper(schema: dict[str, Any]) -> SchemaMapper:
    return SchemaMapper(parse_schema(schema, BUILTINS, ["user"]))


def record(name: str, ident: str = "u1") -> Record:
    return Record(id=ident, data={"id": ident, "name": name})


async def test_a_catastrophic_scoping_clause_gives_an_escrow_reason_quickly() -> None:
    m = mapper(scoped(CATASTROPHIC))
    with trio.fail_after(10):
        with pytest.raises(PatternTimeout) as info:
            m.map("user", record(POISON), creating=True)
        await trio.lowlevel.checkpoint()  # the deadline is noticed at a checkpoint
    assert str(info.value).startswith("scoping clause [name] NOT REGEX MATCH: ")
    assert repr(CATASTROPHIC) in str(info.value) and "took longer than" in str(info.value)
    assert m.map("user", record("bob"), creating=True) == {"id": "u1", "name": "bob"}


async def test_a_catastrophic_replace_gives_an_escrow_reason_quickly() -> None:
    m = mapper(replacing(CATASTROPHIC))
    with trio.fail_after(10):
        with pytest.raises(PatternTimeout) as info:
            m.map("user", record(POISON), creating=True)
        await trio.lowlevel.checkpoint()
    assert str(info.value).startswith("Replace: the regular expression ")
    assert m.map("user", record("aa"), creating=True) == {"id": "u1", "name": "x"}


async def test_the_clause_of_the_report_is_answered_at_once() -> None:
    """``(a+)+$`` froze the daemon under ``re``; ``regex`` answers it without backtracking."""
    m = mapper(scoped("(a+)+$"))
    with trio.fail_after(10):
        assert m.map("user", record(POISON), creating=True) is not None  # no match: in scope
        assert m.map("user", record("aaa"), creating=True) is None
        await trio.lowlevel.checkpoint()


async def test_one_budget_for_all_the_patterns_of_an_object() -> None:
    pattern = compile_pattern(CATASTROPHIC)
    with trio.fail_after(10):
        with object_budget(0.05):
            with pytest.raises(PatternTimeout):
                pattern.search(POISON)
            with pytest.raises(PatternTimeout):  # spent: even a quick match is refused
                pattern.search("a")
        assert pattern.search("a") is not None  # the next object has its own
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        (r"(?<first>\w+)\s(?<last>\w+)", "Ada Lovelace", "Ada Lovelace"),  # .NET groups
        (r"(?<=ab+)c", "abbbc", "c"),  # variable-length lookbehind
        (r"\p{Lu}\p{Ll}+", "éric Émile", "Émile"),  # Unicode categories
        (r"(?P<x>\d+)", "no 42", "42"),  # Python's spelling still works
    ],
)
def test_patterns_written_for_dotnet_are_understood(pattern: str, text: str, found: str) -> None:
    match = compile_pattern(pattern).search(text)
    assert match is not None and match.group(0) == found


def test_an_invalid_pattern_is_a_schema_error_naming_it() -> None:
    with pytest.raises(SchemaError) as info:
        parse_schema(scoped("(unclosed", "REGEX MATCH"), BUILTINS, ["user"])
    assert info.value.path.endswith("clauses[0].targetOperand.values[0]")
    assert "invalid regular expression" in info.value.message


async def test_the_engine_escrows_the_poisonous_object_and_syncs_the_rest() -> None:
    env = Env()
    env.fill(30)
    env.source.put("user", "u0007", name=POISON)
    env.source.put("user", "u0021", name="a" * 5 + "!")  # short: a quick no
    with trio.fail_after(20):
        result = await env.run(JobType.FULL, mapper=mapper(scoped(CATASTROPHIC)))
    assert set(env.target.plain()) == {f"u{i:04d}" for i in range(30)} - {"u0007"}
    escrows = {e.object_id: e for e in await env.store.list_escrows("hr")}
    assert set(escrows) == {"u0007"}
    assert escrows["u0007"].reason.startswith("scoping clause [name] NOT REGEX MATCH: ")
    assert result.job.stats.errors == 1


async def test_a_linked_object_that_fails_its_mapping_is_kept_by_a_full_pass() -> None:
    """An object still in the source whose mapping fails (here: out of time) is
    escrowed, and a full pass never takes it for gone: it stays in the target."""
    env = Env()
    env.fill(30)
    schema = mapper(scoped(CATASTROPHIC))
    await env.run(JobType.FULL, mapper=schema)
    assert "u0007" in env.target.plain()
    env.source.put("user", "u0007", name=POISON)
    with trio.fail_after(20):
        result = await env.run(JobType.FULL, mapper=schema)
    assert "u0007" in env.target.plain() and result.job.stats.deleted == 0
    assert {e.object_id for e in await env.store.list_escrows("hr")} == {"u0007"}
