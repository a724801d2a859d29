"""The fake Stash's HTTP side: ``POST /graphql`` executed by graphql-core over a
:class:`~.library.Library`, faults on demand, and ``/fake/...`` endpoints with which
tests change the library between syncs.

Stash's plugins: a request with the session cookie Stash hands a plugin it runs
(:meth:`FakeStash.plugin_input`) is let in as one with the API key, and
``configuration { plugins }`` answers the plugins' settings (``FakeStash.plugins``, or
``{"op": "plugin_settings", "plugin": ..., "settings": {...}}``).

Faults (``POST /fake/faults``, or ``--faults`` on the command line): each GraphQL
request fails with probability ``rate``, as one of ``500``, ``429`` (with
``Retry-After``), ``timeout`` (an answer only after ``delay`` seconds) or ``truncate``
(a 200 whose JSON is cut short).
"""

from __future__ import annotations

import json
import random
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .library import PLURALS, RELATIONS, Library
from .sdl import SDL
from .tags import merge_tags, set_children

try:
    import graphql
except ModuleNotFoundError as missing:  # an optional dependency: the extra fake-stash
    if missing.name != "graphql":
        raise
    raise ImportError(
        "the fake Stash needs graphql-core: pip install 'sluiced[fake-stash]'", name="graphql"
    ) from None

__all__ = ["FakeStash", "Faults", "build_app"]

SCHEMA = graphql.build_schema(SDL)


@dataclass
class Faults:
    rate: float = 0.0
    kinds: tuple[str, ...] = ("500", "429", "timeout", "truncate")
    delay: float = 3.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def draw(self) -> str | None:
        if self.rate and self.rng.random() < self.rate:
            return self.rng.choice(self.kinds)
        return None


@dataclass
class Hold:
    """Operations whose requests are counted, then left unanswered until released."""

    operations: set[str] = field(default_factory=set)
    released: trio.Event = field(default_factory=trio.Event)


@dataclass
class Stats:
    requests: int = 0
    bytes: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    faults: int = 0


class _Root:
    def __init__(self, library: Library, plugins: dict[str, dict[str, Any]] | None = None) -> None:
        self.lib = library
        self.plugins = {} if plugins is None else plugins

    def configuration(self, info: Any) -> dict[str, Any]:
        return {"plugins": self.plugins}

    def version(self, info: Any) -> dict[str, str]:
        return {"version": "v0.30.1", "hash": "fakestash", "build_time": "2025-12-18"}

    def _one(self, kind: str, ident: str | None) -> Any:
        return self.lib.tables[kind].get(ident or "")

    def findScene(self, info: Any, id: str | None = None) -> Any:
        return self._one("scene", id)

    def findPerformer(self, info: Any, id: str) -> Any:
        return self._one("performer", id)

    def findTag(self, info: Any, id: str) -> Any:
        return self._one("tag", id)

    def findStudio(self, info: Any, id: str) -> Any:
        return self._one("studio", id)

    def findScenes(
        self, info: Any, scene_filter: Any = None, ids: Any = None, filter: Any = None
    ) -> Any:
        return self.lib.find("scene", scene_filter, ids, filter)

    def findPerformers(
        self, info: Any, performer_filter: Any = None, filter: Any = None, ids: Any = None
    ) -> Any:
        return self.lib.find("performer", performer_filter, ids, filter)

    def findTags(
        self, info: Any, tag_filter: Any = None, filter: Any = None, ids: Any = None
    ) -> Any:
        return self.lib.find("tag", tag_filter, ids, filter)

    def findStudios(
        self, info: Any, studio_filter: Any = None, filter: Any = None, ids: Any = None
    ) -> Any:
        return self.lib.find("studio", studio_filter, ids, filter)

    def findSceneMarkers(
        self, info: Any, scene_marker_filter: Any = None, filter: Any = None, ids: Any = None
    ) -> Any:
        rest = {k: v for k, v in (scene_marker_filter or {}).items() if k != "scene_filter"}
        if rest:
            raise ValueError(f"the fake does not filter markers by {', '.join(rest)}")
        return self.lib.find_markers(ids, filter, (scene_marker_filter or {}).get("scene_filter"))


