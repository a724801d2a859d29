"""Talking to Stash's GraphQL API over httpx.

``POST {url}/graphql`` with the API key in the ``ApiKey`` header. Errors are sorted the
way the sync engine needs them:

* connection failures, timeouts, 5xx, 429 (with ``Retry-After``) and truncated answers
  -> :class:`~sluiced.errors.TransientError` (retried with backoff);
* 401/403 -> :class:`~sluiced.errors.CredentialsError` (quarantine at once);
* an answer that is not GraphQL -> :class:`~sluiced.errors.ProtocolError` ("is this
  Stash?");
* GraphQL errors in an answer -> :class:`StashQueryError` with Stash's messages.

The key never appears in errors or logs: only the URL is named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from sluiced.backoff import parse_retry_after
from sluiced.errors import CredentialsError, ProtocolError, SyncError, TransientError
from sluiced.tables import Secret

from .queries import VERSION

__all__ = ["StashClient", "StashQueryError"]


class StashQueryError(SyncError):
    """Stash answered with GraphQL errors (``messages``)."""

    code = "StashQueryError"

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


class StashClient:
    """One Stash server. ``transport`` replaces the network in tests (httpx's
    ``MockTransport``); the client is closed with ``aclose()``."""

    def __init__(
        self,
        url: str,
        *,
        api_key: Secret | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.endpoint = f"{self.url}/graphql"
        headers = {"Accept": "application/json"}
        if api_key is not None:
            headers["ApiKey"] = api_key.reveal()
        self.http = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout, connect=10.0), transport=transport
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> StashClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def execute(
        self, document: str, variables: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run *document* and return its ``data``.

        Raises:
            TransientError, CredentialsError, ProtocolError, StashQueryError: see the module.
        """
        try:
            response = await self.http.post(
                self.endpoint, json={"query": document, "variables": dict(variables or {})}
            )
        except httpx.TimeoutException:
            raise TransientError(f"{self.endpoint} did not answer in time") from None
        except httpx.TransportError as exc:
            raise TransientError(f"cannot reach {self.endpoint}: {type(exc).__name__}") from None
        status = response.status_code
        if status in (401, 403):
            raise CredentialsError(
                f"{self.endpoint} refused the API key ({status}); check api_key_file"
            )
        if status == 429 or status >= 500:
            raise TransientError(
                f"{self.endpoint} answered {status}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        try:
            body = json.loads(response.content)
        except ValueError:
            if status == 200 and response.headers.get("content-type", "").startswith(
                "application/json"
            ):
                raise TransientError(f"{self.endpoint} sent a truncated answer") from None
            raise ProtocolError(
                f"{self.endpoint} does not answer GraphQL (HTTP {status}); is the URL Stash's?"
            ) from None
        if not isinstance(body, dict) or ("data" not in body and "errors" not in body):
            raise ProtocolError(f"{self.endpoint} does not answer GraphQL; is the URL Stash's?")
        if body.get("errors"):
            messages = [
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in body["errors"]
            ]
            raise StashQueryError(messages)
        if status != 200 or not isinstance(body.get("data"), dict):
            raise ProtocolError(f"{self.endpoint} answered HTTP {status} without data")
        return body["data"]  # type: ignore[no-any-return]

    async def version(self) -> str:
        """Stash's version (``v0.30.1``): also a check of the URL and the key."""
        data = await self.execute(VERSION)
        version = data.get("version") or {}
        return str(version.get("version") or version.get("hash") or "unknown")
