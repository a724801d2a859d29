"""A SCIM service provider as a target: create, update, disable and delete resources.

* create: ``POST /Users``. A 409 (the object is there already, e.g. created just before
  a crash, or by someone else) adopts the existing resource found by its ``userName``
  (``displayName`` for groups) when exactly one has it, and updates it.
* update: ``PATCH`` of the changed top-level attributes when the server supports PATCH
  (or ``update = "patch"``); otherwise read, merge and ``PUT`` with ``If-Match`` when
  the server offers ETags, re-read and retried on 412. A 404 re-creates the resource.
* disable: ``active: false``; delete: ``DELETE`` (a 404 is success: it is gone).
* 501 (not implemented): a PATCH so answered is done by read-merge-PUT, and every later
  update of this target too; anything else so answered fails that object, with the
  server's ``detail``, for the engine to escrow.
* Where the server answers a write with the resource, it is compared with what was
  written (:func:`.resources.ignored_attributes`): attributes it dropped, or members it
  did not keep, fail the object ("the server ignored `members`"). A resource created so
  is updated once (some servers take members only in an update), then deleted again if
  that does not keep them either, so that the object's retry starts clean.

Where the server offers bulk operations (and ``bulk`` is not turned off), creates,
deletes and PATCH updates of a batch go in ``POST /Bulk`` requests of up to 100
operations (within the server's ``maxOperations`` and ``maxPayloadSize``): on
scim2-server, 793 creates/s against 308 one request each. An operation answered 409 or
404 inside a bulk request is retried the single way (adopt; create again). Ops that
write ``members`` go one request each: bulk answers carry no resource to check.

Requests run concurrently, at most ``concurrency`` at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import trio

from sluiced.connectors import Op, OpResult, Target
from sluiced.errors import SyncError

from .bulk import BulkRequest, chunks
from .client import (
    NOT_IMPLEMENTED,
    Provider,
    ResourceType,
    ScimClient,
    ScimResponse,
)
from .lookup import find_ids
from .resources import (
    PATCH_SCHEMA,
    ignored_attributes,
    merge_into,
    patch_operations,
    scim_error,
    shape,
    top_path,
    writes_active,
    written,
    written_by_patch,
)

__all__ = ["ScimTarget"]

_NATURAL_KEYS = {"user": "userName", "group": "displayName"}


class ScimTarget(Target):
    def __init__(self, client: ScimClient, *, update: str = "auto", bulk: bool = True) -> None:
        self.client = client
        self.update = update
        self.bulk = bulk
        self.endpoint = client.url
        #: The server answered a PATCH 501 (not implemented): update by PUT from then on.
        self.patch_refused = False
        #: Attributes the server leaves out of its answers to writes, yet keeps.
        self.unanswered: set[str] = set()

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
        bulk = [i for i, op in enumerate(ops) if self._bulkable(provider, rt, op)]
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

            async def chunk(request: BulkRequest) -> None:
                sent = [ops[i] for i in request.indexes]
                done = await self._bulk(provider, rt, sent, request)
                for i, result in zip(request.indexes, done, strict=True):
                    results[i] = result

            for request in chunks(provider, rt, ops, bulk):
                nursery.start_soon(guarded, chunk, request)
            for i in single:
                nursery.start_soon(guarded, one, i)
        if failure:
            raise failure[0]
        done = [r for r in results if r is not None]
        assert len(done) == len(ops), "every op has its result"
        return done

    # -- bulk (RFC 7644 §3.7) ---------------------------------------------------------------
    def _bulkable(self, provider: Provider, rt: ResourceType, op: Op) -> bool:
        if not self.bulk or not provider.bulk or provider.bulk_max_operations < 2:
            return False
        if not rt.relative:  # an endpoint outside the base URL: no bulk path names it
            return False
        if any(k.casefold() == "members" for k in op.data or {}):
            return False  # one request each: the answer shows the members the server kept
        return op.kind in ("create", "delete") or self._patching(provider)

    def _patching(self, provider: Provider) -> bool:
        if self.patch_refused:
            return False
        return self.update == "patch" or (self.update == "auto" and provider.patch)

    async def _bulk(
        self, provider: Provider, rt: ResourceType, ops: Sequence[Op], request: BulkRequest
    ) -> list[OpResult]:
        """The bulk *request* for *ops*; an op the server answers 409 or 404 to goes the
        single way (adopt the existing object; create again)."""
        operations = request.operations
        sent = [o for o in operations if o is not None]
        answers: list[Any] = []
        if sent:
            r = await self.client.request("POST", "/Bulk", content=request.body)
            answers = list(r.body.get("Operations") or []) if isinstance(r.body, Mapping) else []
            if r.status == NOT_IMPLEMENTED:
                self.bulk = False  # announced, not implemented: not asked again
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
            detail = answer.get("response") if isinstance(answer, Mapping) else None
            if 200 <= status < 300:
                results.append(await self._bulk_done(provider, rt, op, operation, answer))
            elif status == 404 and op.kind in ("delete", "disable"):
                results.append(OpResult(ok=True, target_id=op.target_id))
            elif status in (404, 409):
                results.append(await self._apply_one(provider, rt, op))
            elif status == NOT_IMPLEMENTED and operation["method"] == "PATCH":
                self.patch_refused = True  # the single way: read, merge and PUT
                results.append(await self._apply_one(provider, rt, op))
            else:
                results.append(OpResult(ok=False, error=scim_error(detail, status)))
        return results

    async def _bulk_done(
        self,
        provider: Provider,
        rt: ResourceType,
        op: Op,
        operation: Mapping[str, Any],
        answer: Mapping[str, Any],
    ) -> OpResult:
        """A bulk operation the server answered 2xx: checked against the resource it
        answered, where it answered one."""
        target_id = op.target_id
        if op.kind == "create":
            target_id = str(answer.get("location") or "").rstrip("/").rsplit("/", 1)[-1]
            if not target_id:
                return OpResult(ok=False, error="the server named no created resource")
            resource = answer.get("response")
            return await self._created(provider, rt, op, operation["data"], target_id, resource)
        if operation["method"] == "PATCH":
            sent = written_by_patch(operation["data"]["Operations"])
            ignored = await self._ignored(operation["path"], sent, answer.get("response"))
            if ignored:
                return OpResult(ok=False, error=ignored)
        return OpResult(ok=True, target_id=target_id)

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
            r, ignored = await self._modify(provider, location, {"active": False}, None)
            if r.status == 404:
                return OpResult(ok=True, target_id=op.target_id)  # nothing left to disable
        else:
            r, ignored = await self._modify(
                provider, location, op.data or {}, op.previous, enable=op.enable
            )
            if r.status == 404:  # deleted in the target behind our back: create it again
                return await self._create(provider, rt, op)
        if not r.ok:
            return self._failed(r)
        if ignored:
            return OpResult(ok=False, error=ignored)
        return OpResult(ok=True, target_id=op.target_id)

    async def _create(self, provider: Provider, rt: ResourceType, op: Op) -> OpResult:
        body = shape(op.data or {}, [rt.schema] if rt.schema else [])
        r = await self.client.request("POST", rt.endpoint, body=body)
        if r.ok and isinstance(r.body, Mapping) and r.body.get("id"):
            return await self._created(provider, rt, op, body, str(r.body["id"]), r.body)
        if r.status == 409:
            return await self._adopt(provider, rt, op, body, r)
        return self._failed(r)

    async def _created(
        self,
        provider: Provider,
        rt: ResourceType,
        op: Op,
        body: Mapping[str, Any],
        target_id: str,
        answered: Any,
    ) -> OpResult:
        """A resource the server created from *body*, checked against what it *answered*.
        Where it dropped attributes, one update asks again (some servers take members
        only so); if that does not keep them either, the resource is deleted again, so
        that the object's retry starts clean, and the object fails with the reason."""
        location = f"{rt.endpoint}/{target_id}"
        ignored = await self._ignored(location, body, answered)
        if not ignored:
            return OpResult(ok=True, target_id=target_id)
        r, still = await self._modify(provider, location, op.data or {}, None)
        if r.ok and not still:
            return OpResult(ok=True, target_id=target_id)
        reason = still or f"{ignored}; an update answered {scim_error(r.body, r.status)}"
        gone = await self.client.request("DELETE", location)
        if gone.ok or gone.status == 404:
            return OpResult(ok=False, error=f"{reason}; the {rt.name} it created was deleted")
        return OpResult(
            ok=False,
            error=f"{reason}; the {rt.name} it created ({target_id}) is left in the target: "
            f"deleting it answered {scim_error(gone.body, gone.status)}",
        )

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
        updated, ignored = await self._modify(provider, location, op.data or {}, None)
        if not updated.ok:
            return self._failed(updated)
        if ignored:
            return OpResult(ok=False, error=ignored)
        return OpResult(ok=True, target_id=ids[0])

    async def _modify(
        self,
        provider: Provider,
        location: str,
        data: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        *,
        enable: bool = False,
    ) -> tuple[ScimResponse, str | None]:
        """Write *data* to the resource at *location*: a PATCH, or read-merge-PUT (also
        when the server answers a PATCH 501). The answer, and what the server ignored of
        what was written (None if nothing, or the answer carries no resource)."""
        if self._patching(provider):
            operations = patch_operations(data, previous, enable=enable)
            if not operations:
                return ScimResponse(204, None, httpx.Headers()), None
            body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
            r = await self.client.request("PATCH", location, body=body)
            if r.status != NOT_IMPLEMENTED:
                sent = written_by_patch(operations)
                return r, (await self._ignored(location, sent, r.body) if r.ok else None)
            self.patch_refused = True  # announced, not implemented: PUT from now on
        sent = written(data, previous)
        if enable and not writes_active(data):
            sent["active"] = True
        for _ in range(3):  # read, merge, replace; another writer in between: again
            current = await self.client.request("GET", location)
            if not current.ok or not isinstance(current.body, Mapping):
                return current, None
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
                break
        return r, (await self._ignored(location, sent, r.body) if r.ok else None)

    async def _ignored(self, location: str, sent: Mapping[str, Any], answered: Any) -> str | None:
        """What the server dropped of the attributes *sent* to *location*, judged by the
        resource it *answered* (None if it answered none: nothing but ``id``, ``schemas``
        and ``meta``); before saying so, the missing attributes are read back (servers
        may leave some out of write answers; one found kept so is not judged by answers
        again)."""
        if not isinstance(answered, Mapping) or not answered.get("id"):
            return None
        if not set(map(str.casefold, answered)) - {"id", "schemas", "meta"}:
            return None  # an acknowledgement, not the resource
        missing = {
            path: note
            for path, note in ignored_attributes(sent, answered).items()
            if note or path.casefold() not in self.unanswered
        }
        if not missing:
            return None
        names = ",".join(dict.fromkeys(top_path(path) for path in missing))
        again = await self.client.request("GET", location, params={"attributes": names})
        if again.ok and isinstance(again.body, Mapping) and again.body.get("id"):
            read = ignored_attributes(sent, again.body)
            self.unanswered |= {p.casefold() for p, n in missing.items() if not n and p not in read}
            missing = {path: note for path, note in read.items() if path in missing}
        if not missing:
            return None
        return "the server ignored " + ", ".join(
            f"`{path}`" + (f" ({note})" if note else "") for path, note in missing.items()
        )

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
        return await find_ids(
            self.client, provider, provider.resource_type(entity_type), attribute, values
        )
