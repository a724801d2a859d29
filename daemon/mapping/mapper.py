"""Applying a schema in the sync engine: map, scope and gate the flows of each object."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import trio

from ..connectors import Record
from .evaluation import holds_secret, in_scope, map_object
from .expressions import EvalContext
from .patterns import object_budget
from .schema import ObjectMapping, Schema

__all__ = ["SLICE", "SchemaMapper"]

#: Mapping objects holds the event loop for at most about this long (seconds) at a
#: time, when the engine calls :meth:`SchemaMapper.pace` between objects.
SLICE = 0.05


class SchemaMapper:
    """Maps source records through *schema*. An entity type with no object mapping, or
    a disabled one, flows nothing."""

    def __init__(self, schema: Schema, ctx: EvalContext | None = None) -> None:
        self.schema = schema
        self.ctx = ctx or EvalContext()
        self._slice_began = time.monotonic()
        #: Per entity type: its mapping (None: it flows nothing), and whether mapping an
        #: object may run a regular expression (a scope, an expression): only then does
        #: it open a time budget.
        self._plans: dict[str, tuple[ObjectMapping | None, bool]] = {}
        self._secrets: dict[str, frozenset[str]] = {}

    async def pace(self) -> None:
        """Let the other tasks (the API, signals, other jobs) run if mapping has held the
        event loop for :data:`SLICE` seconds: the engine calls it between objects."""
        if time.monotonic() - self._slice_began >= SLICE:
            await trio.lowlevel.checkpoint()
            self._slice_began = time.monotonic()

    def mapping(self, entity_type: str) -> ObjectMapping | None:
        plan = self._plans.get(entity_type)
        return (plan or self._plan(entity_type))[0]

    def _plan(self, entity_type: str) -> tuple[ObjectMapping | None, bool]:
        m = self.schema.for_source(entity_type)
        if m is None or not m.enabled:
            plan: tuple[ObjectMapping | None, bool] = (None, False)
        else:
            plan = (
                m,
                bool(m.scope) or any(a.kind not in ("Direct", "Constant") for a in m.attributes),
            )
        self._plans[entity_type] = plan
        return plan

    def allows(self, entity_type: str, flow: str) -> bool:
        """Whether objects of *entity_type* may be ``Add``-ed, ``Update``-d, ``Delete``-d."""
        m = self.mapping(entity_type)
        return m is not None and flow in m.flow_types

    def target_type(self, entity_type: str) -> str:
        m = self.mapping(entity_type)
        return m.target_object if m is not None else entity_type

    def matching(self, entity_type: str) -> tuple[str, ...]:
        """Target attributes that find an object in the target, in priority order."""
        m = self.mapping(entity_type)
        return tuple(a.target for a in m.matching) if m is not None else ()

    def references(self, entity_type: str) -> dict[str, str]:
        """Target attributes holding source ids, and the entity type of those ids."""
        m = self.mapping(entity_type)
        if m is None:
            return {}
        return {a.target: a.referenced_object for a in m.attributes if a.referenced_object}

    def secrets(self, entity_type: str) -> frozenset[str]:
        """The names whose values are secrets in objects of *entity_type*, besides those
        named like one: the target attributes holding a secret
        (flagged ``secret``, named like one, or computed from an attribute named like
        one) and the source attributes they copy (Direct), and what a flagged one computes from (Expression). For :func:`~sluiced.changes.hide_secrets`."""
        found = self._secrets.get(entity_type)
        if found is None:
            m = self.mapping(entity_type)
            held = [a for a in m.attributes if holds_secret(a)] if m is not None else []
            found = self._secrets[entity_type] = frozenset(
                [a.target for a in held]
                + [a.source for a in held if a.kind == "Direct" and a.source is not None]
                # what a flagged attribute is computed from: its inputs are taken as
                # secret too (one named like a secret is anyway)
                + [
                    n
                    for a in held
                    if a.secret and a.expression is not None
                    for n in a.expression.attributes()
                ]
            )
        return found

    def map(self, entity_type: str, record: Record, *, creating: bool) -> Mapping[str, Any] | None:
        """The target object, or None if the record is out of scope.

        The regular expressions of the scope and the expressions share one time budget
        (:func:`~.patterns.object_budget`).

        Raises:
            ExpressionError: an expression failed on this record (``PatternTimeout``: a
                regular expression ran out of time on it).
        """
        m, budgeted = self._plans.get(entity_type) or self._plan(entity_type)
        if m is None:
            return None
        if not budgeted:  # no scope, no expression: no regular expression to bound
            return map_object(m, record.data, creating=creating, ctx=self.ctx)
        with object_budget():
            if not in_scope(m, record.data):
                return None
            return map_object(m, record.data, creating=creating, ctx=self.ctx)
