"""A scripted SCIM service provider behind ``httpx.MockTransport``, with the habits of
servers in the wild that scim2-server does not have: a base path with endpoints written
root-relative or absolute, 501 answers, attributes dropped or left out of answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from sluiced.plugins.scim.client import CORE_GROUP, CORE_USER, ScimClient
from sluiced.tables import Secret

BASE = "http://scim.test/scim/v2"
BASE_PATH = "/scim/v2"
TOKEN = "wild-token-secret"
_FILTER = re.compile(r'^(\w+) eq "(.*)"$')


def _error(status: int, detail: str, scim_type: str | None = None) -> httpx.Response:
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return httpx.Response(status, json={**body, "status": str(status)})


@dataclass
class WildScim:
    #: ``/ResourceTypes`` endpoints by resource type name, written as the server writes them.
    endpoints: dict[str, str] = field(
        default_factory=lambda: {"User": "/Users", "Group": "/Groups"}
    )
    patch: bool = True
    bulk: bool = False
    #: Answer a PATCH (alone or in a bulk request) 501.
    patch_501: bool = False
    #: Answer ``POST /Bulk`` 501 whole.
    bulk_501: bool = False
    #: Answer 501 to a write whose body carries one of these attributes.
    unimplemented: frozenset[str] = frozenset()
    #: Attributes a filter cannot name: 501.
    unfilterable: frozenset[str] = frozenset()
    #: Attributes dropped from a POST / PATCH / PUT body before it is stored.
    drop_on_create: frozenset[str] = frozenset()
    drop_on_update: frozenset[str] = frozenset()
    #: Attributes left out of the answers to writes (kept, and read back by a GET).
    omit_in_answers: frozenset[str] = frozenset()
    #: Applied to a resource before it is stored (a server's normalisation).
    normalise: Callable[[dict[str, Any]], dict[str, Any]] = lambda r: r
    store: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    hosts: set[str] = field(default_factory=set)
    serial: int = 0

    def client(self) -> ScimClient:
        return ScimClient(
            BASE,
            token=Secret(TOKEN, "test"),
            attempts=3,
            transport=httpx.MockTransport(self.handle),
        )

    def resources(self, collection: str) -> list[dict[str, Any]]:
        return list(self.store.get(collection, {}).values())

    # -- the server ---------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        self.hosts.add(request.url.host)
        path = request.url.path
        self.seen.append(f"{request.method} {path}")
        if request.url.host != "scim.test" or not path.startswith(f"{BASE_PATH}/"):
            return _error(404, f"no such path {path}")
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        parts = path[len(BASE_PATH) + 1 :].split("/")
        body = json.loads(request.content) if request.content else None
        if parts == ["ServiceProviderConfig"]:
            return httpx.Response(200, json=self._config())
        if parts == ["ResourceTypes"]:
            return httpx.Response(200, json=self._resource_types())
        if parts == ["Bulk"] and request.method == "POST":
            return self._bulk(body)
        if parts[0] not in ("Users", "Groups") or len(parts) > 2:
            return _error(404, f"no such path {path}")
        params = dict(request.url.params)
        return self._one(
            request.method, parts[0], parts[1] if len(parts) == 2 else None, body, params
        )

    def _config(self) -> dict[str, Any]:
        return {
            "patch": {"supported": self.patch},
            "bulk": {"supported": self.bulk, "maxOperations": 100, "maxPayloadSize": 1 << 20},
            "filter": {"supported": True, "maxResults": 100},
            "etag": {"supported": False},
        }

    def _resource_types(self) -> dict[str, Any]:
        schemas = {"User": CORE_USER, "Group": CORE_GROUP}
        listed = [
            {"name": name, "endpoint": endpoint, "schema": schemas.get(name, "")}
            for name, endpoint in self.endpoints.items()
        ]
        return {"totalResults": len(listed), "Resources": listed}

    def _one(
        self,
        method: str,
        collection: str,
        rid: str | None,
        body: Any,
        params: dict[str, str],
    ) -> httpx.Response:
        items = self.store.setdefault(collection, {})
        if method == "GET" and rid is None:
            found = list(items.values())
            m = _FILTER.match(params.get("filter", ""))
            if m and m.group(1) in self.unfilterable:
                return _error(501, f"filtering on {m.group(1)} is not implemented")
            if m:
                attribute, value = m.groups()
                found = [r for r in found if str(r.get(attribute, "")).lower() == value.lower()]
            start, count = int(params.get("startIndex", 1)), int(params.get("count", 100))
            page = found[start - 1 : start - 1 + count]
            return httpx.Response(
                200, json={"totalResults": len(found), "startIndex": start, "Resources": page}
            )
        if method == "POST" and rid is None:
            return self._write(collection, None, body, self.drop_on_create, 201)
        if rid not in items:
            return _error(404, f"{collection}/{rid} not found")
        if method == "GET":
            return httpx.Response(200, json=items[rid])
        if method == "DELETE":
            del items[rid]
            return httpx.Response(204)
        if method == "PUT":
            return self._write(collection, rid, body, self.drop_on_update, 200)
        if method == "PATCH":
            if self.patch_501:
                return _error(501, "PATCH is not implemented")
            merged = dict(items[rid])
            for operation in body["Operations"]:
                if operation["op"] == "replace":
                    merged[operation["path"]] = operation["value"]
                else:
                    merged.pop(operation["path"], None)
            return self._write(collection, rid, merged, self.drop_on_update, 200)
        return _error(405, method)

    def _write(
        self,
        collection: str,
        rid: str | None,
        body: dict[str, Any],
        drop: frozenset[str],
        status: int,
    ) -> httpx.Response:
        for name in self.unimplemented & set(body):
            return _error(501, f"the attribute {name} is not implemented")
        if rid is None:
            self.serial += 1
            rid = f"{collection[0].lower()}{self.serial}"
        resource = {k: v for k, v in body.items() if k not in drop and k not in ("id", "meta")}
        resource = self.normalise({**resource, "id": rid})
        self.store.setdefault(collection, {})[rid] = resource
        answer = {k: v for k, v in resource.items() if k not in self.omit_in_answers}
        return httpx.Response(status, json=answer)

    def _bulk(self, body: dict[str, Any]) -> httpx.Response:
        if self.bulk_501:
            return _error(501, "bulk is not implemented")
        answers = []
        for operation in body["Operations"]:
            method, path = operation["method"], operation["path"]
            if method == "PATCH" and self.patch_501:
                answers.append({"method": method, "status": "501"})
                continue
            collection, _, rid = path.strip("/").partition("/")
            r = self._one(method, collection, rid or None, operation.get("data"), {})
            answer: dict[str, Any] = {"method": method, "status": str(r.status_code)}
            if r.status_code == 201:
                answer["location"] = f"{BASE}/{collection}/{r.json()['id']}"
            answers.append(answer)
        return httpx.Response(200, json={"Operations": answers})
