"""A SCIM service provider as a target: create, update, disable and delete resources.

* create: ``POST /Users``. A 409 (the object is there already, e.g. created just before
  a crash, or by someone else) adopts the existing resource found by its ``userName``
  (``displayName`` for groups) when exactly one has it, and updates it.
* update: ``PATCH`` of the changed top-level attributes when the server supports PATCH
  (or ``update = "patch"``); otherwise read, merge and ``PUT`` with ``If-Match`` when
  the server offers ETags, re-read and retried on 412. A 404 re-creates the resource.
* disable: ``active: false``; delete: ``DELETE`` (a 404 is success: it is gone).

Where the server offers bulk operations (and ``bulk`` is not turned off), creates,
deletes and PATCH updates of a batch go in ``POST /Bulk`` requests of up to 100
operations (within the server's ``maxOperations`` and ``maxPayloadSize``): on
scim2-server, 793 creates/s against 308 one request each. An operation answered 409 or
404 inside a bulk request is retried the single way (adopt; create again).

Requests run concurrently, at most ``concurrency`` at a time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import trio

from sluiced.connectors import Op, OpResult, Target
from sluiced.engine import single_errors
from sluiced.errors import SyncError

from .client import Provider, ResourceType, ScimClient, ScimResponse
from .resources import (
    PATCH_SCHEMA,
    equality_filter,
    merge_into,
    patch_operations,
    scim_error,
    shape,
    writes_active,
)

__all__ = ["ScimTarget"]

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
#: Operations per bulk request at most, whatever the server allows: a request's latency
#: stays short, and several are in flight at once.
_BULK_OPERATIONS = 100
_NATURAL_KEYS = {"user": "userName", "group": "displayName"}


def _value(resource: Mapping[str, Any], path: str) -> Any:
    if path.lower().startswith("urn:"):
        urn, _, attribute = path.rpartition(":")
        container: Any = resource.get(urn) or {}
        parts = attribute.split(".")
    else:
        container, parts = resource, path.split(".")
    for part in parts:
        if not isinstance(container, Mapping):
            return None
        container = container.get(part)
    return container


def _key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


class ScimTarget(Target):
    def __init__(self, client: ScimClient, *, update: str = "auto", bulk: bool = True) -> None:
        self.client = client
        self.update = update
        self.bulk = bulk
        self.endpoint = client.url

    async def validate(self) -> str:
        provider = await self.client.check()
        features = [n for n in ("patch", "bulk", "filter", "etag") if getattr(provider, n)]
        return (
            f"SCIM service at {self.client.url} ({', '.join(features) or 'no optional features'};"
            f" resource types {', '.join(provider.resource_types)})"
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- applying ops -------------------------------------------------------------------------
    async def apply(self, entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        provider = await self.client.provider()
        rt = provider.resource_type(entity_type)
        results: list[OpResult | None] = [None] * len(ops)
        failure: list[SyncError] = []
        bulk = [i for i, op in enumerate(ops) if self._bulkable(provider, op)]
        in_bulk = set(bulk)
        single = [i for i in range(len(ops)) if i not in in_bulk]

        async with trio.open_nursery() as nursery:

            async def guarded(fn: Any, *args: Any) -> None:
                try:
                    await fn(*args)
                except SyncError as exc:  # credentials, protocol, persistent 5xx: the call fails
                    failure.append(exc)
                    nursery.cancel_scope.cancel()

            async def one(i: int) -> None:
                results[i] = await self._apply_one(provider, rt, ops[i])

            async def chunk(indexes: list[int]) -> None:
                for i, result in zip(
                    indexes, await self._bulk(provider, rt, [ops[i] for i in indexes]), strict=True
                ):
                    results[i] = result

            for indexes in self._chunks(provider, rt, ops, bulk):
                nursery.start_soon(guarded, chunk, indexes)
            for i in single:
                nursery.start_soon(guarded, one, i)
        if failure:
            raise failure[0]
        done = [r for r in results if r is not None]
        assert len(done) == len(ops), "every op has its result"
        return done

    # -- bulk (RFC 7644 §3.7) ---------------------------------------------------------------
    def _bulkable(self, provider: Provider, op: Op) -> bool:
        if not self.bulk or not provider.bulk or provider.bulk_max_operations < 2:
            return False
        return op.kind in ("create", "delete") or self._patching(provider)

    def _patching(self, provider: Provider) -> bool:
        return self.update == "patch" or (self.update == "auto" and provider.patch)

    def _bulk_operation(self, rt: ResourceType, op: Op, n: int) -> dict[str, Any] | None:
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

    def _chunks(
        self, provider: Provider, rt: ResourceType, ops: Sequence[Op], indexes: list[int]
    ) -> list[list[int]]:
        """Bulk requests of at most ``maxOperations`` (and 100) operations and
        ``maxPayloadSize`` bytes (with room to spare)."""
        limit = min(provider.bulk_max_operations, _BULK_OPERATIONS)
        budget = int(provider.bulk_max_payload * 0.8) if provider.bulk_max_payload else None
        out: list[list[int]] = []
        current: list[int] = []
        size = 0
        for i in indexes:
            operation = self._bulk_operation(rt, ops[i], i)
            weight = len(json.dumps(operation, default=str)) if budget else 0
            if current and (len(current) >= limit or (budget and size + weight > budget)):
                out.append(current)
                current, size = [], 0
            current.append(i)
            size += weight
        if current:
            out.append(current)
        return out

    async def _bulk(
        self, provider: Provider, rt: ResourceType, ops: Sequence[Op]
    ) -> list[OpResult]:
        """One bulk request for *ops*; an op the server answers 409 or 404 to goes the
        single way (adopt the existing object; create again)."""
        operations = [self._bulk_operation(rt, op, n) for n, op in enumerate(ops)]
        sent = [o for o in operations if o is not None]
        answers: list[Any] = []
        if sent:
            body = {"schemas": [BULK_REQUEST], "Operations": sent}
            r = await self.client.request("POST", "/Bulk", body=body)
            answers = list(r.body.get("Operations") or []) if isinstance(r.body, Mapping) else []
            if not r.ok or len(answers) != len(sent):
                # Refused whole (too large, or a bulk the server does not really do):
                # the single way, so one odd request does not stop the sync.
                return [await self._apply_one(provider, rt, op) for op in ops]
        by_operation = iter(answers)
        results: list[OpResult] = []
        for op, operation in zip(ops, operations, strict=True):
            if operation is None:  # an update that changes nothing
                results.append(OpResult(ok=True, target_id=op.target_id))
                continue
            answer = next(by_operation)
            status = int(answer.get("status") or 0) if isinstance(answer, Mapping) else 0
            if 200 <= status < 300:
                target_id = op.target_id
                if op.kind == "create":
                    target_id = str(answer.get("location") or "").rstrip("/").rsplit("/", 1)[-1]
                results.append(
                    OpResult(
                        ok=bool(target_id),
                        target_id=target_id,
                        error=None if target_id else "the server named no created resource",
                    )
                )
            elif status == 404 and op.kind in ("delete", "disable"):
                results.append(OpResult(ok=True, target_id=op.target_id))
            elif status in (404, 409):
                results.append(await self._apply_one(provider, rt, op))
            else:
                detail = answer.get("response") if isinstance(answer, Mapping) else None
                results.append(OpResult(ok=False, error=scim_error(detail, status)))
        return results

    async def _apply_one(self, provider: Provider, rt: ResourceType, op: Op) -> OpResult:
        if op.kind == "create":
            return await self._create(provider, rt, op)
        assert op.target_id is not None
        location = f"{rt.endpoint}/{op.target_id}"
        if op.kind == "delete":
            r = await self.client.request("DELETE", location)
            if r.ok or r.status == 404:
                return OpResult(ok=True, target_id=op.target_id)
            return self._failed(r)
        if op.kind == "disable":
            r = await self._modify(provider, location, {"active": False}, None, enable=False)
            if r.status == 404:
                return OpResult(ok=True, target_id=op.target_id)  # nothing left to disable
        else:
            r = await self._modify(provider, location, op.data or {}, op.previous, enable=op.enable)
            if r.status == 404:  # deleted in the target behind our back: create it again
                return await self._create(provider, rt, op)
        if r.ok:
            return OpResult(ok=True, target_id=op.target_id)
        return self._failed(r)

    async def _create(self, provider: Provider, rt: ResourceType, op: Op) -> OpResult:
        body = shape(op.data or {}, [rt.schema] if rt.schema else [])
        r = await self.client.request("POST", rt.endpoint, body=body)
        if r.ok and isinstance(r.body, Mapping) and r.body.get("id"):
            return OpResult(ok=True, target_id=str(r.body["id"]))
        if r.status == 409:
            return await self._adopt(provider, rt, op, body, r)
        return self._failed(r)

    async def _adopt(
        self, provider: Provider, rt: ResourceType, op: Op, body: Mapping[str, Any], r: ScimResponse
    ) -> OpResult:
        """A create the server refused as a duplicate: update the one object it clashes with."""
        key = _NATURAL_KEYS.get(rt.name.lower())
        value = body.get(key) if key else None
        if key is None or value is None or not provider.filter:
            return self._failed(r)
        found = await self.find(rt.name, key, [value])
        ids = list((found or {}).get(value, ()))
        if len(ids) != 1:
            return self._failed(r)
        location = f"{rt.endpoint}/{ids[0]}"
        updated = await self._modify(provider, location, op.data or {}, None, enable=False)
        if updated.ok:
            return OpResult(ok=True, target_id=ids[0])
        return self._failed(updated)

    async def _modify(
        self,
        provider: Provider,
        location: str,
        data: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        *,
        enable: bool,
    ) -> ScimResponse:
        if self._patching(provider):
            operations = patch_operations(data, previous, enable=enable)
            if not operations:
                return ScimResponse(204, None, httpx.Headers())
            body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
            return await self.client.request("PATCH", location, body=body)
        for _ in range(3):  # read, merge, replace; another writer in between: again
            current = await self.client.request("GET", location)
            if not current.ok or not isinstance(current.body, Mapping):
                return current
            resource = {k: v for k, v in current.body.items() if k != "meta"}
            resource = merge_into(resource, data, previous)
            if enable and not writes_active(data):
                resource["active"] = True
            headers = {}
            version = (current.body.get("meta") or {}).get("version") or current.headers.get("etag")
            if provider.etag and version:
                headers["If-Match"] = str(version)
            r = await self.client.request("PUT", location, body=resource, headers=headers)
            if r.status != 412:
                return r
        return r

    @staticmethod
    def _failed(r: ScimResponse) -> OpResult:
        return OpResult(ok=False, error=scim_error(r.body, r.status))

    # -- matching -----------------------------------------------------------------------------
    async def count(self, entity_type: str) -> int | None:
        provider = await self.client.provider()
        rt = provider.resource_type(entity_type)
        r = await self.client.request("GET", rt.endpoint, params={"count": 0})
        if r.ok and isinstance(r.body, Mapping) and isinstance(r.body.get("totalResults"), int):
            return int(r.body["totalResults"])
        return None

    async def find(
        self, entity_type: str, attribute: str, values: Sequence[Any]
    ) -> Mapping[Any, Sequence[str]] | None:
        """One ``attribute eq "value"`` filter per value, concurrently: servers index
        equality on their matching attributes (and some accept no ``or``), while an
        ``or`` of many values is evaluated against every resource."""
        provider = await self.client.provider()
        if not provider.filter or "[" in attribute:
            return None  # no filtering, or a path a filter cannot name: links only
        rt = provider.resource_type(entity_type)
        found: dict[Any, list[str]] = {}

        async def one(value: Any) -> None:
            async for resources, _, _ in self.client.pages(
                rt.endpoint,
                filter=equality_filter(attribute, [value]),
                count=max(provider.filter_max_results, 1),
                attributes=attribute,
            ):
                for resource in resources:
                    if _key(_value(resource, attribute)) == _key(value) and resource.get("id"):
                        found.setdefault(value, []).append(str(resource["id"]))

        with single_errors():
            async with trio.open_nursery() as nursery:
                for value in dict.fromkeys(values):
                    nursery.start_soon(one, value)
        return found
