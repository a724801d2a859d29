"""Looking resources up by one attribute's values, for matching: one ``attribute eq
"value"`` filter per value, concurrently."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import trio

from sluiced.engine import single_errors
from sluiced.errors import ProtocolError

from .client import (
    NOT_IMPLEMENTED,
    Provider,
    ResourceType,
    ScimClient,
    ScimRequestError,
    ScimResponse,
)
from .resources import attribute_value, equality_filter, scim_error

__all__ = ["find_ids"]


def _key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


async def find_ids(
    client: ScimClient,
    provider: Provider,
    rt: ResourceType,
    attribute: str,
    values: Sequence[Any],
) -> Mapping[Any, Sequence[str]]:
    """The ids of the *rt* resources whose *attribute* equals each of *values* (compared
    case-insensitively), by value; values nothing has are left out.

    Raises:
        ProtocolError: the server does not implement filtering on *attribute* (501).
    """
    found: dict[Any, list[str]] = {}
    refused: list[ScimResponse] = []

    async def one(value: Any) -> None:
        try:
            async for resources, _, _ in client.pages(
                rt.endpoint,
                filter=equality_filter(attribute, [value]),
                count=max(provider.filter_max_results, 1),
                attributes=attribute,
            ):
                for resource in resources:
                    got = attribute_value(resource, attribute)
                    if _key(got) == _key(value) and resource.get("id"):
                        found.setdefault(value, []).append(str(resource["id"]))
        except ScimRequestError as exc:
            if exc.response.status != NOT_IMPLEMENTED:
                raise
            refused.append(exc.response)

    with single_errors():
        async with trio.open_nursery() as nursery:
            for value in dict.fromkeys(values):
                nursery.start_soon(one, value)
    if refused:
        raise ProtocolError(
            f"the SCIM server cannot filter {rt.name} resources on {attribute} "
            f"({scim_error(refused[0].body, refused[0].status)}): match on an attribute "
            "it can filter on"
        )
    return found
