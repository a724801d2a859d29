"""Deciding for records read: mapping, references, matching, then the pure op."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..connectors import Record
from ..errors import ObjectError
from ..mapping import ExpressionError
from ..models import Link
from ._context import JobContext
from ._decide import Decisions, op_for, reference_ids

if TYPE_CHECKING:
    from ._rereads import Unresolved

__all__ = [
    "Decider",
]


class Decider:
    """Maps records and decides their ops, looking up the store and the target."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        #: Per entity type of this run: the target held none of them when first asked.
        self.empty_target: dict[str, bool] = {}
        #: Where the current pass notes references to its own type that found no link
        #: (None: nothing is noted, as when objects are read again).
        self.unresolved: Unresolved | None = None

    def map_into(
        self,
        mapped: dict[str, Mapping[str, Any] | None],
        d: Decisions,
        entity_type: str,
        record: Record,
        *,
        creating: bool,
    ) -> None:
        """Map *record* into *mapped* (None: out of scope); a failure is a problem in *d*."""
        try:
            mapped[record.id] = self.ctx.mapper.map(entity_type, record, creating=creating)
        except (ObjectError, ExpressionError) as exc:
            d.problems[record.id] = ("source", str(exc))

    async def decide(
        self,
        entity_type: str,
        records: Sequence[Record],
        links: Mapping[str, Link],
        mapped: dict[str, Mapping[str, Any] | None],
        d: Decisions,
        *,
        defer_leaving: bool = False,
    ) -> Decisions:
        """What to do with mapped *records*: resolve references, match the unlinked ones
        in the target, and compare with what was exported before. With *defer_leaving*,
        objects out of scope are listed in ``leaving`` instead of getting their op (a
        pass gates them against the deletion threshold together). Returns *d*, filled.

        Raises:
            SyncError: the target failed as a whole while matching.
        """
        await self.resolve_references(entity_type, mapped)
        unlinked = {i: m for i, m in mapped.items() if m is not None and i not in links}
        matched = await self.match(entity_type, unlinked, d)
        now, mapper = self.ctx.clock.now(), self.ctx.mapper
        problems, seen, unchanged, hashes, ops = d.problems, d.seen, d.unchanged, d.hashes, d.ops
        for rec in records:
            sid = rec.id
            if sid in problems:
                # Still in the source, but it could not be mapped (or matched): escrowed,
                # and seen, so that a full pass never deletes it for that.
                seen.append(sid)
                continue
            if sid not in mapped:
                continue
            data, link = mapped[sid], links.get(sid)
            if sid in matched:  # an existing object: add-only attributes are not applied
                holder: dict[str, Mapping[str, Any] | None] = {}
                self.map_into(holder, d, entity_type, rec, creating=False)
                if sid not in holder:
                    continue
                await self.resolve_references(entity_type, holder)
                data = holder[sid]
            try:
                op, digest = op_for(mapper, entity_type, sid, data, link, matched.get(sid), now=now)
            except ObjectError as exc:  # it cannot be encoded (NaN): escrowed, and seen
                problems[sid] = ("source", str(exc))
                seen.append(sid)
                continue
            if defer_leaving and data is None and link is not None and op is not None:
                d.leaving.append(link)
                continue
            if digest is not None:
                seen.append(sid)  # out-of-scope objects are not seen: they leave the target
            if op is None:
                if data is not None or link is None:
                    unchanged.append(sid)
                continue
            hashes[sid] = digest if digest is not None else (link.hash if link else "")
            ops.append(op)
        return d

    async def resolve_references(
        self, entity_type: str, mapped: dict[str, Mapping[str, Any] | None]
    ) -> None:
        """Replace source ids in reference attributes (group members) by the ids their
        objects have in the target; ids with no link (not provisioned) or whose object is
        disabled (deprovisioned: out of scope or gone from the source) are left out.
        Those left out of a reference to *entity_type* itself (a user's manager) are
        noted in :attr:`unresolved`: the pass reads their objects again at its end."""
        ctx = self.ctx
        own = self.unresolved
        if own is not None and own.entity_type != entity_type:
            own = None
        for attribute, ref_type in ctx.mapper.references(entity_type).items():
            wanted = {
                ref
                for data in mapped.values()
                if data is not None
                for ref in reference_ids(data.get(attribute))
            }
            if not wanted:
                continue
            links = {
                sid: link
                for sid, link in (await ctx.store.get_links(ctx.cfg.id, ref_type, wanted)).items()
                if link.disabled_at is None
            }
            for sid, data in mapped.items():
                if data is None or data.get(attribute) is None:
                    continue
                value = data[attribute]
                refs = reference_ids(value)
                ids = [links[r].target_id for r in refs if r in links]
                if own is not None and ref_type == entity_type and len(ids) < len(refs):
                    own.note(sid, [r for r in refs if r not in links])
                resolved: Any = ids if isinstance(value, list) else (ids[0] if ids else None)
                mapped[sid] = {**data, attribute: resolved}
        if own is not None:
            own.save()

    async def match(
        self, entity_type: str, unlinked: Mapping[str, Mapping[str, Any]], d: Decisions
    ) -> dict[str, str]:
        """Find objects with no link in the target by the matching attributes, in priority
        order. One candidate: it is the object. Several: escrowed, never guessed. None:
        the next attribute is tried; if none matches, the object is created. Returns
        source id → target id of those found."""
        ctx = self.ctx
        found: dict[str, str] = {}
        attributes = ctx.mapper.matching(entity_type)
        if not unlinked or not attributes:
            return found
        target_type = ctx.mapper.target_type(entity_type)
        if entity_type not in self.empty_target:
            count = await ctx.call(ctx.target.endpoint, lambda: ctx.target.count(target_type))
            self.empty_target[entity_type] = count == 0
        if self.empty_target[entity_type]:
            # Empty when the pass began: whatever is there now, this pass created (and
            # linked), or someone else did, which a create then meets as a conflict.
            return found
        left = dict(unlinked)
        for attribute in attributes:
            values = {
                sid: data[attribute]
                for sid, data in left.items()
                if isinstance(data.get(attribute), str | int) and data[attribute] != ""
            }
            if not values:
                continue
            wanted = sorted(set(values.values()), key=str)
            answer = await ctx.call(
                ctx.target.endpoint,
                lambda a=attribute, w=wanted: ctx.target.find(target_type, a, w),  # type: ignore[misc]
            )
            if answer is None:
                return found  # the target cannot look objects up: links only
            for sid, value in values.items():
                ids = list(dict.fromkeys(answer.get(value, ())))
                if len(ids) == 1:
                    found[sid] = ids[0]
                elif ids:
                    d.problems[sid] = (
                        "target",
                        f"ambiguous match: {len(ids)} {target_type} objects in the target have "
                        f"{attribute} = {value!r} ({', '.join(ids[:5])}); sluiced does not "
                        "guess: remove the duplicates or change the matching attributes",
                    )
                else:
                    continue
                del left[sid]
        return found
