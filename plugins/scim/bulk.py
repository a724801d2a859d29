"""Bulk requests (RFC 7644 §3.7): the operations for a batch of ops, and how they are cut
into requests. Pure functions; the target sends them and reads the answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sluiced.codec import dumps
from sluiced.connectors import Op

from .client import Provider, ResourceType
from .resources import PATCH_SCHEMA, patch_operations, shape

__all__ = ["BULK_REQUEST", "BulkRequest", "bulk_operation", "chunks"]

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


@dataclass
class BulkRequest:
    """One bulk request: the indexes of its ops, the operation of each (None for an
    update that changes nothing) and the request's body, encoded once."""

    indexes: list[int] = field(default_factory=list)
    operations: list[dict[str, Any] | None] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        """The ``BulkRequest`` message, its operations as they were encoded."""
        return b'{"schemas":["%s"],"Operations":[%s]}' % (
            BULK_REQUEST.encode(),
            b",".join(self.encoded),
        )


def chunks(
    provider: Provider, rt: ResourceType, ops: Sequence[Op], indexes: list[int]
) -> list[BulkRequest]:
    """The *indexes* of *ops* cut into bulk requests of at most ``maxOperations`` (and
    100) operations and ``maxPayloadSize`` bytes (with room to spare); each operation is
    encoded once, to weigh it and to send it."""
    limit = min(provider.bulk_max_operations, _BULK_OPERATIONS)
    budget = int(provider.bulk_max_payload * 0.8) if provider.bulk_max_payload else None
    out: list[BulkRequest] = []
    current = BulkRequest()
    size = 0
    for i in indexes:
        operation = bulk_operation(rt, ops[i], i)
        encoded = dumps(operation).encode() if operation is not None else b""
        weight = len(encoded) + 1
        if current.indexes and (
            len(current.indexes) >= limit or (budget and size + weight > budget)
        ):
            out.append(current)
            current, size = BulkRequest(), 0
        current.indexes.append(i)
        current.operations.append(operation)
        if operation is not None:
            current.encoded.append(encoded)
        size += weight
    if current.indexes:
        out.append(current)
    return out
