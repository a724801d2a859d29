"""Applying an object mapping to a source object: is it in scope, and what does it
become in the target."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..changes import secret_attribute
from .expressions import EvalContext, ExpressionError, lookup
from .functions import IGNORE
from .patterns import PatternTimeout
from .schema import AttributeMapping, Clause, ObjectMapping

__all__ = ["in_scope", "map_object"]


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _clause_holds(clause: Clause, obj: Mapping[str, Any]) -> bool:
    value = lookup(obj, clause.attribute)
    values = value if isinstance(value, list) else [value]
    texts = ["" if v is None else str(v) for v in values]
    op = clause.operator
    if op == "IS NULL":
        return value is None or value == "" or value == []
    if op == "IS NOT NULL":
        return not (value is None or value == "" or value == [])
    if op in ("IS TRUE", "IS FALSE"):
        truth = any(t.lower() == "true" for t in texts) or value is True
        return truth if op == "IS TRUE" else not truth
    if op == "EQUALS":
        return any(t.casefold() == v.casefold() for t in texts for v in clause.values)
    if op == "NOT EQUALS":
        return not any(t.casefold() == v.casefold() for t in texts for v in clause.values)
    if op in ("REGEX MATCH", "NOT REGEX MATCH"):
        assert clause.regex is not None
        try:
            matched = any(clause.regex.search(t) for t in texts if t)
        except PatternTimeout as exc:
            raise exc.within(f"scoping clause [{clause.attribute}] {op}") from None
        return matched if op == "REGEX MATCH" else not matched
    if op == "Includes":
        return any(v.casefold() in t.casefold() for t in texts for v in clause.values)
    if op == "ENDS_WITH":
        return any(t.casefold().endswith(v.casefold()) for t in texts for v in clause.values)
    limit = float(clause.values[0])
    nums = [n for n in (_number(v) for v in values) if n is not None]
    return any(n > limit if op == "Greater_Than" else n >= limit for n in nums)


def in_scope(mapping: ObjectMapping, obj: Mapping[str, Any]) -> bool:
    """Whether *obj* is in the mapping's scope: any group whose clauses all hold.

    Raises:
        PatternTimeout: a ``REGEX MATCH`` clause ran out of time on this object.
    """
    if not mapping.scope:
        return True
    return any(all(_clause_holds(c, obj) for c in group) for group in mapping.scope)


def map_object(
    mapping: ObjectMapping,
    obj: Mapping[str, Any],
    *,
    creating: bool,
    ctx: EvalContext | None = None,
) -> dict[str, Any]:
    """The target object for *obj*. ``ObjectAddOnly`` attributes only when *creating*;
    ``defaultValue`` when the source gives null or nothing; attributes whose expression
    answers IgnoreFlowIfNullOrEmpty are left out.

    Raises:
        ExpressionError: an expression failed on this object (it is escrowed).
    """
    if not mapping.attributes:
        return dict(obj)
    ctx = ctx or EvalContext()
    out: dict[str, Any] = {}
    for a in mapping.attributes:
        if a.on_create_only and not creating:
            continue
        if a.kind == "Direct":
            value = lookup(obj, a.source or "")
        elif a.kind == "Constant":
            value = a.value
        else:
            assert a.expression is not None
            try:
                value = a.expression.evaluate(obj, ctx)
            except PatternTimeout:
                raise
            except ExpressionError as exc:
                if not holds_secret(a):
                    raise
                # its message may quote the value: the attribute is named, the value not
                raise ExpressionError(
                    f"{a.target}: the expression failed on a secret value (not shown)", exc.column
                ) from None
        if value is IGNORE:
            continue
        if value is None or value == "":
            value = a.default if a.default is not None else value
        out[a.target] = value
    return out


def holds_secret(a: AttributeMapping) -> bool:
    """Whether *a*'s value is a secret: flagged so, or named like one
    (:func:`~sluiced.changes.secret_attribute`), or read from a source attribute named
    like one."""
    if a.secret or secret_attribute(a.target):
        return True
    if a.kind == "Direct":
        return a.source is not None and secret_attribute(a.source)
    reads = a.expression.attributes() if a.expression is not None else ()
    return any(map(secret_attribute, reads))
