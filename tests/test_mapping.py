"""Mapping expressions, functions and schemas: pure, no event loop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiced.mapping import (
    BUILTINS,
    EvalContext,
    ExpressionError,
    SchemaError,
    default_schema,
    functions_from,
    in_scope,
    map_object,
    parse_expression,
    parse_schema,
)

PERSON = {
    "givenName": "Zoë",
    "surname": "van der Berg",
    "mail": "Zoe.Berg@Example.org",
    "dept": "Sales",
    "status": "active",
    "phones": ["+1 555", "+1 777"],
    "empty": "",
    "age": "41",
    "hired": "2024-02-29T10:00:00Z",
}
CTX = EvalContext(
    now=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    new_guid=lambda: "g-1",
    is_unique=lambda v: v != "taken",
)


def ev(text: str, obj: dict[str, Any] | None = None) -> Any:
    return parse_expression(text, BUILTINS).evaluate(PERSON if obj is None else obj, CTX)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('Join(" ", [givenName], [surname])', "Zoë van der Berg"),
        ('Join(",", [phones], [missing], "x")', "+1 555,+1 777,x"),
        ('Append([givenName], "!")', "Zoë!"),
        ("Append([missing], [missing])", None),
        ("Coalesce([missing], [empty], [mail])", "Zoe.Berg@Example.org"),
        ("ToLower([mail])", "zoe.berg@example.org"),
        ('ToUpper([givenName], "de-DE")', "ZOË"),
        ("Left([mail], 3)", "Zoe"),
        ("Mid([mail], 5, 4)", "Berg"),
        ('Split([mail], "@")', ["Zoe.Berg", "Example.org"]),
        ('Replace([mail], "Example.org", , , "example.com", , )', "Zoe.Berg@example.com"),
        ('Replace([mail], , "[A-Z]", , "_", , )', "_oe._erg@_xample.org"),
        ('Replace([mail], , "(?<user>[^@]+)@", "user", "x", , )', "x@Example.org"),
        ('Replace("ignored", "{x}", , , , , "id-{x}")', "id-ignored"),
        ('PCase("hELLO wORLD-wide")', "Hello World-Wide"),
        ('StripSpaces(" a b\tc ")', "abc"),
        ('NormalizeDiacritics("Zoë Ærø Łódź straße")', "Zoe AEro Lodz strasse"),
        ('Switch([dept], "Other", "Sales", "S", "Finance", "F")', "S"),
        ('Switch([missing], "Other", "Sales", "S")', "Other"),
        ('IIF([status] = "ACTIVE", "on", "off")', "on"),
        ('IIF([status] <> "active", "on", "off")', "off"),
        ("IsNull([missing])", True),
        ("IsNullOrEmpty([empty])", True),
        ("IsPresent([mail])", True),
        ("Not(IsPresent([mail]))", False),
        ("CStr(42)", "42"),
        ('ConvertToBase64("Hello")', "SABlAGwAbABvAA=="),
        ('ConvertToBase64("Secret12", "utf-8")', "U2VjcmV0MTI="),
        ('CBool("True")', True),
        ("CBool(0)", False),
        ('DateAdd("d", 7, [hired])', "2024-03-07T10:00:00Z"),
        ('DateAdd("yyyy", 1, [hired])', "2025-02-28T10:00:00Z"),
        ('DateAdd("m", -1, "2024-03-31T00:00:00Z")', "2024-02-29T00:00:00Z"),
        ('FormatDateTime([hired], , "yyyy-MM-ddTHH:mm:ssZ", "yyyyMMddHHmmss")', "20240229100000"),
        ('FormatDateTime("20240229", , "yyyyMMdd", "dd/MM/yyyy")', "29/02/2024"),
        ("Now()", "2026-01-02T03:04:05Z"),
        ("Guid()", "g-1"),
        ('SelectUniqueValue("taken", Join(".", [givenName], "2"))', "Zoë.2"),
        ("Redact([mail])", "*"),
        ("true", True),
        ("-3", -3),
        ('"a \\"quoted\\" \\\\ text"', 'a "quoted" \\ text'),
        ('join(" ", "lower", "case")', "lower case"),
        ("[GIVENNAME]", "Zoë"),
    ],
)
def test_expressions(text: str, expected: Any) -> None:
    assert ev(text) == expected


def test_ignore_flow() -> None:
    from sluiced.mapping.functions import IGNORE

    assert ev("IgnoreFlowIfNullOrEmpty([empty])") is IGNORE
    assert ev("IgnoreFlowIfNullOrEmpty([mail])") == PERSON["mail"]


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ('Join(" ", [a]', 14, "expected , or )"),
        ('Jion(" ", [a])', 1, "unknown function Jion"),
        ("Left([a])", 1, "Left takes 2 arguments, not 1"),
        ('IIF([a], "x")', 1, "IIF takes 3 arguments, not 2"),
        ('"open', 1, "a string is not closed"),
        ("[open", 1, "not closed with ]"),
        ("[a] [b]", 5, "unexpected '['"),
        ("", 1, "the expression is empty"),
        ("Append([a], )x", 14, "unexpected 'x'"),
        ("Join", 5, "Join needs ( after its name"),
        ("Mid([a], 1", 11, "expected , or ) in the arguments of Mid"),
        ("Mid([a],", 9, "ends too early"),
    ],
)
def test_syntax_errors_point_at_the_column(text: str, column: int, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, BUILTINS)
    assert info.value.column == column and message in info.value.message


def test_evaluation_errors_name_the_function_and_column() -> None:
    with pytest.raises(ExpressionError, match=r"column 8: Mid: start counts from 1"):
        ev('Append(Mid([mail], 0, 2), "x")')
    with pytest.raises(ExpressionError, match="DateAdd: interval must be one of"):
        ev('DateAdd("fortnight", 1, [hired])')
    with pytest.raises(ExpressionError, match="no candidate is unique"):
        ev('SelectUniqueValue("taken")')


def test_plugin_functions_extend_but_do_not_replace() -> None:
    functions = functions_from({"Shout": lambda s: (s or "").upper() + "!"})
    assert parse_expression("Shout([givenName])", functions).evaluate(PERSON) == "ZOË!"
    with pytest.raises(ValueError, match="may not replace the built-in"):
        functions_from({"join": lambda *a: ""})


@given(st.text(max_size=30))
def test_any_text_either_parses_or_fails_with_a_column(text: str) -> None:
    try:
        expr = parse_expression(text, BUILTINS)
    except ExpressionError as exc:
        assert 1 <= exc.column <= len(text) + 1
    else:
        try:
            expr.evaluate(PERSON, CTX)
        except ExpressionError as exc:
            assert exc.column >= 1


@given(
    st.dictionaries(
        st.text(max_size=5),
        st.one_of(st.none(), st.text(max_size=5), st.lists(st.text(max_size=3), max_size=3)),
        max_size=4,
    )
)
def test_functions_survive_odd_objects(obj: dict[str, Any]) -> None:
    for text in (
        'Join(" ", [a], [b])',
        "ToLower([a])",
        "PCase([a])",
        "NormalizeDiacritics([a])",
        'Coalesce([a], [b], "d")',
        "IsNullOrEmpty([a])",
        'Switch([a], "d", "x", "y")',
        "StripSpaces([a])",
    ):
        ev(text, obj)


SCHEMA: dict[str, Any] = {
    "objectMappings": [
        {
            "name": "Provision users",
            "sourceObjectName": "user",
            "targetObjectName": "User",
            "flowTypes": "Add, Update",
            "deprovision": "disable",
            "scope": {
                "groups": [
                    {
                        "clauses": [
                            {
                                "sourceOperandName": "dept",
                                "operatorName": "EQUALS",
                                "targetOperand": {"values": ["Sales"]},
                            },
                            {
                                "sourceOperandName": "status",
                                "operatorName": "NOT EQUALS",
                                "targetOperand": {"values": ["terminated"]},
                            },
                        ]
                    },
                    {
                        "clauses": [
                            {
                                "sourceOperandName": "mail",
                                "operatorName": "ENDS_WITH",
                                "targetOperand": {"values": ["@vip.example"]},
                            }
                        ]
                    },
                ]
            },
            "attributeMappings": [
                {
                    "targetAttributeName": "userName",
                    "source": {"type": "Direct", "name": "mail"},
                    "matchingPriority": 1,
                },
                {
                    "targetAttributeName": "displayName",
                    "source": {
                        "type": "Expression",
                        "expression": 'Join(" ", [givenName], [surname])',
                    },
                },
                {
                    "targetAttributeName": "active",
                    "source": {"type": "Constant", "value": True},
                    "flowType": "ObjectAddOnly",
                },
                {
                    "targetAttributeName": "title",
                    "source": {"type": "Direct", "name": "title"},
                    "defaultValue": "Staff",
                },
                {
                    "targetAttributeName": "nick",
                    "source": {
                        "type": "Expression",
                        "expression": "IgnoreFlowIfNullOrEmpty([nick])",
                    },
                },
            ],
        }
    ]
}


def test_schema_maps_and_scopes() -> None:
    schema = parse_schema(SCHEMA, BUILTINS, ["user"])
    m = schema.for_source("user")
    assert m is not None and m.flow_types == {"Add", "Update"} and m.deprovision == "disable"
    assert [a.target for a in m.matching] == ["userName"]
    assert map_object(m, PERSON, creating=True) == {
        "userName": PERSON["mail"],
        "displayName": "Zoë van der Berg",
        "active": True,
        "title": "Staff",
    }
    assert "active" not in map_object(m, PERSON, creating=False)
    assert in_scope(m, PERSON)
    assert not in_scope(m, {**PERSON, "status": "terminated"})
    assert in_scope(m, {**PERSON, "dept": "Finance", "mail": "a@vip.example"})
    assert not in_scope(m, {**PERSON, "dept": "Finance"})


@pytest.mark.parametrize(
    ("operator", "values", "obj", "expected"),
    [
        ("IS TRUE", None, {"x": "True"}, True),
        ("IS FALSE", None, {"x": "true"}, False),
        ("IS NULL", None, {}, True),
        ("IS NOT NULL", None, {"x": ""}, False),
        ("REGEX MATCH", ["^E\\d+$"], {"x": "E12"}, True),
        ("REGEX MATCH", ["^(?<l>[A-Z])\\d"], {"x": "E1"}, True),
        ("NOT REGEX MATCH", ["^E"], {"x": "E12"}, False),
        ("Greater_Than", ["40"], {"x": "41"}, True),
        ("Greater_Than_OR_EQUALS", ["41"], {"x": 41}, True),
        ("Greater_Than", ["41"], {"x": "n/a"}, False),
        ("Includes", ["ale"], {"x": "Sales"}, True),
        ("EQUALS", ["b"], {"x": ["a", "B"]}, True),
    ],
)
def test_scope_operators(
    operator: str, values: list[str] | None, obj: dict[str, Any], expected: bool
) -> None:
    clause: dict[str, Any] = {"sourceOperandName": "x", "operatorName": operator}
    if values is not None:
        clause["targetOperand"] = {"values": values}
    m = parse_schema(
        {
            "objectMappings": [
                {"sourceObjectName": "u", "scope": {"groups": [{"clauses": [clause]}]}}
            ]
        },
        BUILTINS,
    ).object_mappings[0]
    assert in_scope(m, obj) is expected


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (lambda s: s.update(extra=1), "schema.extra", "unknown field"),
        (
            lambda s: s["objectMappings"][0].update(sourceObjectName="group"),
            "schema.objectMappings[0].sourceObjectName",
            "must be an entity type",
        ),
        (
            lambda s: s["objectMappings"][0]["attributeMappings"][1]["source"].update(
                expression='Join(" ", [a]'
            ),
            "schema.objectMappings[0].attributeMappings[1].source.expression",
            "column 14",
        ),
        (
            lambda s: s["objectMappings"][0]["attributeMappings"][0]["source"].update(type="Magic"),
            "schema.objectMappings[0].attributeMappings[0].source.type",
            "Direct, Constant or Expression",
        ),
        (
            lambda s: s["objectMappings"][0]["attributeMappings"][0].update(matchingPriority=-1),
            "schema.objectMappings[0].attributeMappings[0].matchingPriority",
            ">= 0",
        ),
        (
            lambda s: s["objectMappings"][0]["attributeMappings"][3].update(
                targetAttributeName="userName"
            ),
            "schema.objectMappings[0].attributeMappings[3].targetAttributeName",
            "mapped twice",
        ),
        (
            lambda s: s["objectMappings"][0]["scope"]["groups"][0]["clauses"][0].update(
                operatorName="LIKE"
            ),
            "schema.objectMappings[0].scope.groups[0].clauses[0].operatorName",
            "must be one of",
        ),
        (
            lambda s: s["objectMappings"][0]["scope"]["groups"][0]["clauses"][0].update(
                operatorName="REGEX MATCH", targetOperand={"values": ["(unclosed"]}
            ),
            "schema.objectMappings[0].scope.groups[0].clauses[0].targetOperand.values[0]",
            "invalid regular expression",
        ),
        (
            lambda s: s["objectMappings"][0].update(flowTypes=["Add", "Merge"]),
            "schema.objectMappings[0].flowTypes",
            "Add, Update and/or Delete",
        ),
        (
            lambda s: s["objectMappings"].append(dict(s["objectMappings"][0])),
            "schema.objectMappings[1].sourceObjectName",
            "mapped twice",
        ),
    ],
)
def test_schema_errors_name_the_path(change: Any, path: str, message: str) -> None:
    import copy

    schema = copy.deepcopy(SCHEMA)
    change(schema)
    with pytest.raises(SchemaError) as info:
        parse_schema(schema, BUILTINS, ["user"])
    assert info.value.path == path and message in info.value.message


def test_default_schema_copies_objects() -> None:
    schema = parse_schema(default_schema(["user", "group"]), BUILTINS, ["user", "group"])
    assert map_object(schema.object_mappings[0], PERSON, creating=True) == PERSON
