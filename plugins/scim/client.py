"""A SCIM 2.0 client (RFC 7644) on httpx, for trio.

Errors are sorted the way the engine needs them:

* connection failures, timeouts, 5xx and 429 are retried here a few times, honouring
  ``Retry-After``; if they persist, :class:`~sluiced.errors.TransientError`;
* 401/403 -> :class:`~sluiced.errors.CredentialsError` (quarantine at once);
* an answer that is not SCIM JSON -> :class:`~sluiced.errors.ProtocolError`;
* other 4xx answers, and 501 (the server does not implement that operation or attribute:
  asking again cannot help), are returned to the caller, which turns them into
  per-object failures (escrowed with the server's ``scimType`` and ``detail``) or tries
  another way.

The bearer token never appears in errors or logs: only URLs are named.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from sluiced.backoff import backoff_delay, parse_retry_after
from sluiced.codec import dumps, loads
from sluiced.errors import CredentialsError, ProtocolError, TransientError
from sluiced.tables import Secret

__all__ = ["Provider", "ResourceType", "ScimClient", "ScimResponse"]

SCIM_JSON = "application/scim+json"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
NOT_IMPLEMENTED = 501


@dataclass(frozen=True)
class ResourceType:
    name: str
    #: Relative to the base URL (``/Users``), or an absolute URL on its origin.
    endpoint: str
    schema: str
    #: Why the resource type cannot be used (its endpoint is on another origin).
    problem: str | None = None

    @property
    def relative(self) -> bool:
        """Whether the endpoint is under the base URL (a bulk operation can name it)."""
        return self.endpoint.startswith("/")


@dataclass(frozen=True)
class Provider:
    """What the server's ServiceProviderConfig announces (RFC 7643 §5)."""

    patch: bool = False
    bulk: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload: int = 0
    filter: bool = False
    filter_max_results: int = 100
    etag: bool = False
    resource_types: Mapping[str, ResourceType] = field(default_factory=dict)

    def resource_type(self, name: str) -> ResourceType:
        for key, rt in self.resource_types.items():
            if key.casefold() == name.casefold():
                if rt.problem:
                    raise ProtocolError(rt.problem)
                return rt
        raise ProtocolError(
            f"the SCIM server serves no {name} resources "
            f"(it serves: {', '.join(self.resource_types) or 'none'})"
        )


_DEFAULT_TYPES = {
    "User": ResourceType("User", "/Users", CORE_USER),
    "Group": ResourceType("Group", "/Groups", CORE_GROUP),
}


