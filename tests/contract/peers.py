"""The other end of every connector, for the contract suite: a peer holds the data a
source reads (or shows what a target wrote) and opens the connector through its
factory, as the daemon does.

A source peer makes objects numbered 0, 1, ... (``put(n)`` returns the object's source
id), edits them, and names an id the source does not have. A target peer gives the
mapped attributes of object *n* and shows what the target holds, by target id, in a
comparable form (``state``) and in the terms of the contract (``view``: its key, its
name, whether it is active).
"""

from __future__ import annotations

import csv
import gc
import io
import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import AsyncGeneratorType
from typing import Any

from sluiced.connectors import ConnectorContext, ConnectorFactory, Op, Source, Target
from sluiced.plugins.files import FileConnector
from sluiced.plugins.ldap import LdapConnector
from sluiced.plugins.scim import ScimConnector
from sluiced.plugins.scim.source import ScimSource
from sluiced.plugins.stash import StashConnector, StashMirrorConnector
from sluiced.plugins.stash.fake import FakeStash, Library
from sluiced.plugins.stash.source import StashSource
from sluiced.plugins.stash.target import MirrorTarget
from sluiced.tables import Problems, TableReader
from sluiced.testing import MemoryConnector

from ..scimserver import ScimServer
from ..slapd import SERVICE_PASSWORD, Slapd, person

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def settings(factory: ConnectorFactory, table: Mapping[str, Any], base: Path) -> Any:
    """The factory's settings for *table*, as the config loader gets them."""
    problems = Problems("contract.toml")
    reader = TableReader(dict(table), path="c", problems=problems, base_dir=base)
    parsed = factory.parse_settings(reader)
    problems.raise_if_any()
    return parsed


def context(base: Path) -> ConnectorContext:
    return ConnectorContext(integration_id="contract", state_dir=base / "state")


def open_listings(*owners: object) -> int:
    """How many async generators of *owners* (methods of the source or its client) are
    begun or suspended and not yet closed: a read left between pages holds its page
    listings open until it is closed. The SCIM and Stash clients read every HTTP response
    whole within one call, so a listing is what a read holds between pages.

    A listing dropped without being closed is not closed at once: trio keeps it until its
    finalizer runs at a later checkpoint, so it is counted here until then."""
    return sum(
        1
        for obj in gc.get_objects()
        if isinstance(obj, AsyncGeneratorType)
        and obj.ag_frame is not None
        and any(obj.ag_frame.f_locals.get("self") is owner for owner in owners)
    )


@dataclass(frozen=True, kw_only=True)
class View:
    key: str
    name: str
    active: bool


# -- sources -----------------------------------------------------------------------------------
class MemorySourcePeer:
    entity_type = "user"
    missing_id = "nobody"

    def __init__(self, base: Path) -> None:
        self.connector = MemoryConnector()
        self.base = base

    def open(self) -> Source:
        return self.connector.open_source(
            settings(self.connector, {}, self.base), context(self.base)
        )

    def put(self, n: int) -> str:
        self.connector.source.put("user", f"s{n:03d}", name=f"person {n}")
        return f"s{n:03d}"

    def edit(self, ident: str) -> None:
        self.connector.source.put("user", ident, name="edited")

    def damage(self) -> None:
        """Make something the source holds unreadable."""
        self.connector.source.malformed["user"] = {"s999": "cannot be read"}

    def open_resources(self) -> int:
        return self.connector.source.open_reads