def _resolver(library: Library) -> Any:
    def resolve(source: Any, info: Any, **args: Any) -> Any:
        if isinstance(source, dict) and info.field_name == "plugins" and "_kind" not in source:
            wanted = args.get("include")
            return {k: v for k, v in source["plugins"].items() if wanted is None or k in wanted}
        if isinstance(source, dict):
            if source.get("_kind") == "tag" and info.field_name == "children":
                return [library.tables["tag"][i] for i in library.children_of(source["id"])]
            value = source.get(info.field_name)
            relation = RELATIONS.get((source.get("_kind", ""), info.field_name))
            if relation is None:
                return value
            target, many = relation
            table = library.tables[target]
            if many:
                return [table[i] for i in value or () if i in table]
            return table.get(value) if value else None
        return graphql.default_field_resolver(source, info, **args)

    return resolve


def build_app(
    library: Library,
    *,
    api_key: str | None = None,
    faults: Faults | None = None,
    session: str | None = None,
    plugins: dict[str, dict[str, Any]] | None = None,
) -> Starlette:
    """The fake's app over *library*: *api_key* (the ``ApiKey`` header) or the
    *session* cookie is required when given; *plugins* are the settings of Stash's
    plugins, by plugin id (changed in place by ``plugin_settings``)."""
    faults = faults or Faults()
    stats = Stats()
    hold = Hold()
    plugins = {} if plugins is None else plugins
    root = _Root(library, plugins)
    resolver = _resolver(library)
    parsed: dict[str, tuple[graphql.DocumentNode, list[str]]] = {}

    def parse(query: str) -> tuple[graphql.DocumentNode, list[str]]:
        """The document and what the schema refuses in it (each query text once)."""
        if query not in parsed:
            if len(parsed) > 1000:  # by-id confirmations are each a new text
                parsed.clear()
            document = graphql.parse(query)
            parsed[query] = (document, [e.message for e in graphql.validate(SCHEMA, document)])
        return parsed[query]

    async def graphql_endpoint(request: Request) -> Response:
        if (
            api_key is not None
            and request.headers.get("apikey") != api_key
            and (session is None or request.cookies.get("session") != session)
        ):
            return Response("Unauthorized", status_code=401)
        body = await request.json()
        stats.requests += 1
        fault = faults.draw()
        if fault is not None:
            stats.faults += 1
            if fault == "500":
                return Response("internal error", status_code=500)
            if fault == "429":
                return Response("slow down", status_code=429, headers={"Retry-After": "1"})
            if fault == "timeout":
                await trio.sleep(faults.delay)
        document, invalid = parse(body["query"])
        if invalid:  # as Stash (gqlgen) answers a document its schema does not allow
            return JSONResponse(
                {
                    "errors": [
                        {"message": m, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}
                        for m in invalid
                    ],
                    "data": None,
                },
                status_code=422,
            )
        for definition in document.definitions:
            if not isinstance(definition, graphql.OperationDefinitionNode):
                continue  # fragments are not requests
            name = getattr(definition.name, "value", None)
            if name:
                stats.by_operation[name] = stats.by_operation.get(name, 0) + 1
            if name in hold.operations:  # a test kills its client meanwhile
                await hold.released.wait()
        result = graphql.execute(
            SCHEMA,
            document,
            root_value=root,
            variable_values=body.get("variables"),
            field_resolver=resolver,
        )
        if isinstance(result, graphql.ExecutionResult):
            payload: dict[str, Any] = {"data": result.data}
            if result.errors:
                payload["errors"] = [{"message": e.message, "path": e.path} for e in result.errors]
        else:  # pragma: no cover - sync resolvers only
            raise TypeError("async execution")
        text = json.dumps(payload)
        stats.bytes += len(text.encode())
        if fault == "truncate":
            text = text[: len(text) // 2]
        return Response(text, media_type="application/json")

    async def mutate(request: Request) -> Response:
        """Test control: ``{"op": ..., ...}`` changes the library or the server."""
        body = await request.json()
        op = body.pop("op")
        result: Any = None
        if op == "add":
            result = library.add(body.pop("kind"), **body)
        elif op == "update":
            library.update(body.pop("kind"), body.pop("id"), **body)
        elif op == "delete":
            try:
                library.delete(body["kind"], body["id"])
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
        elif op == "set_children":  # tagUpdate(id, child_ids)
            set_children(library, body["id"], body["children"])
        elif op == "rename_file":
            library.rename_file(
                body["scene_id"], body["basename"], body.get("folder", "/library"), body.get("zip")
            )
        elif op == "set_marker":
            result = library.set_marker(body.pop("scene_id"), body.pop("marker_id", None), **body)
        elif op == "delete_marker":
            library.delete_marker(body["scene_id"], body["marker_id"])
        elif op == "merge_tags":
            merge_tags(library, body["sources"], body["destination"])
        elif op == "plugin_settings":  # what the Stash UI's plugin settings save
            plugins[body["plugin"]] = dict(body["settings"])
        elif op == "hold":  # {"operations": [...]}: held until a hold without them
            hold.released.set()
            hold.operations = set(body.get("operations") or ())
            hold.released = trio.Event()
        elif op == "clock":
            library.fixed_now = datetime.fromisoformat(body["now"]) if body.get("now") else None
        elif op == "faults":
            faults.rate = float(body.get("rate", 0.0))
            faults.kinds = tuple(body.get("kinds", faults.kinds))
            faults.delay = float(body.get("delay", faults.delay))
        else:
            return JSONResponse({"error": f"unknown op {op}"}, status_code=400)
        return JSONResponse({"ok": True, "result": result})

    async def get_stats(request: Request) -> Response:
        counts = {PLURALS[k]: len(v) for k, v in library.tables.items()}
        return JSONResponse(
            {
                "requests": stats.requests,
                "bytes": stats.bytes,
                "faults": stats.faults,
                "byOperation": stats.by_operation,
                "counts": counts,
            }
        )

    async def reset_stats(request: Request) -> Response:
        stats.requests, stats.bytes, stats.faults = 0, 0, 0
        stats.by_operation.clear()
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/graphql", graphql_endpoint, methods=["POST"]),
            Route("/fake/mutate", mutate, methods=["POST"]),
            Route("/fake/stats", get_stats, methods=["GET"]),
            Route("/fake/stats/reset", reset_stats, methods=["POST"]),
        ]
    )