@dataclass(frozen=True)
class ScimResponse:
    status: int
    body: Any
    headers: httpx.Headers

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class ScimClient:
    """One SCIM service provider at *url* (the base: ``https://host/scim/v2``)."""

    def __init__(
        self,
        url: str,
        *,
        token: Secret | None = None,
        timeout: float = 30.0,
        attempts: int = 4,
        concurrency: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Accept": f"{SCIM_JSON}, application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        self.http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.attempts = attempts
        self.limiter = trio.CapacityLimiter(concurrency)
        self.requests = 0
        self._provider: Provider | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ScimResponse:
        """Send one request with the JSON *body*, or the JSON already encoded as
        *content*, retrying what is worth retrying; see the module."""
        url = self.url_for(path)
        sent_headers = dict(headers or {})
        if body is not None:
            content = dumps(body).encode()
        if content is not None:
            sent_headers["Content-Type"] = SCIM_JSON
        attempt = 0
        while True:
            attempt += 1
            problem: str
            retry_after: float | None = None
            async with self.limiter:
                self.requests += 1
                try:
                    response = await self.http.request(
                        method, url, content=content, params=params, headers=sent_headers
                    )
                except httpx.TimeoutException:
                    problem = f"{method} {url} did not answer in time"
                except httpx.TransportError as exc:
                    problem = f"cannot reach {url}: {type(exc).__name__}"
                else:
                    status = response.status_code
                    if status in (401, 403):
                        raise CredentialsError(
                            f"{url} refused the bearer token ({status}); check token_file"
                        )
                    if status != 429 and (status < 500 or status == NOT_IMPLEMENTED):
                        return ScimResponse(status, _json(response, url), response.headers)
                    problem = f"{method} {url} answered {status}"
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt >= self.attempts:
                raise TransientError(problem, retry_after=retry_after)
            await trio.sleep(backoff_delay(attempt, base=0.5, cap=10.0, retry_after=retry_after))

    def url_for(self, path: str) -> str:
        """The URL of *path*: relative to the base URL (``/Users``), or absolute."""
        return path if path.startswith(("http://", "https://")) else f"{self.url}{path}"

    def endpoint(self, given: str) -> str:
        """A resource type's endpoint as ``/ResourceTypes`` gives it, as a path relative to
        the base URL (``/Users``), or an absolute URL on the base URL's origin outside its
        path. Servers write it relative (``Users``, ``/Users``, as RFC 7643 §6 has it),
        root-relative (``/scim/v2/Users`` under base path ``/scim/v2``) or absolute.

        Raises:
            ProtocolError: an absolute URL on another origin (the token goes nowhere else).
        """
        text = given.strip()
        base = httpx.URL(self.url)
        base_path = base.path.rstrip("/")
        if text.lower().startswith(("http://", "https://")):
            try:
                url = httpx.URL(text)
            except httpx.InvalidURL:
                url = None
            if url is None or _origin(url) != _origin(base):
                raise ProtocolError(
                    f"{self.url}/ResourceTypes gives the endpoint {text!r}, which is not on "
                    f"{base.scheme}://{base.netloc.decode()}: sluiced sends its token only there"
                )
            path = url.path.rstrip("/")
            if path == base_path or path.startswith(f"{base_path}/"):
                return path[len(base_path) :]
            return f"{base.scheme}://{base.netloc.decode()}{path}"
        path = "/" + text.strip("/")
        if base_path and (path == base_path or path.startswith(f"{base_path}/")):
            return path[len(base_path) :]  # root-relative
        return path

    def _resource_type(self, name: str, endpoint: str, schema: str) -> ResourceType:
        try:
            return ResourceType(name, self.endpoint(endpoint), schema)
        except ProtocolError as exc:
            return ResourceType(name, endpoint, schema, problem=str(exc))

    # -- discovery ----------------------------------------------------------------------------
    async def provider(self) -> Provider:
        """The server's features and resource types, read once (RFC 7644 §4)."""
        if self._provider is None:
            spc = await self.request("GET", "/ServiceProviderConfig")
            if not spc.ok or not isinstance(spc.body, Mapping):
                raise ProtocolError(
                    f"{self.url}/ServiceProviderConfig answered HTTP {spc.status}; "
                    "is the URL the base of a SCIM 2.0 service?"
                )
            sp = spc.body

            def feature(name: str) -> Mapping[str, Any]:
                value = sp.get(name)
                return value if isinstance(value, Mapping) else {}

            types = dict(_DEFAULT_TYPES)
            rts = await self.request("GET", "/ResourceTypes")
            if rts.ok:
                listed = (
                    rts.body.get("Resources", []) if isinstance(rts.body, Mapping) else rts.body
                )
                found = {
                    str(rt["name"]): self._resource_type(
                        str(rt["name"]), str(rt["endpoint"]), str(rt.get("schema", ""))
                    )
                    for rt in listed or []
                    if isinstance(rt, Mapping) and rt.get("name") and rt.get("endpoint")
                }
                types = found or types
            self._provider = Provider(
                patch=bool(feature("patch").get("supported")),
                bulk=bool(feature("bulk").get("supported")),
                bulk_max_operations=int(feature("bulk").get("maxOperations") or 0),
                bulk_max_payload=int(feature("bulk").get("maxPayloadSize") or 0),
                filter=bool(feature("filter").get("supported")),
                filter_max_results=int(feature("filter").get("maxResults") or 100),
                etag=bool(feature("etag").get("supported")),
                resource_types=types,
            )
        return self._provider

    async def check(self) -> Provider:
        """Discovery, then one authenticated read of the users: a check of the URL and
        the token (a server may answer discovery without one)."""
        provider = await self.provider()
        rt = provider.resource_type("User")
        probe = await self.request("GET", rt.endpoint, params={"count": 1})
        if not probe.ok:
            raise ScimRequestError(rt.endpoint, probe)
        return provider

    # -- listing ------------------------------------------------------------------------------
    async def pages(
        self,
        endpoint: str,
        *,
        filter: str | None = None,
        count: int = 100,
        attributes: str | None = None,
        start: int = 1,
    ) -> AsyncGenerator[tuple[list[Mapping[str, Any]], int, int], None]:
        """Yield (resources, next startIndex, totalResults) page by page (RFC 7644 §3.4.2.4)."""
        index = start
        while True:
            params: dict[str, Any] = {"startIndex": index, "count": count}
            if filter:
                params["filter"] = filter
            if attributes:
                params["attributes"] = attributes
            response = await self.request("GET", endpoint, params=params)
            if not response.ok:
                raise ScimRequestError(endpoint, response)
            body = response.body
            if not isinstance(body, Mapping) or not isinstance(body.get("Resources", []), list):
                raise ProtocolError(f"{self.url_for(endpoint)} did not answer a ListResponse")
            resources = [r for r in body.get("Resources", []) if isinstance(r, Mapping)]
            total = int(body.get("totalResults", len(resources)))
            index += len(resources)
            yield resources, index, total
            if not resources or index > total:
                return


class ScimRequestError(ProtocolError):
    """A request the server refused in a way that is not about one object."""

    def __init__(self, endpoint: str, response: ScimResponse) -> None:
        from .resources import scim_error

        super().__init__(f"{endpoint}: {scim_error(response.body, response.status)}")
        self.response = response


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def _json(response: httpx.Response, url: str) -> Any:
    if not response.content:
        return None
    try:
        return loads(response.content)
    except ValueError:
        if response.status_code >= 400:
            return None  # an error page: the status says enough
        raise ProtocolError(
            f"{url} answered HTTP {response.status_code} that is not JSON; is it a SCIM service?"
        ) from None