class FileSourcePeer:
    """A JSONL or CSV file, replaced whole (as an export job writes it) on every edit."""

    entity_type = "user"
    missing_id = "nobody"

    def __init__(self, base: Path, kind: str) -> None:
        self.kind = kind
        self.base = base
        self.path = base / f"people.{kind}"
        self.rows: dict[str, dict[str, str]] = {}
        self.garbage = ""
        self.factory = FileConnector(kind, "")
        self._write()

    def open(self) -> Source:
        s = settings(self.factory, {"paths": {"user": self.path.name}}, self.base)
        return self.factory.open_source(s, context(self.base))

    def _write(self) -> None:
        if self.kind == "jsonl":
            text = "".join(json.dumps(r) + "\n" for r in self.rows.values()) + self.garbage
        else:
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=["id", "name"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows.values())
            text = out.getvalue() + self.garbage
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)

    def put(self, n: int) -> str:
        self.rows[f"s{n:03d}"] = {"id": f"s{n:03d}", "name": f"person {n}"}
        self._write()
        return f"s{n:03d}"

    def edit(self, ident: str) -> None:
        self.rows[ident] = {**self.rows[ident], "name": "edited"}
        self._write()

    def damage(self) -> None:
        self.garbage = '{"id": "s999", "name": \n' if self.kind == "jsonl" else '"s999,unclosed\n'
        self._write()

    def open_resources(self) -> int:
        """Descriptors of this process open on the file."""
        fds = Path("/proc/self/fd")
        count = 0
        for fd in fds.iterdir():
            try:
                count += os.readlink(fd) == str(self.path)
            except OSError:
                continue
        return count


class ScimSourcePeer:
    entity_type = "User"
    missing_id = "00000000-0000-0000-0000-000000000000"

    def __init__(self, base: Path, server: ScimServer) -> None:
        self.server = server
        self.base = base
        (base / "token").write_text(server.token)
        self.factory = ScimConnector()
        self.opened: list[ScimSource] = []

    def open(self) -> Source:
        s = settings(self.factory, {"url": self.server.url, "token_file": "token"}, self.base)
        source = self.factory.open_source(s, context(self.base))
        assert isinstance(source, ScimSource)
        self.opened.append(source)
        return source

    def put(self, n: int) -> str:
        body = {"schemas": [CORE_USER], "userName": f"s{n:03d}@example.org"}
        return str(self.server.post("/Users", {**body, "displayName": f"person {n}"})["id"])

    def edit(self, ident: str) -> None:
        with self.server.client() as c:
            patch = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": "edited"}],
            }
            assert c.patch(f"/Users/{ident}", json=patch).status_code in (200, 204)

    def open_resources(self) -> int:
        """Page listings of the sources this peer opened, and of their clients, still open."""
        return open_listings(*self.opened, *(s.client for s in self.opened))


class StashSourcePeer:
    """The fake Stash on 127.0.0.1; its clock moves forward by hours between edits, so an
    incremental read can tell them apart."""

    missing_id = "999999"

    def __init__(self, base: Path, fake: FakeStash, kind: str) -> None:
        self.fake = fake
        self.base = base
        self.entity_type = kind
        self.factory = StashConnector()
        self.opened: list[StashSource] = []

    @property
    def library(self) -> Library:
        return self.fake.library

    def open(self) -> Source:
        s = settings(self.factory, {"url": self.fake.url}, self.base)
        source = self.factory.open_source(s, context(self.base))
        assert isinstance(source, StashSource)
        self.opened.append(source)
        return source

    def _tick(self) -> None:
        assert self.library.fixed_now is not None
        self.library.fixed_now += timedelta(hours=3)

    def put(self, n: int) -> str:
        self._tick()
        if self.entity_type == "scene":
            return self.library.add("scene", title=f"scene {n}")
        return self.library.add(self.entity_type, name=f"{self.entity_type} {n}")

    def edit(self, ident: str) -> None:
        self._tick()
        field_name = "title" if self.entity_type == "scene" else "name"
        self.library.update(self.entity_type, ident, **{field_name: "edited"})

    def open_resources(self) -> int:
        """Reads (page listings) of the sources this peer opened, and of their clients,
        still open."""
        return open_listings(*self.opened, *(s.client for s in self.opened))


