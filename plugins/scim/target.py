"""A SCIM service provider as a target: create, update, disable and delete resources.

* create: ``POST /Users``. A 409 (the object is there already, e.g. created just before
  a crash, or by someone else) adopts the existing resource found by its ``userName``
  (``displayName`` for groups) when exactly one has it, and updates it.
* update: ``PATCH`` of the changed top-level attributes when the server supports PATCH
  (or ``update = "patch"``); otherwise read, merge and ``PUT`` with ``If-Match`` when
  the server offers ETags, re-read and retried on 412. A 404 re-creates the resource.
* disable: ``active: false``; delete: ``DELETE`` (a 404 is success: it is gone).

Ops of a batch run concurrently, at most ``concurrency`` requests at a time.
"""

from __future__ import annotations

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
)

__all__ = ["ScimTarget"]

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
    def __init__(self, client: ScimClient, *, update: str = "auto") -> None:
        self.client = client
        self.update = update
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

        async with trio.open_nursery() as nursery:

            async def one(i: int, op: Op) -> None:
                try:
                    results[i] = await self._apply_one(provider, rt, op)
                except SyncError as exc:  # credentials, protocol, persistent 5xx: the call fails
                    failure.append(exc)
                    nursery.cancel_scope.cancel()

            for i, op in enumerate(ops):
                nursery.start_soon(one, i, op)
        if failure:
            raise failure[0]
        return [r for r in results if r is not None]

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
        if self.update == "patch" or (self.update == "auto" and provider.patch):
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
            if enable and "active" not in data:
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
