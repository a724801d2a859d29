"""The Stash client against httpx's MockTransport: how each kind of answer is sorted."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
import pytest

from sluiced.errors import CredentialsError, ProtocolError, TransientError
from sluiced.plugins.stash.client import StashClient, StashQueryError
from sluiced.tables import Secret

KEY = Secret("k3y-value", "env:STASH_KEY")


def client(handler: Callable[[httpx.Request], httpx.Response]) -> StashClient:
    return StashClient(
        "http://stash.test:9999/", api_key=KEY, transport=httpx.MockTransport(handler)
    )


async def test_version_sends_the_key_and_the_query() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"data": {"version": {"version": "v0.30.1", "hash": "h", "build_time": "t"}}}
        )

    c = client(handler)
    assert await c.version() == "v0.30.1"
    await c.aclose()
    assert (
        seen[0].url == "http://stash.test:9999/graphql" and seen[0].headers["ApiKey"] == "k3y-value"
    )
    assert "version" in json.loads(seen[0].content)["query"]


@pytest.mark.parametrize(
    ("response", "error", "text"),
    [
        (httpx.Response(401, text="Unauthorized"), CredentialsError, "refused the API key (401)"),
        (httpx.Response(403), CredentialsError, "(403)"),
        (httpx.Response(502, text="bad gateway"), TransientError, "answered 502"),
        (
            httpx.Response(200, text="<html>not stash</html>"),
            ProtocolError,
            "does not answer GraphQL",
        ),
        (httpx.Response(200, json={"hello": "world"}), ProtocolError, "does not answer GraphQL"),
        (
            httpx.Response(
                200,
                content=b'{"data": {"findScenes": {"cou',
                headers={"content-type": "application/json"},
            ),
            TransientError,
            "truncated",
        ),
        (
            httpx.Response(
                200, json={"errors": [{"message": "scene with id 7 not found"}], "data": None}
            ),
            StashQueryError,
            "scene with id 7 not found",
        ),
    ],
)
async def test_answers_are_sorted(
    response: httpx.Response, error: type[Exception], text: str
) -> None:
    c = client(lambda request: response)
    with pytest.raises(error, match=re.escape(text)) as info:
        await c.execute("query { version { version } }")
    await c.aclose()
    assert "k3y-value" not in str(info.value)


async def test_429_carries_retry_after() -> None:
    c = client(lambda request: httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(TransientError) as info:
        await c.execute("query { version { version } }")
    await c.aclose()
    assert info.value.retry_after == 7


async def test_connection_errors_and_timeouts_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    for handler, text in ((refuse, "cannot reach"), (slow, "did not answer in time")):
        c = client(handler)
        with pytest.raises(TransientError, match=text):
            await c.execute("query { version { version } }")
        await c.aclose()
