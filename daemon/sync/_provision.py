"""Provisioning on demand: one object synced now, with a trace of every step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..changes import hide_plan_secrets, hide_secrets
from ..connectors import Malformed
from ..models import JobStats
from ..store import BatchCommit
from ._context import JobContext
from ._decide import Decisions, deprovision_op, plan_entry
from ._escrows import Escrows

__all__ = [
    "provision",
]


async def provision(
    ctx: JobContext, escrows: Escrows, entity_type: str, object_id: str
) -> list[dict[str, Any]]:
    """Sync one object now and say what happened at each step: import, scoping,
    matching, action, export. In a dry run (``ctx.plan`` set) nothing is written.

    Returns the steps, each ``{"step", "status", "detail", ...}``.

    Raises:
        SyncError: the source or the target failed as a whole.
    """
    decider, applier, committer = escrows.decider, escrows.applier, escrows.committer
    steps: list[dict[str, Any]] = []

    def step(name: str, status: str, detail: str, **extra: Any) -> None:
        steps.append({"step": name, "status": status, "detail": detail, **extra})

    iid, now = ctx.cfg.id, ctx.clock.now()
    found = await ctx.call(
        ctx.source.endpoint, lambda: ctx.source.get_many(entity_type, [object_id])
    )
    item = found.get(object_id)
    link = (await ctx.store.get_links(iid, entity_type, [object_id])).get(object_id)
    await escrows.load(entity_type, object_id)  # a failure now is the next attempt of its escrow
    if isinstance(item, Malformed):
        step("import", "failed", f"the source could not read {object_id!r}: {item.reason}")
        return steps
    record = item
    if record is None:
        step("import", "notFound", f"the source has no {entity_type} {object_id!r}")
    else:
        secrets = ctx.mapper.secrets(entity_type)
        shown = hide_secrets(dict(record.data), secrets)
        step("import", "ok", f"read {entity_type} {object_id!r}", object=shown)
    d = Decisions()
    if record is not None:
        mapping = ctx.mapper.mapping(entity_type)
        if mapping is None:
            step("scoping", "skipped", f"no enabled object mapping for {entity_type}")
            return steps
        mapped: dict[str, Mapping[str, Any] | None] = {}
        decider.map_into(mapped, d, entity_type, record, creating=link is None)
        if record.id in d.problems:
            step("scoping", "failed", d.problems[record.id][1])
        else:
            inside = mapped[record.id] is not None
            step(
                "scoping",
                "inScope" if inside else "outOfScope",
                f"in the scope of {mapping.name!r}"
                if inside
                else f"outside the scope of {mapping.name!r}",
            )
            await decider.decide(
                entity_type, [record], {object_id: link} if link else {}, mapped, d
            )
    elif link is not None:
        op = deprovision_op(ctx.mapper, entity_type, link, now=ctx.clock.now())
        if op is not None:
            d.ops.append(op)
            d.hashes[object_id] = link.hash
    op = d.ops[0] if d.ops else None
    problem = d.problems.get(object_id)
    if link is not None:
        step("matching", "linked", f"remembered link to {link.target_id}", targetId=link.target_id)
    elif problem is not None and problem[0] == "target":
        step("matching", "ambiguous", problem[1])
    elif op is not None and op.kind == "update":
        step(
            "matching",
            "matched",
            f"found {op.target_id} by the matching attributes",
            targetId=op.target_id,
        )
    elif record is not None and op is not None:
        step("matching", "noMatch", "no object in the target: it will be created")
    if problem is not None:
        step("action", "escrow", problem[1])
    elif op is None:
        step(
            "action",
            "none",
            "nothing to do: unchanged, not provisioned, or a flow the mapping does not allow",
        )
        return steps
    else:
        step(
            "action",
            op.kind,
            f"{op.kind} {entity_type} {object_id!r}",
            plan=hide_plan_secrets(plan_entry(entity_type, op), ctx.mapper.secrets(entity_type)),
        )
    if problem is not None or op is None:
        if problem is not None and ctx.plan is None:
            escrow = escrows.make(entity_type, object_id, problem[0], problem[1], ctx.job.id, now)
            await committer.commit(
                BatchCommit(job=ctx.job, entity_type=entity_type, add_escrows=[escrow])
            )
        return steps
    if ctx.plan is not None:
        step("export", "skipped", "a dry run: nothing was written")
        return steps
    stats, upserts, removed, failed = await applier.apply(entity_type, d.ops, d.hashes, None)
    ctx.add_stats(stats + JobStats(processed=1))
    failures = [
        escrows.make(entity_type, object_id, "target", reason, ctx.job.id, now)
        for _, reason in failed
    ]
    await committer.commit(
        BatchCommit(
            job=ctx.job,
            entity_type=entity_type,
            upsert_links=upserts,
            delete_links=removed,
            add_escrows=failures,
            remove_escrows=[] if failed else [object_id],
        )
    )
    await ctx.write_target(ctx.target.flush)
    if failed:
        step("export", "failed", failed[0][1])
    else:
        target_id = upserts[0].target_id if upserts else op.target_id
        step("export", "ok", f"{op.kind} applied", targetId=target_id)
    return steps
