"""An integration's synchronization schema: which objects flow, in scope, mapped how.

JSON shape (seed 003's synchronizationSchema where it fits)::

    {"objectMappings": [{
        "name": "Provision users", "enabled": true,
        "sourceObjectName": "user", "targetObjectName": "User",
        "flowTypes": ["Add", "Update", "Delete"],          # or "Add, Update, Delete"
        "deprovision": "disable",                           # or "delete"
        "deleteAfter": "30d",                               # disabled, then deleted
        "scope": {"groups": [{"clauses": [                  # OR of groups, AND of clauses
            {"sourceOperandName": "department", "operatorName": "EQUALS",
             "targetOperand": {"values": ["Sales"]}}]}]},
        "attributeMappings": [
            {"targetAttributeName": "userName", "source": {"type": "Direct", "name": "mail"},
             "matchingPriority": 1},
            {"targetAttributeName": "displayName",
             "source": {"type": "Expression", "expression": "Join(\\" \\", [givenName], [surname])"}},
            {"targetAttributeName": "active", "source": {"type": "Constant", "value": true},
             "flowType": "ObjectAddOnly", "defaultValue": null},
            {"targetAttributeName": "members", "source": {"type": "Direct", "name": "members"},
             "referencedObject": "user"}]}]}            # source ids → target ids

An object mapping without attribute mappings copies objects as they are. ``parse_schema``
validates everything — expressions included — and raises :class:`SchemaError` naming
the JSON path (and the column, in an expression). Applying a schema to an object is
:mod:`.evaluation`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..durations import DurationError, parse_duration
from .expressions import (
    Expression,
    ExpressionError,
    Function,
    parse_expression,
)
from .patterns import Pattern, compile_pattern
from .reading import SchemaError, expect, keys, optional_string, string

__all__ = [
    "OPERATORS",
    "AttributeMapping",
    "Clause",
    "ObjectMapping",
    "Schema",
    "SchemaError",
    "default_schema",
    "parse_schema",
]

FLOW_TYPES = ("Add", "Update", "Delete")
OPERATORS = (
    "EQUALS",
    "NOT EQUALS",
    "IS TRUE",
    "IS FALSE",
    "IS NULL",
    "IS NOT NULL",
    "REGEX MATCH",
    "NOT REGEX MATCH",
    "Greater_Than",
    "Greater_Than_OR_EQUALS",
    "Includes",
    "ENDS_WITH",
)
_NO_VALUES = ("IS TRUE", "IS FALSE", "IS NULL", "IS NOT NULL")


@dataclass(frozen=True, kw_only=True)
class Clause:
    attribute: str
    operator: str
    values: tuple[str, ...]
    regex: Pattern | None = None


@dataclass(frozen=True, kw_only=True)
class AttributeMapping:
    target: str
    kind: str  # "Direct" | "Constant" | "Expression"
    source: str | None = None
    value: Any = None
    expression: Expression | None = None
    default: Any = None
    on_create_only: bool = False
    matching_priority: int = 0
    #: The value holds source ids of this entity type (group members); the engine
    #: replaces them with the ids their objects have in the target.
    referenced_object: str | None = None
    #: ``"secret": true``: the value is a secret (a password, a token), never shown in
    #: the provisioning log, a dry run's plan or a provisioning trace.
    secret: bool = False


@dataclass(frozen=True, kw_only=True)
class ObjectMapping:
    name: str
    enabled: bool
    source_object: str
    target_object: str
    flow_types: frozenset[str]
    deprovision: str
    #: With ``deprovision: disable``: how long a disabled object stays before it is
    #: deleted; None: it stays disabled.
    delete_after: timedelta | None
    scope: tuple[tuple[Clause, ...], ...]
    attributes: tuple[AttributeMapping, ...]

    @property
    def matching(self) -> tuple[AttributeMapping, ...]:
        """Attributes used to find the target object, in priority order."""
        return tuple(
            sorted(
                (a for a in self.attributes if a.matching_priority > 0),
                key=lambda a: a.matching_priority,
            )
        )


@dataclass(frozen=True, kw_only=True)
class Schema:
    object_mappings: tuple[ObjectMapping, ...]
    #: The JSON it was parsed from, answered by ``GET .../schema``.
    source: Mapping[str, Any]

    def for_source(self, source_object: str) -> ObjectMapping | None:
        for m in self.object_mappings:
            if m.source_object == source_object:
                return m
        return None


def default_schema(entity_types: Sequence[str]) -> dict[str, Any]:
    """Copy every object of every entity type as it is."""
    return {
        "objectMappings": [
            {
                "name": et,
                "enabled": True,
                "sourceObjectName": et,
                "targetObjectName": et,
                "flowTypes": list(FLOW_TYPES),
                "deprovision": "delete",
                "attributeMappings": [],
            }
            for et in entity_types
        ]
    }


def _clause(data: Any, path: str) -> Clause:
    d = keys(
        data,
        path,
        ("sourceOperandName", "operatorName", "targetOperand"),
        ("sourceOperandName", "operatorName"),
    )
    operator = string(d, "operatorName", path)
    expect(operator in OPERATORS, f"{path}.operatorName", f"must be one of {', '.join(OPERATORS)}")
    values: tuple[str, ...] = ()
    if operator not in _NO_VALUES:
        operand = keys(d.get("targetOperand"), f"{path}.targetOperand", ("values",), ("values",))
        raw = operand["values"]
        expect(
            isinstance(raw, list)
            and bool(raw)
            and all(isinstance(v, str | int | float) for v in raw),
            f"{path}.targetOperand.values",
            "must be a non-empty array of values",
        )
        values = tuple(str(v) for v in raw)
    regex = None
    if "REGEX" in operator:
        try:
            regex = compile_pattern(values[0])
        except ValueError as exc:
            raise SchemaError(f"{path}.targetOperand.values[0]", str(exc)) from None
    if operator.startswith("Greater"):
        for i, v in enumerate(values):
            try:
                float(v)
            except ValueError:
                raise SchemaError(f"{path}.targetOperand.values[{i}]", "must be a number") from None
    return Clause(
        attribute=string(d, "sourceOperandName", path),
        operator=operator,
        values=values,
        regex=regex,
    )


def _attribute(data: Any, path: str, functions: Mapping[str, Function]) -> AttributeMapping:
    d = keys(
        data,
        path,
        (
            "targetAttributeName",
            "source",
            "defaultValue",
            "flowType",
            "matchingPriority",
            "referencedObject",
            "secret",
        ),
        ("targetAttributeName", "source"),
    )
    expect(isinstance(d.get("secret", False), bool), f"{path}.secret", "must be true or false")
    src = keys(d["source"], f"{path}.source", ("type", "name", "value", "expression"), ("type",))
    kind = {
        "Direct": "Direct",
        "Attribute": "Direct",
        "Constant": "Constant",
        "Expression": "Expression",
        "Function": "Expression",
    }.get(src["type"])
    expect(kind is not None, f"{path}.source.type", "must be Direct, Constant or Expression")
    expression = None
    if kind == "Direct":
        string(src, "name", f"{path}.source")
    elif kind == "Constant":
        expect("value" in src, f"{path}.source.value", "is required for a Constant")
    else:
        text = string(src, "expression", f"{path}.source")
        try:
            expression = parse_expression(text, functions)
        except ExpressionError as exc:
            raise SchemaError(f"{path}.source.expression", str(exc)) from None
    flow = d.get("flowType", "Always")
    expect(
        flow in ("Always", "ObjectAddOnly"), f"{path}.flowType", "must be Always or ObjectAddOnly"
    )
    priority = d.get("matchingPriority", 0)
    expect(
        isinstance(priority, int) and not isinstance(priority, bool) and priority >= 0,
        f"{path}.matchingPriority",
        "must be an integer >= 0 (1 is tried first; 0: not used to match)",
    )
    return AttributeMapping(
        target=string(d, "targetAttributeName", path),
        kind=kind or "",
        source=src.get("name"),
        value=src.get("value"),
        expression=expression,
        default=d.get("defaultValue"),
        on_create_only=flow == "ObjectAddOnly",
        matching_priority=priority,
        referenced_object=optional_string(d, "referencedObject", path),
        secret=d.get("secret", False),
    )


def _object_mapping(
    data: Any, path: str, functions: Mapping[str, Function], entity_types: Sequence[str]
) -> ObjectMapping:
    d = keys(
        data,
        path,
        (
            "name",
            "enabled",
            "sourceObjectName",
            "targetObjectName",
            "flowTypes",
            "deprovision",
            "deleteAfter",
            "scope",
            "attributeMappings",
        ),
        ("sourceObjectName",),
    )
    source_object = string(d, "sourceObjectName", path)
    expect(
        not entity_types or source_object in entity_types,
        f"{path}.sourceObjectName",
        f"must be an entity type of the integration ({', '.join(entity_types)})",
    )
    enabled = d.get("enabled", True)
    expect(isinstance(enabled, bool), f"{path}.enabled", "must be true or false")
    flows = d.get("flowTypes", list(FLOW_TYPES))
    if isinstance(flows, str):
        flows = [f.strip() for f in flows.split(",") if f.strip()]
    expect(
        isinstance(flows, list) and all(f in FLOW_TYPES for f in flows),
        f"{path}.flowTypes",
        "must list Add, Update and/or Delete",
    )
    deprovision = d.get("deprovision", "delete")
    expect(deprovision in ("delete", "disable"), f"{path}.deprovision", "must be delete or disable")
    delete_after = None
    if d.get("deleteAfter") is not None:
        expect(deprovision == "disable", f"{path}.deleteAfter", "needs deprovision: disable")
        try:
            delete_after = parse_duration(d["deleteAfter"])
        except DurationError as exc:
            raise SchemaError(f"{path}.deleteAfter", str(exc)) from None
    groups: list[tuple[Clause, ...]] = []
    if d.get("scope") is not None:
        scope = keys(d["scope"], f"{path}.scope", ("groups",), ("groups",))
        expect(isinstance(scope["groups"], list), f"{path}.scope.groups", "must be an array")
        for gi, group in enumerate(scope["groups"]):
            gpath = f"{path}.scope.groups[{gi}]"
            g = keys(group, gpath, ("name", "clauses"), ("clauses",))
            expect(
                isinstance(g["clauses"], list) and bool(g["clauses"]),
                f"{gpath}.clauses",
                "must be a non-empty array",
            )
            groups.append(
                tuple(_clause(c, f"{gpath}.clauses[{ci}]") for ci, c in enumerate(g["clauses"]))
            )
    raw_attrs = d.get("attributeMappings", [])
    expect(isinstance(raw_attrs, list), f"{path}.attributeMappings", "must be an array")
    attrs = tuple(
        _attribute(a, f"{path}.attributeMappings[{i}]", functions) for i, a in enumerate(raw_attrs)
    )
    targets = [a.target for a in attrs]
    for i, t in enumerate(targets):
        expect(
            t not in targets[:i],
            f"{path}.attributeMappings[{i}].targetAttributeName",
            f"{t} is mapped twice",
        )
    return ObjectMapping(
        name=d.get("name") or source_object,
        enabled=enabled,
        source_object=source_object,
        target_object=d.get("targetObjectName") or source_object,
        flow_types=frozenset(flows),
        deprovision=deprovision,
        delete_after=delete_after,
        scope=tuple(groups),
        attributes=attrs,
    )


def parse_schema(
    data: Any, functions: Mapping[str, Function], entity_types: Sequence[str] = ()
) -> Schema:
    """Validate *data* (the JSON) into a :class:`Schema`.

    Raises:
        SchemaError: the first problem, with its JSON path.
    """
    d = keys(data, "schema", ("objectMappings",), ("objectMappings",))
    raw = d["objectMappings"]
    expect(isinstance(raw, list), "schema.objectMappings", "must be an array")
    mappings = tuple(
        _object_mapping(m, f"schema.objectMappings[{i}]", functions, entity_types)
        for i, m in enumerate(raw)
    )
    names = [m.source_object for m in mappings]
    for i, n in enumerate(names):
        expect(
            n not in names[:i],
            f"schema.objectMappings[{i}].sourceObjectName",
            f"{n} is mapped twice",
        )
    return Schema(object_mappings=mappings, source=data)