class FakeStash:
    """The fake served on 127.0.0.1 from a thread of its own (its own trio loop)::

    with FakeStash(generate(scenes=100)) as stash:
        ... stash.url ...
    """

    def __init__(
        self,
        library: Library,
        *,
        api_key: str | None = None,
        faults: Faults | None = None,
        port: int = 0,
    ) -> None:
        self.library = library
        #: The session cookie handed to the plugins Stash runs.
        self.session = secrets.token_hex(16)
        #: The settings of Stash's plugins, by plugin id.
        self.plugins: dict[str, dict[str, Any]] = {}
        self.app = build_app(
            library, api_key=api_key, faults=faults, session=self.session, plugins=self.plugins
        )
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.sock.setblocking(False)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop: trio.Event | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None

    def plugin_input(
        self,
        hook_type: str,
        ident: int,
        input: Any = None,
        input_fields: list[str] | None = None,
        *,
        plugin_dir: str = "",
    ) -> dict[str, Any]:
        """The JSON Stash writes on the standard input of a raw plugin it runs for a
        hook (``common.PluginInput``: its ``server_connection``, in Go's field names,
        and ``args.hookContext``), pointing at this fake."""
        host, _, port = self.url.removeprefix("http://").rpartition(":")
        context: dict[str, Any] = {"id": ident, "type": hook_type, "input": input}
        if input_fields:
            context["inputFields"] = input_fields
        return {
            "server_connection": {
                "Scheme": "http",
                "Host": host,
                "Port": int(port),
                "SessionCookie": {
                    "Name": "session",
                    "Value": self.session,
                    "Path": "",
                    "Domain": "",
                    "Expires": "0001-01-01T00:00:00Z",
                    "MaxAge": 0,
                    "Secure": False,
                    "HttpOnly": False,
                    "SameSite": 0,
                    "Raw": "",
                    "Unparsed": None,
                },
                "Dir": "",
                "PluginDir": plugin_dir,
            },
            "args": {"hookContext": context},
        }

    async def serve(self) -> None:
        """Serve until cancelled (for the command line)."""
        from sluiced.api.server import serve

        await serve(self.app, [self.sock])

    def __enter__(self) -> FakeStash:
        started = threading.Event()

        async def main() -> None:
            self._stop = trio.Event()
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.serve)
                started.set()
                await self._stop.wait()
                nursery.cancel_scope.cancel()

        self._thread = threading.Thread(
            target=trio.run, args=(main,), name="fake-stash", daemon=True
        )
        self._thread.start()
        started.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._stop is not None:
            self._token.run_sync_soon(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()
