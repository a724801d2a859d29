"""How the LDAP target writes one batch of ops of one entity (see :mod:`.target`).

The ops that take one write each (adds, deletes, disables by attribute, updates of what
changed since the last export that rename nothing) are pipelined in one call on the
connection (:meth:`.directory.Directory.write_many`); the others, and what the answers
leave open (an entry already there: adopted; one not where it was: looked up again),
go one at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ldap  # type: ignore[import-untyped]
import ldap.dn  # type: ignore[import-untyped]

from sluiced.connectors import Op, OpResult
from sluiced.logs import get_logger

from .directory import Directory, Refused, Request, post_read_id, post_read_request
from .filters import normalize_dn, parent, rdn
from .schema import AttributeSchema
from .settings import EntitySettings
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
    rdn_with,
    replace_mods,
    require_writable,
    written_keys,
)

__all__ = ["Batch"]

log = get_logger(__name__)


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


class Batch:
    """Ops of *entity* written to *directory*; the DNs of the ops' entries and of the
    entries their DN-valued attributes (*refs*) name are looked up beforehand."""

    def __init__(
        self,
        directory: Directory,
        entity: EntitySettings,
        schema: AttributeSchema,
        refs: References,
    ) -> None:
        self.directory = directory
        self.entity = entity
        self.schema = schema
        self.refs = refs
        self.encode = encoder(schema, refs, directory.dns)
        #: Target id → source id of the ops of the batch being applied that name one.
        self.linked: dict[str, str] = {}

    async def apply(self, ops: Sequence[Op]) -> list[OpResult]:
        """One result per op, in order.

        Raises:
            TransientError, CredentialsError, SyncError: as the connection does; a
                missing ``rdn_attribute``/``object_classes`` is a SyncError."""
        results: list[OpResult | None] = [None] * len(ops)
        self.linked = {op.target_id: op.source_id for op in ops if op.target_id}
        planned: list[tuple[int, Request]] = []
        pipelined: set[str] = set()
        post_read = await self.directory.offers_post_read()
        for i, op in enumerate(ops):
            plan = self._plan(op, post_read)
            if isinstance(plan, Request):
                entry = normalize_dn(plan.dn)
                if entry in pipelined:
                    # A second write of one entry: the server may run a connection's
                    # requests in any order, so it is written after the pipeline, in turn.
                    continue
                pipelined.add(entry)
                planned.append((i, plan))
            else:
                results[i] = plan
        answers = await self.directory.write_many([request for _, request in planned])
        for (i, _), answer in zip(planned, answers, strict=True):
            results[i] = await self._answered(ops[i], answer)
        # The rest, and what the pipeline could not settle; renames before creates, so
        # that an RDN value a rename gives up is free for the entry a create makes.
        for i in sorted(range(len(ops)), key=lambda i: ops[i].kind == "create"):
            if results[i] is None:
                results[i] = await self._one(ops[i])
        return [r for r in results if r is not None]

    def _plan(self, op: Op, post_read: bool) -> Request | OpResult | None:
        """The one write that applies *op*, to be pipelined with the batch's others
        (a create, a delete, a disable by attribute, an update of what changed since
        the last export that renames nothing); its result, when nothing is to be
        written; None when *op* takes more than one write (see :meth:`_one`).
        *post_read*: the server offers the post-read control."""
        data = op.data or {}
        refs = self.refs
        encode = self.encode
        if op.kind == "create":
            require_writable(self.entity)
            try:
                new, attrs = add_entry(self.entity, data, encode)
            except (ValueError, MissingReference) as exc:  # no RDN value; an unwritable value
                return OpResult(ok=False, error=str(exc))
            controls = [post_read_request(self.entity.id_attribute)] if post_read else None
            return Request(
                start=lambda c: c.add_ext(new, attrs, serverctrls=controls),
                done=lambda answered: (new, post_read_id(answered, self.entity.id_attribute)),
                dn=new,
            )
        dn = self.directory.dns.get(op.target_id or "")
        if dn is None:
            return None
        if op.kind == "delete":
            return Request(start=lambda c: c.delete_ext(dn), dn=dn)
        if op.kind == "disable":
            if not self.entity.disable_attribute:
                return None
            value = [str(self.entity.disable_value).encode()]
            mods: list[Mod] = [(ldap.MOD_REPLACE, self.entity.disable_attribute, value)]
            return Request(start=lambda c: c.modify_ext(dn, mods), dn=dn)
        if op.previous is None or op.enable or new_rdn(self.entity, dn, data) is not None:
            return None
        if _rdn_changed(self.entity, op.previous, data):
            return None
        try:
            changed = changed_attributes(data, op.previous, written_keys(data), self.schema, refs)
            update = replace_mods(data, changed, encode)
        except (ValueError, MissingReference) as exc:
            return OpResult(ok=False, error=str(exc))
        if not update:
            return OpResult(ok=True, target_id=op.target_id)
        return Request(start=lambda c: c.modify_ext(dn, update), dn=dn)

    async def _answered(self, op: Op, answer: Any) -> OpResult | None:
        """The result of *op*'s pipelined write (an added entry's id read back when the
        answer did not carry it); None: the server's answer (the entry is there
        already, or is not where it was) is settled by :meth:`_one`."""
        if isinstance(answer, Refused):
            if answer.code in ("entryAlreadyExists", "noSuchObject"):
                return None
            return OpResult(ok=False, error=answer.reason)
        if op.kind == "create":
            dn, tid = answer
            self.directory.created(dn, op.source_id)
            if tid is None:  # no post-read control: a search
                tid = await self.directory.read_id(dn, self.entity.id_attribute)
            if tid is None:
                return OpResult(
                    ok=False, error=f"{dn} has no {self.entity.id_attribute} to link it by"
                )
            self.directory.dns[tid] = dn
            return OpResult(ok=True, target_id=tid)
        if op.kind == "delete":
            self.directory.dns.pop(op.target_id or "", None)
        return OpResult(ok=True, target_id=op.target_id)

    async def _one(self, op: Op) -> OpResult:
        """*op* written one write after the other: an add that adopts the entry already
        there, renames and moves with the fix of the entries listing the old DN; an
        entry not at its remembered DN is looked up again (an update of one gone from
        the target creates it again; a disable or delete of one gone succeeds)."""
        if op.kind == "create":
            return await self._create(op)
        assert op.target_id is not None
        tid = op.target_id
        for _ in range(2):
            dn = self.directory.dns.get(tid)
            if dn is None:
                break
            if op.kind == "delete":
                result = await self._delete(tid, dn)
            elif op.kind == "disable":
                result = await self._disable(tid, dn)
            else:
                result = await self._update(op, dn)
            if result is not None:
                return result
            # No entry at dn: moved or deleted behind sluiced's back, so look again.
            self.directory.dns.pop(tid, None)
            await self.directory.locate([tid], [self.entity])
        if op.kind == "update":  # deleted: created again
            return await self._create(op)
        return OpResult(ok=True, target_id=tid)  # nothing left to disable or delete

    async def _delete(self, tid: str, dn: str) -> OpResult | None:
        """Deletes the entry at *dn*; None if there is none."""
        done = await self.directory.write(lambda c: c.delete_s(dn))
        if isinstance(done, Refused):
            return None if done.code == "noSuchObject" else OpResult(ok=False, error=done.reason)
        self.directory.dns.pop(tid, None)
        return OpResult(ok=True, target_id=tid)

    async def _create(self, op: Op) -> OpResult:
        require_writable(self.entity)
        data = op.data or {}
        try:
            dn, attrs = add_entry(self.entity, data, self.encode)
        except (ValueError, MissingReference) as exc:  # no RDN value; a value LDAP cannot hold
            return OpResult(ok=False, error=str(exc))
        id_attr = self.entity.id_attribute
        post_read = await self.directory.offers_post_read()

        def add(conn: Any) -> str | None:
            controls = [post_read_request(id_attr)] if post_read else None
            _, _, _, answered = conn.add_ext_s(dn, attrs, serverctrls=controls)
            return post_read_id(answered or (), id_attr)

        done = await self.directory.write(add)
        if isinstance(done, Refused):
            if done.code != "entryAlreadyExists":
                return OpResult(ok=False, error=done.reason)
            return await self._adopt(op, dn, done)
        self.directory.created(dn, op.source_id)
        tid = done or await self.directory.read_id(dn, id_attr)
        if tid is None:
            return OpResult(ok=False, error=f"{dn} has no {id_attr} to link it by")
        self.directory.dns[tid] = dn
        return OpResult(ok=True, target_id=tid)

    async def _adopt(self, op: Op, dn: str, refused: Refused) -> OpResult:
        """The create of *op* found an entry at *dn* already: it is adopted (its id
        linked, its attributes brought to the object's data) when it is an entry of
        the entity (its ``filter``) that neither this job created nor another op of the
        batch names for another object; else the object fails with the server's answer
        and why it was not adopted."""
        if self.directory.created_for_another(dn, op.source_id):
            return OpResult(
                ok=False,
                error=f"{refused.reason}; {dn} was created in this run for another object: "
                "not adopted",
            )
        tid = await self.directory.entity_id(dn, self.entity)
        if tid is None:
            return OpResult(
                ok=False,
                error=f"{refused.reason}; {dn} is not a {self.entity.name} entry "
                f"({self.entity.filter}, with an {self.entity.id_attribute}): not adopted",
            )
        other = self.linked.get(tid, op.source_id)
        if other != op.source_id:
            return OpResult(
                ok=False,
                error=f"{refused.reason}; {dn} is linked to another object ({other}): not adopted",
            )
        if not self.directory.created_here(dn):
            log.info(
                "ldap entry adopted",
                endpoint=self.directory.conn.endpoint,
                dn=dn,
                target_id=tid,
                source_id=op.source_id,
            )
        self.directory.created(dn, op.source_id)
        self.directory.dns[tid] = dn
        adopted = Op(kind="update", source_id=op.source_id, target_id=tid, data=op.data)
        updated = await self._update(adopted, dn)
        return updated or OpResult(ok=False, error=f"{dn} was deleted while adopted")

    async def _update(self, op: Op, dn: str) -> OpResult | None:
        """Brings the entry at *dn* to ``op.data``; None if there is no entry at *dn*."""
        assert op.target_id is not None
        data = op.data or {}
        refs = self.refs
        encode = self.encode
        keys = written_keys(data)
        try:
            if op.previous is not None:
                changed = changed_attributes(data, op.previous, keys, self.schema, refs)
            else:
                current = await self.directory.conn.read_entry(dn, keys or ["1.1"])
                if current is None:
                    return None
                changed = differing_attributes(data, current, keys, encode, refs)
            mods = replace_mods(data, changed, encode)
        except (ValueError, MissingReference) as exc:
            return OpResult(ok=False, error=str(exc))
        errors: list[str] = []
        back = None
        if op.enable:
            disable = (self.entity.disable_attribute or "").casefold()
            if disable and not any(k.casefold() == disable for k in keys):
                mods.append((ldap.MOD_REPLACE, self.entity.disable_attribute or "", None))
            if self.entity.move_to and _under(dn, self.entity.move_to):
                back = self.entity.base
        renamed = new_rdn(self.entity, dn, data)
        stale = []
        if renamed or back:
            moved = await self.directory.rename(op.target_id, dn, renamed or _own_rdn(dn), back)
            if isinstance(moved, Refused):
                return (
                    None if moved.code == "noSuchObject" else OpResult(ok=False, error=moved.reason)
                )
            stale.append(dn)
            dn = moved
        elif op.previous is not None and _rdn_changed(self.entity, op.previous, data):
            # The last export had another RDN value: the rename is done, its fix may not be.
            attr, before = self.entity.rdn_attribute or "", rdn_value(self.entity, op.previous)
            old_rdn = rdn_with(dn, attr, before or "") or rdn(attr, before or "")
            stale.append(f"{old_rdn},{parent(dn)}")
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

    async def _disable(self, tid: str, dn: str) -> OpResult | None:
        """Disables the entry at *dn*; None if there is none."""
        if self.entity.disable_attribute:
            mods: list[Mod] = [
                (
                    ldap.MOD_REPLACE,
                    self.entity.disable_attribute,
                    [str(self.entity.disable_value).encode()],
                )
            ]
            done = await self.directory.modify(dn, mods)
            if isinstance(done, Refused):
                return (
                    None if done.code == "noSuchObject" else OpResult(ok=False, error=done.reason)
                )
            return OpResult(ok=True, target_id=tid)
        if not self.entity.move_to:
            return OpResult(
                ok=False,
                error=f"entity {self.entity.name} has no disable or move_to: "
                "deprovision with delete, or say how to disable",
            )
        if _under(dn, self.entity.move_to):
            return OpResult(ok=True, target_id=tid)
        moved = await self.directory.rename(tid, dn, _own_rdn(dn), self.entity.move_to)
        if isinstance(moved, Refused):
            return None if moved.code == "noSuchObject" else OpResult(ok=False, error=moved.reason)
        errors = await self.directory.fix_references(dn, moved)
        if errors:
            return OpResult(ok=False, error="; ".join(errors))
        return OpResult(ok=True, target_id=tid)