class LdapSourcePeer:
    """A slapd of its own, read through the service account (a size limit of 500)."""

    entity_type = "user"
    missing_id = "00000000-0000-0000-0000-000000000000"

    def __init__(self, base: Path, server: Slapd) -> None:
        from sluiced.plugins.ldap import LdapConnector

        self.server = server
        self.base = base
        (base / "ldap-password").write_text(SERVICE_PASSWORD)
        self.factory = LdapConnector()
        self.opened: list[Source] = []

    def open(self) -> Source:
        table = {
            "url": self.server.url,
            "bind_dn": self.server.service_dn,
            "password_file": "ldap-password",
            "entities": {
                "user": {"base": self.server.dn("ou=people"), "filter": "(objectClass=person)"}
            },
        }
        source = self.factory.open_source(
            settings(self.factory, table, self.base), context(self.base)
        )
        self.opened.append(source)
        return source

    def put(self, n: int) -> str:
        dn, attrs = person(f"s{n:03d}", displayName=f"person {n}")
        self.server.add(dn, attrs)
        return self.server.people(["entryUUID"])[dn]["entryUUID"][0]

    def edit(self, ident: str) -> None:
        dn = next(
            dn
            for dn, attrs in self.server.people(["entryUUID"]).items()
            if attrs["entryUUID"] == [ident]
        )
        self.server.modify(dn, {"displayName": "edited"})

    def open_resources(self) -> int:
        """Reads of the sources this peer opened still open."""
        return open_listings(*self.opened, *(getattr(s, "connection", s) for s in self.opened))


def empty_stash() -> FakeStash:
    return FakeStash(Library(now=datetime(2025, 6, 1, 12, 0, tzinfo=UTC)))


# -- targets -----------------------------------------------------------------------------------
@dataclass
class MemoryTargetPeer:
    base: Path
    entity_type: str = "user"
    key: str = "id"
    connector: MemoryConnector = field(default_factory=MemoryConnector)

    def __post_init__(self) -> None:
        self.connector.target.reject = lambda op: "refused" if op.source_id == "bad" else None

    def open(self) -> Target:
        return self.connector.open_target(
            settings(self.connector, {}, self.base), context(self.base)
        )

    def source_id(self, n: int) -> str:
        return f"s{n}"

    def data(self, n: int, name: str | None = None) -> dict[str, Any]:
        return {"id": f"s{n:03d}", "name": name or f"person {n}"}

    def refused(self) -> Op:
        return Op(kind="create", source_id="bad", data={"id": "bad", "name": "refused"})

    async def state(self, target: Target) -> dict[str, dict[str, Any]]:
        await target.flush()
        return {k: dict(v) for k, v in self.connector.target.objects.get("user", {}).items()}

    def view(self, obj: Mapping[str, Any]) -> View:
        return View(key=obj["id"], name=obj["name"], active=obj.get("active", True) is not False)


@dataclass
class FileTargetPeer:
    base: Path
    kind: str
    entity_type: str = "user"
    key: str = "id"

    def open(self) -> Target:
        factory = FileConnector(self.kind, "")
        s = settings(factory, {"paths": {"user": f"out.{self.kind}"}}, self.base)
        return factory.open_target(s, context(self.base))

    def source_id(self, n: int) -> str:
        return f"s{n}"

    def data(self, n: int, name: str | None = None) -> dict[str, Any]:
        return {"id": f"s{n:03d}", "name": name or f"person {n}"}

    async def state(self, target: Target) -> dict[str, dict[str, Any]]:
        await target.flush()
        path = self.base / f"out.{self.kind}"
        if not path.exists():
            return {}
        if self.kind == "jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines() if line]
        else:
            rows = list(csv.DictReader(io.StringIO(path.read_text())))
        return {str(r["id"]): r for r in rows}

    def view(self, obj: Mapping[str, Any]) -> View:
        active = obj.get("active", True)  # a CSV file writes "false"
        return View(key=obj["id"], name=obj["name"], active=str(active).lower() != "false")


@dataclass
class ScimTargetPeer:
    base: Path
    server: ScimServer
    entity_type: str = "User"
    key: str = "userName"

    def open(self) -> Target:
        (self.base / "token").write_text(self.server.token)
        factory = ScimConnector()
        s = settings(factory, {"url": self.server.url, "token_file": "token"}, self.base)
        return factory.open_target(s, context(self.base))

    def source_id(self, n: int) -> str:
        return f"s{n}"

    def data(self, n: int, name: str | None = None) -> dict[str, Any]:
        return {"userName": f"s{n:03d}@example.org", "displayName": name or f"person {n}"}

    def refused(self) -> Op:
        """A user with no userName, which the schema requires."""
        return Op(kind="create", source_id="bad", data={"displayName": "refused"})

    async def state(self, target: Target) -> dict[str, dict[str, Any]]:
        await target.flush()
        return {
            r["id"]: {k: v for k, v in r.items() if k != "meta"} for r in self.server.all("/Users")
        }

    def view(self, obj: Mapping[str, Any]) -> View:
        return View(
            key=obj["userName"], name=obj["displayName"], active=obj.get("active") is not False
        )


