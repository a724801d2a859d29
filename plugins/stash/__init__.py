"""Built-in plugin ``stash``: mirror a Stash server into a SQLite or PostgreSQL database.

Connectors::

    [integrations.stash.source]
    connector = "stash"
    url = "http://127.0.0.1:9999"       # Stash's address (GraphQL at /graphql)
    api_key_file = "/etc/sluiced/stash-api-key"   # or api_key_env / api_key_credential
    timeout = "60s"
    overlap = "70m"                     # incremental passes re-read this much before the watermark

    [integrations.stash.target]
    connector = "stash-mirror"
    path = "var/stash-mirror.sqlite3"   # the mirror users query
    # or, in PostgreSQL (any node can run the integration):
    # dsn = "postgresql://sluiced@db.example.org/media"   # no password in it
    # password_file = "/etc/sluiced/mirror-password"     # or password_env / _credential
    # schema = "stash"                                   # the tables' schema
    page_size = 250                     # scenes per request
    hook_delay = "1s"                   # changes Stash's hooks report: synced after this quiet time,
    hook_max_delay = "1m"               # or this long after the first, while they keep coming

Entity types: performer, tag, studio, scene (more through ``sluiced_entity_types``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluiced.connectors import ConnectorContext, ConnectorFactory, Source, Target
from sluiced.hookspecs import hookimpl
from sluiced.storeconfig import check_schema, check_url
from sluiced.tables import Secret, TableReader

from .client import StashClient
from .dialect import MirrorDb
from .entities import BUILTIN_ENTITY_TYPES, EntityType
from .mirror import Mirror
from .source import StashSource
from .target import MirrorTarget

if TYPE_CHECKING:
    from sluiced.api import JobType, Route
    from sluiced.ctl import Command

__all__ = [
    "StashConnector",
    "StashMirrorConnector",
    "sluiced_api_routes",
    "sluiced_connectors",
    "sluiced_ctl_commands",
    "sluiced_entity_types",
    "sluiced_job_types",
]


@dataclass(frozen=True)
class StashSettings:
    url: str
    api_key: Secret | None
    timeout: timedelta
    #: None: not set here (70 minutes, or the mirror's ``overlap`` if it sets one).
    overlap: timedelta | None


@dataclass(frozen=True)
class MirrorSettings:
    #: The SQLite file, or None: the mirror is in PostgreSQL (``dsn``).
    path: Path | None
    page_size: int
    #: The overlap where earlier versions documented it; the source's own wins.
    overlap: timedelta | None = None
    dsn: str | None = None
    password: Secret | None = None
    schema: str = "stash"
    #: The quiet time after which changes reported by Stash's hooks are synced, and
    #: the longest they wait while more keep coming (``coalesce.py``).
    hook_delay: timedelta = timedelta(seconds=1)
    hook_max_delay: timedelta = timedelta(minutes=1)


def _unreadable(dsn: str) -> str | None:
    """Why libpq cannot read *dsn*, or None."""
    import psycopg  # installed: check_url found it

    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return None


class StashConnector(ConnectorFactory):
    name = "stash"
    description = "a Stash server's GraphQL API"
    roles = frozenset({"source"})

    def parse_settings(self, reader: TableReader) -> StashSettings:
        url = reader.get_str("url")
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            reader.problems.add(
                reader.key("url"), f'"{url}"', "an http:// or https:// address of Stash"
            )
        settings = StashSettings(
            url=url if isinstance(url, str) else "",
            api_key=reader.get_secret("api_key", required=False),
            timeout=reader.get_duration("timeout", timedelta(seconds=60), positive=True),
            overlap=reader.get_duration("overlap", None),
        )
        reader.finish()
        return settings

    def open_source(self, settings: Any, ctx: ConnectorContext) -> Source:
        client = StashClient(
            settings.url, api_key=settings.api_key, timeout=settings.timeout.total_seconds()
        )
        # Entity types from every plugin (galleries, groups, ...) are read with their queries.
        queries = {n: e.queries for n, e in ctx.entity_types.items() if isinstance(e, EntityType)}
        source = StashSource(client, queries=queries)
        if settings.overlap is not None:
            source.overlap, source.overlap_set = settings.overlap, True
        return source


class StashMirrorConnector(ConnectorFactory):
    name = "stash-mirror"
    description = "a SQLite or PostgreSQL mirror of Stash (its jobs: sync, sync_scenes)"
    roles = frozenset({"target"})
    keyed_by_source_ids = True

    def __init__(self, entity_types: Sequence[EntityType] = BUILTIN_ENTITY_TYPES) -> None:
        self.entity_types = {e.name: e for e in entity_types}

    def parse_settings(self, reader: TableReader) -> MirrorSettings:
        dsn = reader.get_str("dsn", None)
        path = reader.get_path("path", None)
        if ("dsn" in reader.table) == ("path" in reader.table):
            reader.problems.add(
                reader.key("path"),
                "both path and dsn" if "dsn" in reader.table else "nothing",
                'one of path (a SQLite file) or dsn (a "postgresql://" URL)',
            )
        if isinstance(dsn, str):
            known = len(reader.problems.items)
            check_url(reader, "dsn", dsn, secret="password", otherwise="or path, a SQLite file")
            if len(reader.problems.items) == known and (why := _unreadable(dsn)) is not None:
                reader.problems.add(
                    reader.key("dsn"), f"a URL libpq cannot read ({why})", "a libpq connection URL"
                )
        schema = reader.get_str("schema", "stash")
        check_schema(reader, "schema", schema)
        settings = MirrorSettings(
            path=path,
            dsn=dsn if isinstance(dsn, str) else None,
            password=reader.get_secret("password", required=False),
            schema=schema if isinstance(schema, str) else "stash",
            page_size=reader.get_int("page_size", 250, minimum=1),
            # Earlier versions documented ``overlap`` here: it still counts, unless the
            # source's table sets its own (where it belongs: it is how the source reads).
            overlap=reader.get_duration("overlap", None),
            hook_delay=reader.get_duration("hook_delay", timedelta(seconds=1)),
            hook_max_delay=reader.get_duration("hook_max_delay", timedelta(minutes=1)),
        )
        reader.finish()
        return settings

    def open_target(self, settings: Any, ctx: ConnectorContext) -> Target:
        # Entity types from every plugin (galleries, groups, ... of third parties) join ours.
        types = dict(self.entity_types)
        types.update({n: e for n, e in ctx.entity_types.items() if isinstance(e, EntityType)})
        db: MirrorDb | Path
        if settings.dsn is not None:
            from .pgmirror import PostgresMirrorDb  # psycopg: checked by parse_settings

            db = PostgresMirrorDb(settings.dsn, password=settings.password, schema=settings.schema)
        else:
            assert settings.path is not None
            db = settings.path
        mirror = Mirror(db, list(types.values()))
        return MirrorTarget(mirror, page_size=settings.page_size, overlap=settings.overlap)


@hookimpl
def sluiced_connectors() -> Sequence[ConnectorFactory]:
    return [StashConnector(), StashMirrorConnector()]


@hookimpl
def sluiced_entity_types() -> Sequence[EntityType]:
    return list(BUILTIN_ENTITY_TYPES)


# The control plane's parts are imported when asked for: sluicectl asks for its
# commands only, and needs none of the API.
@hookimpl
def sluiced_job_types() -> Sequence[JobType]:
    from .routes import JOB_TYPES

    return JOB_TYPES


@hookimpl
def sluiced_api_routes() -> Sequence[Route]:
    from .hooks import ROUTES as HOOK_ROUTES
    from .routes import ROUTES

    return (*ROUTES, *HOOK_ROUTES)


@hookimpl
def sluiced_ctl_commands() -> Sequence[Command]:
    from .ctl import COMMANDS

    return COMMANDS
