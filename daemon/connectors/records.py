"""What flows through the contracts of connectors: the :class:`Record`,
:class:`Malformed` and :class:`Gone` items of a source's :class:`Page`, and the :class:`Op` a target
applies with its :class:`OpResult` (see :mod:`.abc`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models import slot_setters

__all__ = ["Gone", "Malformed", "Op", "OpResult", "Page", "Record"]


@dataclass(frozen=True, kw_only=True, slots=True, init=False)
class Record:
    """One object read from a source."""

    id: str
    data: Mapping[str, Any]
    #: Where a read continues after this record.
    cursor: Any = None

    # One is made per object on the hot path: set through the slots' own setters (the
    # generated __init__ of a frozen dataclass goes through object.__setattr__, slower).
    def __init__(self, *, id: str, data: Mapping[str, Any], cursor: Any = None) -> None:
        set_id, set_data, set_cursor = _RECORD_SLOTS
        set_id(self, id)
        set_data(self, data)
        set_cursor(self, cursor)


_RECORD_SLOTS = slot_setters(Record)


@dataclass(frozen=True, kw_only=True)
class Malformed:
    """Something in the source that is not a valid object; it is escrowed with ``reason``.

    ``key`` identifies it for people (``people.jsonl:17``). What could not be read may
    be any object, one the target holds too: a read that yields a Malformed item is not
    complete, and the engine detects no deletions from it. A source yields one for
    everything it knows it could not read (bytes it cannot decode, a record that does
    not end, an id that several records share), never a silently altered object.
    """

    key: str
    reason: str
    cursor: Any = None


@dataclass(frozen=True, kw_only=True)
class Gone:
    """The object with source id ``id`` was deleted from the source (or left what the
    read covers) since the read's ``since``.

    Only a read with ``since`` given yields one, and only a source that knows its
    deletions (a change feed, LDAP's content synchronization); a read of everything
    needs none: what it does not yield is gone. In an incremental pass the engine
    deprovisions the object's link (if it has one) as it does an object that left the
    scope, through the deletion threshold, and drops the object's escrows; in a full
    pass it ignores the item.
    """

    id: str
    cursor: Any = None


@dataclass(frozen=True, kw_only=True)
class Page:
    """What one step of :meth:`Source.read` yields."""

    items: Sequence[Record | Malformed | Gone]
    #: Share of the pass done after this page (0..1), if the source can tell.
    fraction: float | None = None
    #: True if this read covers every object of the entity type (not just changes); a
    #: read's pages say the same, from its first. An incremental read (``since`` given)
    #: whose pages are exhaustive detects deletions as a full read does: the objects it
    #: did not name are deprovisioned once it completes (see :meth:`Source.read`).
    exhaustive: bool = False


@dataclass(frozen=True, kw_only=True, slots=True, init=False)
class Op:
    """One change to a target object.

    ``kind`` is ``create``, ``update`` (``data`` holds the mapped attributes; the target
    keeps attributes it is not given), ``disable`` (soft delete: ``active: false`` or what
    the target calls it) or ``delete``. ``previous`` is what was last exported for the
    object (None if unknown, e.g. matched by attributes), so a target may send only what
    changed. ``enable`` asks an update to re-enable an object that was disabled.
    ``encoded``, when given, is ``data`` as :func:`sluiced.codec.dumps` writes it: a
    target may use it instead of encoding ``data`` again.
    """

    kind: str
    source_id: str
    target_id: str | None = None
    data: Mapping[str, Any] | None = None
    previous: Mapping[str, Any] | None = None
    enable: bool = False
    encoded: str | None = field(default=None, compare=False, repr=False)

    # One is made per object on the hot path: set through the slots' own setters (the
    # generated __init__ of a frozen dataclass goes through object.__setattr__, slower).
    def __init__(
        self,
        *,
        kind: str,
        source_id: str,
        target_id: str | None = None,
        data: Mapping[str, Any] | None = None,
        previous: Mapping[str, Any] | None = None,
        enable: bool = False,
        encoded: str | None = None,
    ) -> None:
        set_kind, set_source_id, set_target_id, set_data, set_previous, set_enable, set_encoded = (
            _OP_SLOTS
        )
        set_kind(self, kind)
        set_source_id(self, source_id)
        set_target_id(self, target_id)
        set_data(self, data)
        set_previous(self, previous)
        set_enable(self, enable)
        set_encoded(self, encoded)


_OP_SLOTS = slot_setters(Op)


@dataclass(frozen=True, kw_only=True, slots=True, init=False)
class OpResult:
    """What became of one :class:`Op`: applied (``target_id`` names the object) or not
    (``error`` says why, for the escrow)."""

    ok: bool
    target_id: str | None = None
    error: str | None = None
    #: For a failure: a later retry may succeed.
    transient: bool = False

    # One is made per object on the hot path: set through the slots' own setters (the
    # generated __init__ of a frozen dataclass goes through object.__setattr__, slower).
    def __init__(
        self,
        *,
        ok: bool,
        target_id: str | None = None,
        error: str | None = None,
        transient: bool = False,
    ) -> None:
        set_ok, set_target_id, set_error, set_transient = _OP_RESULT_SLOTS
        set_ok(self, ok)
        set_target_id(self, target_id)
        set_error(self, error)
        set_transient(self, transient)


_OP_RESULT_SLOTS = slot_setters(OpResult)