@dataclass
class LdapTargetPeer:
    """A slapd's ``ou=people``: inetOrgPerson entries named by ``uid``, disabled by
    ``employeeType: disabled``."""

    base: Path
    server: Slapd
    entity_type: str = "user"
    key: str = "mail"

    def open(self) -> Target:
        (self.base / "ldap-password").write_text(SERVICE_PASSWORD)
        table = {
            "url": self.server.url,
            "bind_dn": self.server.service_dn,
            "password_file": "ldap-password",
            "entities": {
                "user": {
                    "base": self.server.dn("ou=people"),
                    "filter": "(objectClass=inetOrgPerson)",
                    "rdn_attribute": "uid",
                    "object_classes": ["inetOrgPerson"],
                    "disable": {"attribute": "employeeType", "value": "disabled"},
                }
            },
        }
        factory = LdapConnector()
        return factory.open_target(settings(factory, table, self.base), context(self.base))

    def source_id(self, n: int) -> str:
        return f"s{n}"

    def data(self, n: int, name: str | None = None) -> dict[str, Any]:
        uid = f"s{n:03d}"
        return {
            "uid": uid,
            "cn": name or f"person {n}",
            "sn": "Person",
            "mail": f"{uid}@example.org",
        }

    def refused(self) -> Op:
        """A person with no surname, which inetOrgPerson requires."""
        return Op(kind="create", source_id="bad", data={"uid": "bad", "cn": "refused"})

    async def state(self, target: Target) -> dict[str, dict[str, Any]]:
        await target.flush()
        people = self.server.people(["*", "entryUUID"])
        return {
            e["entryUUID"][0]: {k: v[0] if len(v) == 1 else sorted(v) for k, v in e.items()}
            for e in people.values()
        }

    def view(self, obj: Mapping[str, Any]) -> View:
        return View(key=obj["mail"], name=obj["cn"], active="employeeType" not in obj)


@dataclass
class MirrorTargetPeer:
    """The Stash mirror, a SQLite file: objects keyed by their Stash ids (object *n* is
    performer ``n + 1``), written as Stash returns them; it keeps nothing disabled."""

    base: Path
    entity_type: str = "performer"
    key: str = "id"

    def open(self) -> Target:
        factory = StashMirrorConnector()
        s = settings(factory, {"path": "mirror.sqlite3"}, self.base)
        return factory.open_target(s, context(self.base))

    def source_id(self, n: int) -> str:
        return str(n + 1)

    def data(self, n: int, name: str | None = None) -> dict[str, Any]:
        return {"id": str(n + 1), "name": name or f"person {n}", "updated_at": "2025-06-01"}

    async def state(self, target: Target) -> dict[str, dict[str, Any]]:
        assert isinstance(target, MirrorTarget)
        await target.flush()
        table = target.mirror.entity_types[self.entity_type].table
        await target.mirror.count(self.entity_type)  # the file and its tables exist
        conn = sqlite3.connect(target.mirror.path)
        conn.row_factory = sqlite3.Row
        try:
            return {str(r["id"]): dict(r) for r in conn.execute(f"SELECT * FROM {table}")}
        finally:
            conn.close()

    def view(self, obj: Mapping[str, Any]) -> View:
        return View(key=str(obj["id"]), name=obj["name"], active=True)

    def fail_inside(self, target: Target) -> None:
        """Make the target's next transactions fail after their rows are written."""
        assert isinstance(target, MirrorTarget)

        def broken(conn: sqlite3.Connection, state: Mapping[str, str | None]) -> None:
            raise RuntimeError("injected inside the transaction")

        target.mirror._save_state = broken  # type: ignore[method-assign]
