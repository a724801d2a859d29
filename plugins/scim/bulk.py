"""Bulk requests (RFC 7644 §3.7): the operations for a batch of ops, and how they are cut
into requests. Pure functions; the target sends them and reads the answers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sluiced.connectors import Op

from .client import Provider, ResourceType
from .resources import PATCH_SCHEMA, patch_operations, shape

__all__ = ["BULK_REQUEST", "bulk_operation", "chunks"]

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
#: Operations per bulk request at most, whatever the server allows: a request's latency
#: stays short, and several are in flight at once.
_BULK_OPERATIONS = 100


def bulk_operation(rt: ResourceType, op: Op, n: int) -> dict[str, Any] | None:
    """The bulk operation for *op* (the *n*-th of its request): a POST, a DELETE or a
    PATCH; None for an update that changes nothing."""
    if op.kind == "create":
        data = shape(op.data or {}, [rt.schema] if rt.schema else [])
        return {"method": "POST", "path": rt.endpoint, "bulkId": f"op{n}", "data": data}
    location = f"{rt.endpoint}/{op.target_id}"
    if op.kind == "delete":
        return {"method": "DELETE", "path": location}
    if op.kind == "disable":
        operations = [{"op": "replace", "path": "active", "value": False}]
    else:
        operations = patch_operations(op.data or {}, op.previous, enable=op.enable)
        if not operations:
            return None
    body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
    return {"method": "PATCH", "path": location, "data": body}


def chunks(
    provider: Provider, rt: ResourceType, ops: Sequence[Op], indexes: list[int]
) -> list[list[int]]:
    """The *indexes* of *ops* cut into bulk requests of at most ``maxOperations`` (and
    100) operations and ``maxPayloadSize`` bytes (with room to spare)."""
    limit = min(provider.bulk_max_operations, _BULK_OPERATIONS)
    budget = int(provider.bulk_max_payload * 0.8) if provider.bulk_max_payload else None
    out: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i in indexes:
        operation = bulk_operation(rt, ops[i], i)
        weight = len(json.dumps(operation, default=str)) if budget else 0
        if current and (len(current) >= limit or (budget and size + weight > budget)):
            out.append(current)
            current, size = [], 0
        current.append(i)
        size += weight
    if current:
        out.append(current)
    return out
