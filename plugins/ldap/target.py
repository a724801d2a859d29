"""An LDAP directory as a target: add, modify, rename, disable and delete entries.

An entry's target id is the value of its entity's ``id_attribute`` (``entryUUID`` by
default: it survives renames), read back after the add with the post-read control
(RFC 4527) where the server offers it, else with a base search. Ids are turned into
DNs with searches of the entity's ``base`` (and ``move_to``), many ids at once, and
remembered for the job.

* create: an add at ``rdn_attribute=value,base`` with the entity's ``object_classes``
  and every attribute of the object that has a value. ``entryAlreadyExists`` (the entry
  was created before a crash, or by someone else) adopts that entry (logged): its id is
  read and it is updated to the object's data; unless it is not an entry of the entity
  (it does not match its ``filter``), or this job created it for another object, or
  another op of the batch names it (two objects with one RDN value): then the object
  fails, for the engine to escrow.
* update: a modify of only the attributes that changed since the last export (read
  from the entry and compared when that is unknown), each a ``replace`` (with no values:
  removed). A changed RDN value is first a modrdn (``deleteoldrdn``; the other values
  of a multi-valued RDN kept), never a delete and an add: the entry keeps its id. An
  entry whose RDN is of another attribute (made by someone else, found by matching)
  keeps its DN. An entry gone from the target is created again.
* after a rename (or a move by ``move_to``), the entries of every entity of the target
  whose DN-valued attributes (``dn_attributes``) list the old DN are changed to list
  the new one, in the same apply (where the server keeps referential integrity itself,
  the search finds none left). The fix is made again while the last export still has
  the old RDN value, so a rename whose fix a crash or an error cut short is finished by
  the replay or the retry.
* disable: ``disable.attribute`` set to ``disable.value``, or a modrdn under
  ``move_to``; an update with ``enable`` removes the attribute, or moves the entry back
  under ``base``. delete: a delete (``noSuchObject`` is success).
* DN-valued attributes (``dn_attributes``: ``member``, ...; and those of the DN syntax)
  arrive as the target ids of the entries they name (the schema maps them with
  ``referencedObject``) and are written as those entries' DNs (a value that is a DN
  already is written as it is); an id no entry of the target has fails the object.

The ops of a batch that take one write each (adds, deletes, disables by attribute,
updates that rename nothing) are pipelined in one call on the connection; the others,
and what the answers leave open (an entry already there, one not where it was), go one
at a time, renames before creates (an RDN value a rename gives up is free for a new
entry).

A refusal of one object (``constraintViolation``, ``objectClassViolation``,
``invalidAttributeSyntax``, ...; see :func:`.errors.object_error`) fails that object
with the result code and the server's message, for the engine to escrow; a server that
is down, busy or unavailable fails the whole apply with a ``TransientError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sluiced.connectors import ConnectorContext, Op, OpResult, Target
from sluiced.errors import SyncError

from .batch import Batch
from .connection import LdapConnection
from .directory import POST_READ, Directory, chunks, first, values_of
from .filters import all_of, any_of, normalize_dn
from .schema import AttributeSchema
from .settings import EntitySettings, LdapSettings
from .writes import References, referenced_ids, references, require_writable

__all__ = ["LdapTarget"]


class LdapTarget(Target):
    def __init__(
        self,
        settings: LdapSettings,
        ctx: ConnectorContext | None = None,
        *,
        connection: LdapConnection | None = None,
    ) -> None:
        self.settings = settings
        self.conn = connection or LdapConnection(settings)
        self.endpoint = self.conn.endpoint
        self.directory = Directory(self.conn, settings)
        self._refs: dict[str, References] = {}

    async def aclose(self) -> None:
        await self.conn.aclose()

    async def validate(self) -> str:
        """Binds, reads the root DSE and checks that every entity's ``base`` (and
        ``move_to``) exists. Returns what it will write.

        Raises:
            CredentialsError: the bind was refused. TransientError: no answer.
            SyncError: a base that does not exist, a target setting missing."""
        dse = await self.conn.root_dse()
        parts = []
        for name, entity in self.settings.entities.items():
            require_writable(entity)
            for container in filter(None, (entity.base, entity.move_to)):
                if await self.conn.read_entry(container, ["1.1"]) is None:
                    raise SyncError(f"entity {name}: {container} does not exist")
            if entity.disable_attribute:
                disable = f"disabled by {entity.disable_attribute}: {entity.disable_value}"
            elif entity.move_to:
                disable = f"disabled by a move under {entity.move_to}"
            else:
                disable = "no way to disable (deprovision with delete)"
            parts.append(
                f"{name}: {'+'.join(entity.object_classes)} entries "
                f"{entity.rdn_attribute}=...,{entity.base}, {disable}"
            )
        vendor = " ".join(
            v.decode("utf-8", "replace")
            for v in (*values_of(dse, "vendorName"), *values_of(dse, "vendorVersion"))
        )
        post_read = POST_READ.encode() in values_of(dse, "supportedControl")
        return (
            f"LDAP server at {self.endpoint}{f' ({vendor})' if vendor else ''}; writes "
            + "; ".join(parts)
            + f"; ids read back {'by the post-read control' if post_read else 'by a search'}"
        )

    # -- applying ops -------------------------------------------------------------------------
    async def apply(self, entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        """Looks up the DNs the ops need (of their entries, and of those their
        DN-valued attributes name), many at once, then writes them (:mod:`.batch`).

        Raises:
            TransientError, CredentialsError, SyncError: as the contract says; a missing
                ``rdn_attribute``/``object_classes`` is a SyncError naming the entity.

        Cancellation: the write in flight completes on the connection's thread; the
        replay finds it done (an add adopts, a rename finds the entry renamed)."""
        entity = self.settings.entity(entity_type)
        schema = await self.conn.schema()
        refs = self._references(entity, schema)
        self.directory.forget_dns()  # what this batch needs is looked up again below
        await self.directory.locate([op.target_id for op in ops if op.target_id], [entity])
        ids: set[str] = set()
        for op in ops:
            ids |= referenced_ids(op.data or {}, refs)
        await self.directory.locate(sorted(ids), list(self.settings.entities.values()))
        return await Batch(self.directory, entity, schema, refs).apply(ops)

    async def find(
        self, entity_type: str, attribute: str, values: Sequence[Any]
    ) -> Mapping[Any, Sequence[str]] | None:
        """The entries of the entity (its ``base``, ``scope`` and ``filter``) whose
        *attribute* equals each value, found with ``(|(attribute=value)...)`` filters,
        every value escaped (RFC 4515); values are told apart case-insensitively."""
        entity = self.settings.entity(entity_type)
        out: dict[Any, list[str]] = {}
        for chunk in chunks(list(dict.fromkeys(values))):
            texts = [str(v) for v in chunk]
            query = all_of(entity.filter, any_of(attribute, texts))
            found = await self.conn.search_all(
                entity.base, entity.scope, query, [entity.id_attribute, attribute]
            )
            for dn, attrs in found:
                tid = first(attrs, entity.id_attribute)
                if tid is None:
                    continue
                self.directory.dns[tid] = dn
                held = {
                    v.decode("utf-8", "replace").casefold() for v in values_of(attrs, attribute)
                }
                for value, text in zip(chunk, texts, strict=True):
                    if text.casefold() in held:
                        out.setdefault(value, []).append(tid)
        return out

    async def count(self, entity_type: str) -> int | None:
        """The entries of the entity (``base``, ``scope``, ``filter``), by a paged search
        that asks for no attributes; the ``base`` entry itself (the container, which a
        filter like ``(objectClass=*)`` matches) is not one of them."""
        entity = self.settings.entity(entity_type)
        base = normalize_dn(entity.base)
        total = 0
        async for entries, _ in self.conn.search(
            entity.base, entity.scope, entity.filter, ["1.1"], page_size=self.settings.page_size
        ):
            total += sum(1 for dn, _ in entries if normalize_dn(dn) != base)
        return total

    def _references(self, entity: EntitySettings, schema: AttributeSchema) -> References:
        refs = self._refs.get(entity.name)
        if refs is None:
            refs = self._refs[entity.name] = references(entity, schema)
        return refs
