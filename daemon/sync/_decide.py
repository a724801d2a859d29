"""Pure decisions: the op for one object, deprovisioning, the deletion gate's verdict,
plan entries and content hashes. No I/O and no event loop: what they need (the mapper,
the time now) comes in as arguments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..codec import content_hash, encode_object, same_content
from ..config import DeletionThreshold
from ..connectors import Op
from ..models import Link

__all__ = [
    "Decisions",
    "content_hash",
    "deprovision_op",
    "gate_reasons",
    "op_for",
    "plan_entry",
    "reference_ids",
    "still_exported",
]

if TYPE_CHECKING:
    from ..mapping.mapper import SchemaMapper


def plan_entry(entity_type: str, op: Op) -> dict[str, Any]:
    """One line of a plan: the op, with the attributes an update changes."""
    entry: dict[str, Any] = {"action": op.kind, "entityType": entity_type, "sourceId": op.source_id}
    if op.target_id is not None:
        entry["targetId"] = op.target_id
    if op.kind == "create":
        entry["attributes"] = dict(op.data or {})
    elif op.kind == "update":
        before = op.previous or {}
        entry["changes"] = {
            k: {"from": before.get(k), "to": v}
            for k, v in (op.data or {}).items()
            if op.previous is None or before.get(k) != v
        }
        if op.previous is None:
            entry["matched"] = True  # found by the matching attributes, not by a link
        if op.enable:
            entry["enable"] = True
    return entry


@dataclass
class Decisions:
    """What the engine decided for some records."""

    ops: list[Op] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)
    #: In scope (a full pass marks their links seen).
    seen: list[str] = field(default_factory=list)
    #: Nothing to do.
    unchanged: list[str] = field(default_factory=list)
    #: source id → (escrow kind, reason).
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Links of objects now out of scope, when their deprovisioning is deferred.
    leaving: list[Link] = field(default_factory=list)


def reference_ids(value: Any) -> list[str]:
    """Source ids in a reference attribute: a string, or a list of strings or of
    ``{"value": id}`` objects (SCIM members)."""
    items = value if isinstance(value, list) else [value]
    ids = [i.get("value") if isinstance(i, Mapping) else i for i in items]
    return [str(i) for i in ids if i is not None and i != ""]


def op_for(
    mapper: SchemaMapper,
    entity_type: str,
    source_id: str,
    data: Mapping[str, Any] | None,
    link: Link | None,
    matched: str | None = None,
    *,
    now: datetime,
) -> tuple[Op | None, str | None]:
    """The op for one mapped object (None: nothing to do — unchanged, or a flow the
    mapping does not allow) and the hash of the mapped object (None: out of scope).

    *data* is the mapped object (None: out of scope), *link* what was exported for it,
    *matched* the target id found by the matching attributes, *now* the time (for
    ``deleteAfter``)."""
    if data is None:  # out of scope: deprovisioned if it was provisioned
        return (deprovision_op(mapper, entity_type, link, now=now) if link else None), None
    encoded, digest = encode_object(data)
    if link is not None:
        if link.disabled_at is None and same_content(link.hash, digest, data):
            return None, digest
        if not mapper.allows(entity_type, "Update"):
            return None, digest
        op = Op(
            kind="update",
            source_id=source_id,
            target_id=link.target_id,
            data=data,
            previous=still_exported(mapper, entity_type, link.data, data),
            enable=link.disabled_at is not None,
            encoded=encoded,
        )
        return op, digest
    if matched is not None:
        if not mapper.allows(entity_type, "Update"):
            return None, digest
        op = Op(kind="update", source_id=source_id, target_id=matched, data=data, encoded=encoded)
        return op, digest
    if not mapper.allows(entity_type, "Add"):
        return None, digest
    return Op(kind="create", source_id=source_id, data=data, encoded=encoded), digest


def still_exported(
    mapper: SchemaMapper,
    entity_type: str,
    previous: Mapping[str, Any] | None,
    data: Mapping[str, Any],
) -> Mapping[str, Any] | None:
    """What was exported and the mapping still writes: the attributes mapped now, and
    those set on create only. Attributes of an older mapping are forgotten."""
    if previous is None:
        return None
    m = mapper.mapping(entity_type)
    add_only = {a.target for a in m.attributes if a.on_create_only} if m else set()
    return {k: v for k, v in previous.items() if k in data or k in add_only}


def deprovision_op(
    mapper: SchemaMapper, entity_type: str, link: Link, *, now: datetime
) -> Op | None:
    """Deprovisioning an object that left the source or its scope: delete it, or
    disable it and delete it once it has been disabled for ``deleteAfter`` at *now*.
    None: the mapping lets no deletion flow, or the object stays disabled for now."""
    m = mapper.mapping(entity_type)
    if m is None or "Delete" not in m.flow_types:
        return None
    delete = Op(kind="delete", source_id=link.source_id, target_id=link.target_id)
    if m.deprovision == "delete":
        return delete
    if link.disabled_at is None:
        return Op(
            kind="disable",
            source_id=link.source_id,
            target_id=link.target_id,
            previous=link.data,
        )
    if m.delete_after is not None and now - link.disabled_at >= m.delete_after:
        return delete
    return None


def gate_reasons(count: int, total: int, threshold: DeletionThreshold) -> list[str]:
    """Why *count* deprovisionings out of *total* linked objects must wait for approval;
    an empty list: they may go ahead (none at all always may)."""
    if not count:
        return []
    reasons = []
    if threshold.count is not None and count > threshold.count:
        reasons.append(f"more than {threshold.count}")
    if threshold.percent is not None and count * 100 > threshold.percent * total:
        reasons.append(f"more than {threshold.percent:g}% of {total}")
    if count == total:
        reasons.append("every object in the target: the source returned none of them")
    return reasons
