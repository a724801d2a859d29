"""Applying a schema in the sync engine: map, scope and gate the flows of each object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..connectors import Record
from .expressions import EvalContext
from .schema import ObjectMapping, Schema, in_scope, map_object

__all__ = ["SchemaMapper"]


class SchemaMapper:
    """Maps source records through *schema*. An entity type with no object mapping, or
    a disabled one, flows nothing."""

    def __init__(self, schema: Schema, ctx: EvalContext | None = None) -> None:
        self.schema = schema
        self.ctx = ctx or EvalContext()

    def mapping(self, entity_type: str) -> ObjectMapping | None:
        m = self.schema.for_source(entity_type)
        return m if m is not None and m.enabled else None

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

    def map(self, entity_type: str, record: Record, *, creating: bool) -> Mapping[str, Any] | None:
        """The target object, or None if the record is out of scope.

        Raises:
            ExpressionError: an expression failed on this record.
        """
        m = self.mapping(entity_type)
        if m is None or not in_scope(m, record.data):
            return None
        return map_object(m, record.data, creating=creating, ctx=self.ctx)
