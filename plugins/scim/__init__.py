"""Built-in plugin ``scim``: a SCIM 2.0 service provider (RFC 7643/7644) as a source or
a target, over httpx.

Connector table::

    [integrations.hr.target]
    connector = "scim"
    url = "https://idp.example.org/scim/v2"    # the service's base URL
    token_file = "/etc/sluiced/scim-token"     # or token_env / token_credential
    timeout = "30s"                            # per request
    concurrency = 4                            # requests in flight at once
    update = "auto"                            # "patch", "put", or "auto": PATCH if offered
    bulk = true                                # use /Bulk when the server offers it

Entity types (the schema's ``targetObjectName``, or the source's entity types) are the
server's resource type names, ``User`` and ``Group``, found through ``/ResourceTypes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sluiced.connectors import ConnectorContext, ConnectorFactory, Source, Target
from sluiced.hookspecs import hookimpl
from sluiced.tables import Secret, TableReader

from .client import ScimClient
from .source import ScimSource
from .target import ScimTarget

__all__ = ["ScimConnector", "sluiced_connectors"]

UPDATE_METHODS = ("auto", "patch", "put")


@dataclass(frozen=True)
class ScimSettings:
    url: str
    token: Secret | None
    timeout: timedelta
    concurrency: int
    update: str
    bulk: bool


class ScimConnector(ConnectorFactory):
    name = "scim"
    description = "a SCIM 2.0 service provider: Users and Groups"

    def parse_settings(self, reader: TableReader) -> ScimSettings:
        url = reader.get_str("url")
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            reader.problems.add(
                reader.key("url"), f'"{url}"', "the http:// or https:// base URL of a SCIM service"
            )
        update = reader.get_str("update", "auto")
        if update not in UPDATE_METHODS:
            reader.problems.add(reader.key("update"), f'"{update}"', '"auto", "patch" or "put"')
        settings = ScimSettings(
            url=url if isinstance(url, str) else "",
            token=reader.get_secret("token", required=False),
            timeout=reader.get_duration("timeout", timedelta(seconds=30), positive=True),
            concurrency=reader.get_int("concurrency", 4, minimum=1),
            update=update if isinstance(update, str) else "auto",
            bulk=reader.get_bool("bulk", True),
        )
        reader.finish()
        return settings

    def _client(self, settings: ScimSettings) -> ScimClient:
        return ScimClient(
            settings.url,
            token=settings.token,
            timeout=settings.timeout.total_seconds(),
            concurrency=settings.concurrency,
        )

    def open_source(self, settings: Any, ctx: ConnectorContext) -> Source:
        return ScimSource(self._client(settings))

    def open_target(self, settings: Any, ctx: ConnectorContext) -> Target:
        return ScimTarget(self._client(settings), update=settings.update, bulk=settings.bulk)


@hookimpl
def sluiced_connectors() -> Sequence[ConnectorFactory]:
    return [ScimConnector()]
