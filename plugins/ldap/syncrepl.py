"""Content Synchronization (RFC 4533, OpenLDAP's syncprov) in refreshOnly mode: what
changed and what was deleted since a cookie.

The watermark is a cookie made from the ``contextCSN`` of the naming context that holds
an entity's base (``rid=000,csn=<csn>;<csn>``), read before a pass; the server answers
it like one of its own. A refresh with it ends in one of two ways:

* a *delete* phase (the server's session log covers the cookie): the changed entries,
  and the entryUUIDs of the deleted ones;
* a *present* phase (it does not): the entryUUIDs of every unchanged entry, meaning
  "whatever is not listed was deleted". A :class:`Refresh` reports it as soon as it is
  seen (OpenLDAP sends the present list first), and the caller reads the entity whole.

A server whose state is older than the cookie (restored from a backup, or another
server that has not caught up) refuses it (``unwillingToPerform``): :class:`Changes`
says so in ``refused``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from .connection import SCOPES, LdapConnection
from .errors import translate
from .filters import normalize_dn
from .settings import EntitySettings

__all__ = ["SYNC_CONTROL", "Changes", "Refresh", "cookie", "is_cookie"]

#: The syncprov request control, as the root DSE lists it.
SYNC_CONTROL = "1.3.6.1.4.1.4203.1.9.1.1"


def is_cookie(since: str) -> bool:
    """Whether *since* is a watermark this module made."""
    return since.startswith("rid=")


async def cookie(connection: LdapConnection, base: str, contexts: Sequence[str]) -> str | None:
    """The cookie for what the server holds now under *base*.

    Returns:
        ``rid=000,csn=...`` from the ``contextCSN`` of the naming context that holds
        *base* (the deepest of *contexts*, the root DSE's ``namingContexts``; *base*
        itself when none does); None when the server keeps none there.

    Raises:
        TransientError, CredentialsError, SyncError: as the connection's calls.
    """
    key = normalize_dn(base)
    holding = [c for c in contexts if key == normalize_dn(c) or key.endswith("," + normalize_dn(c))]
    suffix = max(holding, key=len) if holding else base
    entry = await connection.read_entry(suffix, ["contextCSN"])
    csns = sorted(v.decode("ascii", "replace") for v in _values(entry or {}, "contextCSN"))
    return "rid=000,csn=" + ";".join(csns) if csns else None


def _values(attrs: Mapping[str, Sequence[bytes]], name: str) -> Sequence[bytes]:
    lowered = name.lower()
    return next((v for k, v in attrs.items() if k.lower() == lowered), ())


@dataclass
class Changes:
    """What one poll of a refresh brought."""

    #: Changed (or added) entries: (dn, attributes, entryUUID).
    entries: list[tuple[str, dict[str, list[bytes]], str]] = field(default_factory=list)
    #: entryUUIDs of deleted entries.
    deleted: list[str] = field(default_factory=list)
    #: The server answered with a present phase: read the entity whole.
    present: bool = False
    #: The refresh is over.
    done: bool = False
    #: The refresh was cut short by a size or administrative limit: read the entity whole.
    limited: bool = False
    #: The server refused the cookie (its state is older than the cookie's): why.
    refused: str | None = None


class Refresh:
    """One refreshOnly search, polled page by page on the connection's thread.

    Usage: ``await refresh.start()``, then ``await refresh.poll(n)`` until ``done`` or
    ``present``; ``await refresh.abandon()`` in a ``finally``.
    """

    def __init__(
        self,
        connection: LdapConnection,
        entity: EntitySettings,
        attrs: Sequence[str],
        since: str,
        *,
        timeout: float,
    ) -> None:
        self.connection = connection
        self.entity = entity
        self.attrs = list(attrs)
        self.since = since
        self.timeout = timeout
        self.msgid: int | None = None
        self.over = False

    async def start(self) -> None:
        """Send the search.

        Raises:
            TransientError, CredentialsError, SyncError: as the connection's calls.
        """
        from ldap.syncrepl import SyncRequestControl  # type: ignore[import-untyped]

        e = self.entity
        control = SyncRequestControl(cookie=self.since, mode="refreshOnly")

        def send(conn: Any) -> int:
            msgid: int = conn.search_ext(
                e.base, SCOPES[e.scope], e.filter, self.attrs, serverctrls=[control]
            )
            return msgid

        self.msgid = await self.connection.call(send)

    async def poll(self, count: int) -> Changes:
        """Read answers until *count* entries or deletions came, or the refresh ended
        (``done``, ``limited``, ``refused``).

        Raises:
            TransientError: the server did not answer within the timeout, or went away.
            CredentialsError, SyncError: as the connection's calls.

        Cancellation: the answers being read are lost; :meth:`abandon` the search.
        """
        msgid = self.msgid
        assert msgid is not None, "start() first"
        changes = await self.connection.call(lambda conn: _poll(conn, msgid, count, self.timeout))
        if changes.done or changes.limited or changes.refused:
            self.over = True
        return changes

    async def abandon(self) -> None:
        """Stop the search if it is still running; never raises.

        Cancellation: shielded, for at most 5 seconds."""
        msgid, self.msgid = self.msgid, None
        if msgid is None or self.over:
            return

        def stop(conn: Any) -> None:
            conn.abandon_ext(msgid)

        with trio.move_on_after(5, shield=True):
            try:
                await self.connection.call(stop)
            except Exception:
                return


def _poll(conn: Any, msgid: int, count: int, timeout: float) -> Changes:
    import ldap  # type: ignore[import-untyped]
    from ldap.syncrepl import SyncInfoMessage

    changes = Changes()
    while len(changes.entries) + len(changes.deleted) < count:
        try:
            kind, msgs, _, ctrls, _, _ = conn.result4(
                msgid, all=0, timeout=timeout, add_intermediates=1, add_ctrls=1
            )
        except (ldap.SIZELIMIT_EXCEEDED, ldap.ADMINLIMIT_EXCEEDED):
            changes.limited = True
            return changes
        except ldap.UNWILLING_TO_PERFORM as exc:
            # OpenLDAP: "consumer state is newer than provider!"
            changes.refused = str(translate(exc))
            return changes
        if kind == ldap.RES_SEARCH_RESULT:
            for control in ctrls or ():
                if type(control).__name__ == "SyncDoneControl" and not control.refreshDeletes:
                    changes.present = True
            changes.done = True
            return changes
        if kind == ldap.RES_SEARCH_ENTRY:
            for dn, attrs, entry_ctrls in msgs or ():
                state = next(
                    (c for c in entry_ctrls if type(c).__name__ == "SyncStateControl"), None
                )
                if state is None:
                    continue
                if state.state == "present":
                    changes.present = True
                    return changes
                if state.state == "delete":
                    changes.deleted.append(str(state.entryUUID))
                else:
                    changes.entries.append((dn, attrs, str(state.entryUUID)))
        elif kind == ldap.RES_INTERMEDIATE:
            for name, value, _ in msgs or ():
                if name != SyncInfoMessage.responseName:
                    continue
                info: Any = SyncInfoMessage(value)
                ids = info.syncIdSet
                if info.refreshPresent is not None or (
                    ids is not None and not ids["refreshDeletes"]
                ):
                    changes.present = True
                    return changes
                if ids is not None:
                    changes.deleted.extend(str(u) for u in ids["syncUUIDs"])
    return changes
