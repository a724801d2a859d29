"""An LDAP directory as a target: add, modify, rename, disable and delete entries.

An entry's target id is the value of its entity's ``id_attribute`` (``entryUUID`` by
default: it survives renames), read back after the add with the post-read control
(RFC 4527) where the server offers it, else with a base search. Ids are turned into
DNs with searches of the entity's ``base`` (and ``move_to``), many ids at once, and
remembered for the job.

* create: an add at ``rdn_attribute=value,base`` with the entity's ``object_classes``
  and every attribute of the object that has a value. ``entryAlreadyExists`` (the entry
  was created before a crash, or by someone else) adopts that entry: its id is read and
  it is updated to the object's data.
* update: a modify of only the attributes that changed since the last export (read
  from the entry and compared when that is unknown), each a ``replace`` (with no values:
  removed). A changed RDN value is first a modrdn (``deleteoldrdn``), never a delete and
  an add: the entry keeps its id. An entry gone from the target is created again.
* after a rename (or a move by ``move_to``), the entries of every entity of the target
  whose DN-valued attributes (``dn_attributes``) list the old DN are changed to list
  the new one, in the same apply (where the server keeps referential integrity itself,
  the search finds none left). The fix is made again while the last export still has
  the old RDN value, so a rename whose fix a crash or an error cut short is finished by
  the replay or the retry.
* disable: ``disable.attribute`` set to ``disable.value``, or a modrdn under
  ``move_to``; an update with ``enable`` removes the attribute, or moves the entry back
  under ``base``. delete: a delete (``noSuchObject`` is success).
* DN-valued attributes (``member``, ...) arrive as the target ids of the entries they
  name (the schema maps them with ``referencedObject``) and are written as those
  entries' DNs; an id no entry of the target has fails the object.

A refusal of one object (``constraintViolation``, ``objectClassViolation``,
``invalidAttributeSyntax``, ...; see :func:`.errors.object_error`) fails that object
with the result code and the server's message, for the engine to escrow; a server that
is down, busy or unavailable fails the whole apply with a ``TransientError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ldap  # type: ignore[import-untyped]
import ldap.dn  # type: ignore[import-untyped]

from sluiced.connectors import ConnectorContext, Op, OpResult, Target
from sluiced.errors import SyncError

from .connection import LdapConnection
from .directory import (
    POST_READ,
    Directory,
    Refused,
    Request,
    chunks,
    first,
    post_read_id,
    post_read_request,
    values_of,
)
from .filters import all_of, any_of, normalize_dn, parent, rdn
from .schema import AttributeSchema
from .settings import EntitySettings, LdapSettings
from .writes import (
    MissingReference,
    Mod,
    References,
    add_entry,
    changed_attributes,
    differing_attributes,
    encoder,
    new_rdn,
    rdn_value,
    referenced_ids,
    references,
    replace_mods,
    written_keys,
)

__all__ = ["LdapTarget"]


def _under(dn: str, container: str) -> bool:
    return normalize_dn(parent(dn)) == normalize_dn(container)


def _own_rdn(dn: str) -> str:
    return str(ldap.dn.dn2str([ldap.dn.str2dn(dn)[0]]))


def _rdn_changed(
    entity: EntitySettings, previous: Mapping[str, Any], data: Mapping[str, Any]
) -> bool:
    """Whether the last export had another RDN value than *data* has."""
    before, now = rdn_value(entity, previous), rdn_value(entity, data)
    return bool(before and now and before.casefold() != now.casefold())


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
            self._writable(entity)
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
        """Applies *ops* one after the other on the connection; see the module.

        Raises:
            TransientError, CredentialsError, SyncError: as the contract says; a missing
                ``rdn_attribute``/``object_classes`` is a SyncError naming the entity.

        Cancellation: the write in flight completes on the connection's thread; the
        replay finds it done (an add adopts, a rename finds the entry renamed)."""
        entity = self.settings.entity(entity_type)
        schema = await self.conn.schema()
        await self.directory.locate([op.target_id for op in ops if op.target_id], [entity])
        refs = self._references(entity, schema)
        ids: set[str] = set()
        for op in ops:
            ids |= referenced_ids(op.data or {}, refs)
        await self.directory.locate(sorted(ids), list(self.settings.entities.values()))
        results: list[OpResult | None] = [None] * len(ops)
        planned: list[tuple[int, Request]] = []
        for i, op in enumerate(ops):
            plan = await self._plan(entity, schema, op)
            if isinstance(plan, Request):
                planned.append((i, plan))
            else:
                results[i] = plan
        answers = await self.directory.write_many([request for _, request in planned])
        for (i, _), answer in zip(planned, answers, strict=True):
            results[i] = self._answered(ops[i], answer)
        for i, op in enumerate(ops):  # the rest, and what the pipeline could not settle
            if results[i] is None:
                results[i] = await self._apply_one(entity, schema, op)
        return [r for r in results if r is not None]

    async def _plan(
        self, entity: EntitySettings, schema: AttributeSchema, op: Op
    ) -> Request | OpResult | None:
        """The one write that applies *op*, to be pipelined with the batch's others
        (a create, a delete, a disable by attribute, an update of what changed since
        the last export that renames nothing); its result, when nothing is to be
        written; None when *op* takes more than one write (see :meth:`_apply_one`)."""
        data = op.data or {}
        refs = self._references(entity, schema)
        encode = encoder(schema, refs, self.directory.dns)
        if op.kind == "create":
            self._writable(entity)
            try:
                new, attrs = add_entry(entity, data, encode)
            except (ValueError, MissingReference) as exc:  # no RDN value; an unwritable value
                return OpResult(ok=False, error=str(exc))
            controls = (
                [post_read_request(entity.id_attribute)]
                if await self.directory.offers_post_read()
                else None
            )
            return Request(
                start=lambda c: c.add_ext(new, attrs, serverctrls=controls),
                done=lambda answered: (new, post_read_id(answered, entity.id_attribute)),
            )
        dn = self.directory.dns.get(op.target_id or "")
        if dn is None:
            return None
        if op.kind == "delete":
            return Request(start=lambda c: c.delete_ext(dn))
        if op.kind == "disable":
            if not entity.disable_attribute:
                return None
            value = [str(entity.disable_value).encode()]
            mods: list[Mod] = [(ldap.MOD_REPLACE, entity.disable_attribute, value)]
            return Request(start=lambda c: c.modify_ext(dn, mods))
        if op.previous is None or op.enable or new_rdn(entity, dn, data) is not None:
            return None
        if _rdn_changed(entity, op.previous, data):
            return None
        try:
            changed = changed_attributes(data, op.previous, written_keys(data), schema, refs)
            update = replace_mods(data, changed, encode)
        except (ValueError, MissingReference) as exc:
            return OpResult(ok=False, error=str(exc))
        if not update:
            return OpResult(ok=True, target_id=op.target_id)
        return Request(start=lambda c: c.modify_ext(dn, update))

    def _answered(self, op: Op, answer: Any) -> OpResult | None:
        """The result of *op*'s pipelined write; None: the server's answer (the entry
        is there already, or is not where it was) is settled by :meth:`_apply_one`."""
        if isinstance(answer, Refused):
            if answer.code in ("entryAlreadyExists", "noSuchObject"):
                return None
            return OpResult(ok=False, error=answer.reason)
        if op.kind == "create":
            dn, tid = answer
            if tid is None:
                return None  # no post-read: the single way reads the id (and adopts)
            self.directory.dns[tid] = dn
            return OpResult(ok=True, target_id=tid)
        if op.kind == "delete":
            self.directory.dns.pop(op.target_id or "", None)
        return OpResult(ok=True, target_id=op.target_id)

    async def _apply_one(self, entity: EntitySettings, schema: AttributeSchema, op: Op) -> OpResult:
        if op.kind == "create":
            return await self._create(entity, schema, op)
        assert op.target_id is not None
        tid = op.target_id
        for _ in range(2):
            dn = self.directory.dns.get(tid)
            if dn is None:
                break
            if op.kind == "delete":
                result = await self._delete(tid, dn)
            elif op.kind == "disable":
                result = await self._disable(entity, tid, dn)
            else:
                result = await self._update(entity, schema, op, dn)
            if result is not None:
                return result
            # No entry at dn: moved or deleted behind sluiced's back, so look again.
            self.directory.dns.pop(tid, None)
            await self.directory.locate([tid], [entity])
        if op.kind == "update":  # deleted: created again
            return await self._create(entity, schema, op)
        return OpResult(ok=True, target_id=tid)  # nothing left to disable or delete

    async def _delete(self, tid: str, dn: str) -> OpResult | None:
        """Deletes the entry at *dn*; None if there is none."""
        done = await self.directory.write(lambda c: c.delete_s(dn))
        if isinstance(done, Refused):
            return None if done.code == "noSuchObject" else OpResult(ok=False, error=done.reason)
        self.directory.dns.pop(tid, None)
        return OpResult(ok=True, target_id=tid)

    async def _create(self, entity: EntitySettings, schema: AttributeSchema, op: Op) -> OpResult:
        self._writable(entity)
        data = op.data or {}
        try:
            dn, attrs = add_entry(
                entity, data, encoder(schema, self._references(entity, schema), self.directory.dns)
            )
        except (ValueError, MissingReference) as exc:  # no RDN value; a value LDAP cannot hold
            return OpResult(ok=False, error=str(exc))
        id_attr = entity.id_attribute
        post_read = await self.directory.offers_post_read()

        def add(conn: Any) -> str | None:
            controls = [post_read_request(id_attr)] if post_read else None
            _, _, _, answered = conn.add_ext_s(dn, attrs, serverctrls=controls)
            return post_read_id(answered or (), id_attr)

        done = await self.directory.write(add)
        if isinstance(done, Refused) and done.code != "entryAlreadyExists":
            return OpResult(ok=False, error=done.reason)
        tid = None if isinstance(done, Refused) else done
        if tid is None:
            tid = await self.directory.read_id(dn, id_attr)
        if tid is None:
            return OpResult(ok=False, error=f"{dn} has no {id_attr} to link it by")
        self.directory.dns[tid] = dn
        if isinstance(done, Refused):  # adopt the entry that is there: bring it to data
            adopted = Op(kind="update", source_id=op.source_id, target_id=tid, data=data)
            updated = await self._update(entity, schema, adopted, dn)
            return updated or OpResult(ok=False, error=f"{dn} was deleted while adopted")
        return OpResult(ok=True, target_id=tid)

    async def _update(
        self, entity: EntitySettings, schema: AttributeSchema, op: Op, dn: str
    ) -> OpResult | None:
        """Brings the entry at *dn* to ``op.data``; None if there is no entry at *dn*."""
        assert op.target_id is not None
        data = op.data or {}
        refs = self._references(entity, schema)
        encode = encoder(schema, refs, self.directory.dns)
        keys = written_keys(data)
        try:
            if op.previous is not None:
                changed = changed_attributes(data, op.previous, keys, schema, refs)
            else:
                current = await self.conn.read_entry(dn, keys or ["1.1"])
                if current is None:
                    return None
                changed = differing_attributes(data, current, keys, encode, refs)
            mods = replace_mods(data, changed, encode)
        except (ValueError, MissingReference) as exc:
            return OpResult(ok=False, error=str(exc))
        errors: list[str] = []
        back = None
        if op.enable:
            disable = (entity.disable_attribute or "").casefold()
            if disable and not any(k.casefold() == disable for k in keys):
                mods.append((ldap.MOD_REPLACE, entity.disable_attribute or "", None))
            if entity.move_to and _under(dn, entity.move_to):
                back = entity.base
        renamed = new_rdn(entity, dn, data)
        stale = []
        if renamed or back:
            moved = await self.directory.rename(op.target_id, dn, renamed or _own_rdn(dn), back)
            if isinstance(moved, Refused):
                return (
                    None if moved.code == "noSuchObject" else OpResult(ok=False, error=moved.reason)
                )
            stale.append(dn)
            dn = moved
        elif op.previous is not None and _rdn_changed(entity, op.previous, data):
            # The last export had another RDN value: the rename is done, its fix may not be.
            before = rdn_value(entity, op.previous)
            stale.append(f"{rdn(entity.rdn_attribute or '', before or '')},{parent(dn)}")
        for old in stale:
            errors += await self.directory.fix_references(old, dn)
        if mods:
            done = await self.directory.modify(dn, mods)
            if isinstance(done, Refused):
                if done.code == "noSuchObject" and not stale:
                    return None
                errors.insert(0, done.reason)
        if errors:
            return OpResult(ok=False, error="; ".join(errors))
        return OpResult(ok=True, target_id=op.target_id)

    async def _disable(self, entity: EntitySettings, tid: str, dn: str) -> OpResult | None:
        """Disables the entry at *dn*; None if there is none."""
        if entity.disable_attribute:
            mods: list[Mod] = [
                (ldap.MOD_REPLACE, entity.disable_attribute, [str(entity.disable_value).encode()])
            ]
            done = await self.directory.modify(dn, mods)
            if isinstance(done, Refused):
                return (
                    None if done.code == "noSuchObject" else OpResult(ok=False, error=done.reason)
                )
            return OpResult(ok=True, target_id=tid)
        if not entity.move_to:
            return OpResult(
                ok=False,
                error=f"entity {entity.name} has no disable or move_to: "
                "deprovision with delete, or say how to disable",
            )
        if _under(dn, entity.move_to):
            return OpResult(ok=True, target_id=tid)
        moved = await self.directory.rename(tid, dn, _own_rdn(dn), entity.move_to)
        if isinstance(moved, Refused):
            return None if moved.code == "noSuchObject" else OpResult(ok=False, error=moved.reason)
        errors = await self.directory.fix_references(dn, moved)
        if errors:
            return OpResult(ok=False, error="; ".join(errors))
        return OpResult(ok=True, target_id=tid)

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
        entity = self.settings.entity(entity_type)
        total = 0
        async for entries, _ in self.conn.search(
            entity.base, entity.scope, entity.filter, ["1.1"], page_size=self.settings.page_size
        ):
            total += len(entries)
        return total

    def _references(self, entity: EntitySettings, schema: AttributeSchema) -> References:
        refs = self._refs.get(entity.name)
        if refs is None:
            refs = self._refs[entity.name] = references(entity, schema)
        return refs

    @staticmethod
    def _writable(entity: EntitySettings) -> None:
        missing = [
            key
            for key, value in (
                ("rdn_attribute", entity.rdn_attribute),
                ("object_classes", entity.object_classes),
            )
            if not value
        ]
        if missing:
            raise SyncError(
                f"entity {entity.name}: {' and '.join(missing)} must be set to write entries"
            )
