"""The provisioning log: one :class:`Change` per object and action a real run applied
(create, update, enable, disable, delete, escrow) and per escrow dropped without being
applied (by an operator, or because its source object is gone: :func:`dropped`), with
the time on the job's clock, queryable by :class:`ChangeQuery`.

Values of attributes whose names say they hold a secret (``password``,
``userPassword``, ``apiToken``, ...: see :func:`secret_attribute`) are never kept: :func:`hide_secrets` replaces them with ``[redacted]`` before a change is
made, so they reach neither the store nor an answer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .models import Escrow, slot_setters
from .redact import REDACTED

__all__ = [
    "ACTIONS",
    "DISABLED_DROP",
    "OPERATOR_DROP",
    "RESET_DROP",
    "SETTLED",
    "SOURCE_GONE",
    "UNREAD",
    "Change",
    "ChangeQuery",
    "at_of",
    "at_text",
    "cursor_of",
    "drop_log",
    "dropped",
    "hide_plan_secrets",
    "hide_secrets",
    "parse_cursor",
    "secret_attribute",
]

#: An attribute whose name (lowercased, without ``-`` and ``_``) contains one of these
#: holds a secret: what targets never echo (SCIM ``password``, LDAP ``userPassword``).
_SECRET_PARTS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "credential",
    "apikey",
    "privatekey",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Values with nothing inside to hide.
_SCALARS = frozenset({str, int, float, bool, type(None)})

#: Every action a change may record.
ACTIONS = ("create", "update", "enable", "disable", "delete", "escrow", "drop")

#: Why an escrow was dropped: an operator dropped it (API, ``sluicectl``, console).
OPERATOR_DROP = "dropped by an operator"
#: Why an escrow was dropped: its retry found the object gone from the source, with
#: nothing in the target to deprovision.
SOURCE_GONE = "its source object is gone"
#: Why an escrow was dropped: its retry found nothing to apply (the object is out of
#: scope, or the target holds what the source has).
SETTLED = "nothing left to apply: out of scope, or the target has it already"
#: Why an escrow was dropped: a restart reset the integration's escrows.
RESET_DROP = "dropped by an operator: a restart reset the escrows"
#: Why an escrow was dropped: the integration was disabled after a long quarantine.
DISABLED_DROP = "the integration was disabled after its quarantine: its escrows are pruned"
#: Why an escrow was dropped: a complete read of the source no longer met what it
#: could not read (it was fixed, or removed).
UNREAD = "a complete read of the source no longer met it"


@dataclass(frozen=True, kw_only=True, slots=True, init=False)
class Change:
    """What one commit of a job did to one object.

    ``attributes`` are a create's; ``changes`` an update's (or an enable's)
    ``{attribute: {"from", "to"}}``; ``reason`` and ``kind`` (``source`` or ``target``)
    an escrow's, or a drop's (why, and the dropped escrow's kind). ``job_id`` is empty
    for a change no job made (an operator's drop). ``id`` is given by the store, in the order it committed the changes.
    ``encoded``, when given, is :meth:`body` as :func:`sluiced.codec.dumps` writes it
    (a store need not encode it again)."""

    integration_id: str
    job_id: str
    entity_type: str
    source_id: str
    target_id: str | None
    action: str
    at: datetime
    attributes: Mapping[str, Any] | None = None
    changes: Mapping[str, Mapping[str, Any]] | None = None
    reason: str | None = None
    kind: str | None = None
    id: int | None = None
    encoded: str | None = field(default=None, compare=False, repr=False)

    # One is made per object a run changes: set through the slots' own setters (the
    # generated __init__ of a frozen dataclass goes through object.__setattr__, slower).
    def __init__(
        self,
        *,
        integration_id: str,
        job_id: str,
        entity_type: str,
        source_id: str,
        target_id: str | None,
        action: str,
        at: datetime,
        attributes: Mapping[str, Any] | None = None,
        changes: Mapping[str, Mapping[str, Any]] | None = None,
        reason: str | None = None,
        kind: str | None = None,
        id: int | None = None,
        encoded: str | None = None,
    ) -> None:
        (
            set_integration_id,
            set_job_id,
            set_entity_type,
            set_source_id,
            set_target_id,
            set_action,
            set_at,
            set_attributes,
            set_changes,
            set_reason,
            set_kind,
            set_id,
            set_encoded,
        ) = _SETTERS
        set_integration_id(self, integration_id)
        set_job_id(self, job_id)
        set_entity_type(self, entity_type)
        set_source_id(self, source_id)
        set_target_id(self, target_id)
        set_action(self, action)
        set_at(self, at)
        set_attributes(self, attributes)
        set_changes(self, changes)
        set_reason(self, reason)
        set_kind(self, kind)
        set_id(self, id)
        set_encoded(self, encoded)

    def body(self) -> dict[str, Any] | None:
        """What the store keeps as the change's JSON body: the optional fields that are
        set (None: none is)."""
        out = {
            k: v
            for k, v in (
                ("attributes", self.attributes),
                ("changes", self.changes),
                ("reason", self.reason),
                ("kind", self.kind),
            )
            if v is not None
        }
        return out or None


_SETTERS = slot_setters(Change)


@dataclass(frozen=True, kw_only=True)
class ChangeQuery:
    """Which changes of an integration to list, newest first.

    ``object_id`` matches the source or the target id; ``actions`` any of them (empty:
    all); ``since`` and ``until`` bound the time (inclusive); ``before`` is the cursor of
    the last change of the previous page (see :func:`parse_cursor`)."""

    object_id: str | None = None
    entity_type: str | None = None
    actions: tuple[str, ...] = ()
    job_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: tuple[str, int] | None = None
    limit: int = 100


def dropped(escrow: Escrow, *, at: datetime, reason: str, job_id: str = "") -> Change:
    """The change of *escrow* dropped at *at* for *reason* (:data:`OPERATOR_DROP`,
    :data:`SOURCE_GONE`) by the job *job_id* (empty: by no job), with the escrow's kind."""
    return Change(
        integration_id=escrow.integration_id,
        job_id=job_id,
        entity_type=escrow.entity_type,
        source_id=escrow.object_id,
        target_id=None,
        action="drop",
        at=at,
        reason=reason,
        kind=escrow.kind,
    )


def drop_log(retention: timedelta, at: datetime, reason: str) -> Callable[[Escrow], Change] | None:
    """What makes the change of an escrow dropped at *at* for *reason* by no job (a
    store's ``drop_escrow`` and ``clear_escrows`` take it), or None for an integration
    whose log keeps nothing (*retention* zero)."""
    if retention.total_seconds() <= 0:
        return None
    return functools.partial(dropped, at=at, reason=reason)


def at_text(at: datetime) -> str:
    """*at* as the store keeps it: UTC, fixed width, so that text order is time order."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def at_of(text: str) -> datetime:
    """The time :func:`at_text` wrote as *text*.

    Raises:
        ValueError: *text* is not such a time.
    """
    if not text.endswith("Z"):
        raise ValueError(text)
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def cursor_of(change: Change) -> str:
    """The cursor that continues a listing after *change*: its time (microseconds since
    1970) and its id."""
    at = change.at if change.at.tzinfo is not None else change.at.replace(tzinfo=UTC)
    return f"{(at - _EPOCH) // timedelta(microseconds=1)}-{change.id}"


def parse_cursor(text: str) -> tuple[str, int]:
    """The position (time as :func:`at_text` writes it, id) a cursor of
    :func:`cursor_of` names.

    Raises:
        ValueError: *text* is not such a cursor.
    """
    micros, _, ident = text.partition("-")
    if not (micros.isascii() and micros.isdigit() and ident.isascii() and ident.isdigit()):
        raise ValueError(text)
    if len(micros) > 16 or len(ident) > 18:
        raise ValueError(text)
    return at_text(_EPOCH + timedelta(microseconds=int(micros))), int(ident)


@functools.lru_cache(maxsize=4096)
def secret_attribute(name: str) -> bool:
    """Whether an attribute called *name* holds a secret (see :data:`_SECRET_PARTS`)."""
    n = name.lower().replace("-", "").replace("_", "")
    return any(p in n for p in _SECRET_PARTS)


def hide_secrets(value: Any, secrets: Collection[str] = ()) -> Any:
    """*value* with the values of every secret key of the mappings in it (nested ones
    and those in lists too) replaced by ``[redacted]``: a key named like a secret
    (:func:`secret_attribute`) or one of *secrets* (whatever the case: the attributes a
    schema marks secret, :meth:`~sluiced.mapping.mapper.SchemaMapper.secrets`).
    ``None`` stays ``None``. An update's ``{"from", "to"}`` under a secret name keeps
    both keys, redacted. *value* itself is returned when it holds no secret (nothing is
    copied)."""
    if secrets:
        named = _named(frozenset(secrets))
        return _hide(value, lambda k: secret_attribute(k) or k.lower() in named)
    return _hide(value, secret_attribute)


@functools.lru_cache(maxsize=256)
def _named(secrets: frozenset[str]) -> frozenset[str]:
    return frozenset(s.lower() for s in secrets)


def _hide(value: Any, secret: Callable[[str], bool]) -> Any:
    if (  # the common case: a flat object without secrets
        type(value) is dict
        and all(type(v) in _SCALARS for v in value.values())
        and not any(map(secret, value))
    ):
        return value
    if isinstance(value, dict | Mapping):
        out: dict[Any, Any] | None = None
        for k, v in value.items():
            if type(k) is str and secret(k):
                hidden = _redacted(v)
            elif type(v) in _SCALARS:
                continue
            elif isinstance(v, dict | list | Mapping):
                hidden = _hide(v, secret)
            else:
                continue
            if hidden is not v:
                out = dict(value) if out is None else out
                out[k] = hidden
        return value if out is None else out
    if isinstance(value, list):
        items = [_hide(v, secret) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def hide_plan_secrets(entry: Mapping[str, Any], secrets: Collection[str] = ()) -> dict[str, Any]:
    """A plan's entry (:func:`sluiced.sync._decide.plan_entry`) with the secrets of its
    ``attributes`` and ``changes`` hidden (:func:`hide_secrets`)."""
    out = dict(entry)
    for key in ("attributes", "changes"):
        if out.get(key) is not None:
            out[key] = hide_secrets(out[key], secrets)
    return out


def _redacted(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping) and set(value) <= {"from", "to"}:
        return {k: None if v is None else REDACTED for k, v in value.items()}
    return REDACTED
