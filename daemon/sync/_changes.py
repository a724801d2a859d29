"""Rows of the provisioning log, made from the same decisions as a dry run's plan
(:func:`._decide.plan_entry`) and from the batch's escrows, and their text in a
target's outbox. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from ..changes import Change, at_of, at_text, hide_secrets
from ..codec import dumps, loads
from ..connectors import Op
from ..models import Escrow
from ._decide import plan_entry

__all__ = ["applied", "escrowed", "from_outbox", "keyed", "outboxed"]


def applied(
    integration_id: str,
    job_id: str,
    entity_type: str,
    done: Iterable[tuple[Op, str | None]],
    at: datetime,
    secrets: Collection[str] = (),
) -> list[Change]:
    """The changes of the ops *done* (each with the target id it has now) at *at*: a
    create with its attributes, an update (an ``enable`` if it enabled the object
    again) with each changed attribute before and after, a disable, a delete. Secret
    attributes, and those named in *secrets*, are redacted
    (:func:`~sluiced.changes.hide_secrets`)."""
    out = []
    for op, target_id in done:
        entry = plan_entry(entity_type, op)
        attributes, changes, encoded = entry.get("attributes"), entry.get("changes"), None
        if attributes is not None:
            shown = hide_secrets(attributes, secrets)
            if shown is attributes and op.encoded is not None:  # the text the op sent
                encoded = f'{{"attributes":{op.encoded}}}'
            attributes = shown
        out.append(
            Change(
                integration_id=integration_id,
                job_id=job_id,
                entity_type=entity_type,
                source_id=op.source_id,
                target_id=target_id or entry.get("targetId"),
                action="enable" if entry.get("enable") else entry["action"],
                at=at,
                attributes=attributes,
                changes=hide_secrets(changes, secrets) if changes is not None else None,
                encoded=encoded,
            )
        )
    return out


def escrowed(job_id: str, escrows: Sequence[Escrow], at: datetime) -> list[Change]:
    """The changes of objects escrowed at *at*: the escrow's kind and (redacted)
    reason."""
    return [
        Change(
            integration_id=e.integration_id,
            job_id=job_id,
            entity_type=e.entity_type,
            source_id=e.object_id,
            target_id=None,
            action="escrow",
            at=at,
            reason=e.reason,
            kind=e.kind,
        )
        for e in escrows
    ]


def keyed(
    integration_id: str,
    job_id: str,
    entity_type: str,
    ops: Sequence[Op],
    missing: Iterable[str],
    at: datetime,
) -> list[Change]:
    """The changes of *ops* written into a target keyed by source ids, whose ids are
    also its target ids: an upsert of an id the target lacked (*missing*) is a create,
    of another an update; a delete of a *missing* id changed nothing and is left out.
    They carry no attributes: the target holds no earlier version to compare with."""
    lacking = set(missing)
    out = []
    for op in ops:
        if op.kind == "delete":
            if op.source_id in lacking:
                continue
            action = "delete"
        else:
            action = "create" if op.source_id in lacking else "update"
        out.append(
            Change(
                integration_id=integration_id,
                job_id=job_id,
                entity_type=entity_type,
                source_id=op.source_id,
                target_id=op.target_id or op.source_id,
                action=action,
                at=at,
            )
        )
    return out


def outboxed(change: Change) -> str:
    """*change* as a target's outbox holds it (JSON text; read by :func:`from_outbox`)."""
    return dumps(
        {
            "integration": change.integration_id,
            "job": change.job_id,
            "type": change.entity_type,
            "source": change.source_id,
            "target": change.target_id,
            "action": change.action,
            "at": at_text(change.at),
            "body": change.body(),
        }
    )


def from_outbox(text: str) -> Change:
    """The change :func:`outboxed` wrote as *text*.

    Raises:
        ValueError: *text* is not such a change.
    """
    try:
        row = loads(text)
        body = row["body"] or {}
        return Change(
            integration_id=str(row["integration"]),
            job_id=str(row["job"]),
            entity_type=str(row["type"]),
            source_id=str(row["source"]),
            target_id=row["target"],
            action=str(row["action"]),
            at=at_of(row["at"]),
            attributes=body.get("attributes"),
            changes=body.get("changes"),
            reason=body.get("reason"),
            kind=body.get("kind"),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a change of an outbox: {text[:200]}") from exc
