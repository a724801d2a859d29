"""Hooks that reached a node which does not run the Stash integration: gathered there and
sent on to the node that runs it in a few batches, not one command per hook call.

A node of a cluster that gets ``POST /api/stash/hooks`` for an integration another node
holds answers it itself (the changes are checked, and counted as the holder counts
them) and keeps them for the holder. The first change of a quiet integration is sent at
once; what comes while a batch is on its way, or within half of ``hook_delay`` after
the last batch was sent, goes in the next batch (the holder's window, which waits for
``hook_delay`` of quiet, stays open across them: a burst still makes a handful of
jobs). A batch is ``POST /api/stash/hooks`` sent to the holder through the store
(:meth:`~sluiced.control.Control.forward`), each distinct change once, at most
:data:`BATCH` of them.

A batch the holder did not take (none holds the integration: its holder died and no
node took it over yet, or the holder just lost it) is sent again every
:data:`AGAIN` seconds, and gathered by this node itself once it holds the integration,
for up to :data:`KEEP_TRYING` seconds after its oldest change came; then it is dropped
with a warning, and the scheduled incremental pass (the backstop) syncs those objects. A
batch the holder refused (the integration changed) is dropped with a warning. Nothing
is kept across a restart.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from sluiced.cluster import Elsewhere
from sluiced.control import Conflict, Control
from sluiced.logs import get_logger
from sluiced.store import StoreUnavailable

from .coalesce import HookTarget, coalescer
from .hookchanges import changes_of

__all__ = ["AGAIN", "BATCH", "KEEP_TRYING", "KIND", "Relay", "relay"]

log = get_logger("sluiced.plugins.stash")

#: The command a batch is sent as.
KIND = "POST /api/stash/hooks"
#: The most changes in one batch (the route takes at most as many).
BATCH = 10_000
#: Seconds between attempts to send a batch the holder did not take.
AGAIN = 1.0
#: Seconds after its oldest change that a batch nobody took is dropped.
KEEP_TRYING = 120.0

#: One change as the route checked it: its type, id and scene (None without).
Key = tuple[str, str, str | None]


def _key(change: Mapping[str, Any]) -> Key:
    scene = change.get("scene_id")
    return str(change["type"]), str(change["id"]), None if scene is None else str(scene)


def _change(key: Key) -> dict[str, str]:
    kind, ident, scene = key
    return {"type": kind, "id": ident} | ({} if scene is None else {"scene_id": scene})


class Relay:
    """The changes a node keeps for the holders of its integrations (one per
    :class:`~sluiced.control.Control`, see :func:`relay`)."""

    def __init__(self) -> None:
        #: The distinct changes kept for each integration, in the order they came.
        self.pending: dict[str, dict[Key, None]] = {}
        #: When the oldest change kept for each integration came (trio's clock).
        self.since: dict[str, float] = {}
        #: When each integration's next batch may be sent (trio's clock).
        self.next: dict[str, float] = {}
        #: Integrations whose changes a background task is sending.
        self.sending: set[str] = set()

    def add(self, ctl: Control, target: HookTarget, changes: Sequence[Mapping[str, Any]]) -> None:
        """Keep *changes* (checked by the route) for the holder of *target*; the first
        starts the task that sends them (see the module).

        Raises:
            Conflict: the daemon runs no background work.
        """
        if not changes:
            return
        kept = self.pending.setdefault(target.id, {})
        self.since.setdefault(target.id, trio.current_time())
        kept.update(dict.fromkeys(map(_key, changes)))
        if target.id in self.sending:
            return
        ctl.start_soon(lambda: self._send(ctl, target), name=f"stash hooks to {target.id}")
        self.sending.add(target.id)

    async def _send(self, ctl: Control, target: HookTarget) -> None:
        """Send what is kept for *target*, batch after batch, until nothing is.
        Cancelled (the daemon stops): what is kept is lost."""
        ident = target.id
        try:
            while self.pending.get(ident):
                await trio.sleep_until(self.next.get(ident, 0.0))
                kept = self.pending[ident]
                batch = list(kept)[:BATCH]
                for key in batch:
                    del kept[key]
                self.next[ident] = trio.current_time() + target.delay / 2
                if await self._deliver(ctl, target, [_change(k) for k in batch]):
                    if kept:  # what came meanwhile: its own time to be taken
                        self.since[ident] = trio.current_time()
                    else:
                        self.since.pop(ident, None)
                    continue
                if trio.current_time() - self.since[ident] > KEEP_TRYING:
                    log.warning(
                        "changes reported by Stash's hooks dropped: no node took them",
                        integration_id=ident,
                        changes=len(batch) + len(kept),
                    )
                    self.pending.pop(ident, None)
                    self.since.pop(ident, None)
                    return
                self.pending[ident] = dict.fromkeys(batch) | kept
                self.next[ident] = trio.current_time() + AGAIN
        finally:
            self.sending.discard(ident)

    async def _deliver(self, ctl: Control, target: HookTarget, batch: list[dict[str, str]]) -> bool:
        """Hand *batch* to the node that runs *target* (this one, once it does); returns
        False if it should be sent again (nobody took it), True if it was taken or
        refused (a refusal is logged)."""
        try:
            await ctl.here(target.id)
        except Elsewhere:
            pass
        except StoreUnavailable as exc:  # who holds it cannot be read now
            log.info("changes reported by Stash's hooks not sent yet", error=str(exc))
            return False
        else:
            coalescer(ctl).add(ctl, target, changes_of(batch, target.entity_types)[0])
            return True
        body = {"changes": batch, "integrationId": target.id}
        try:
            status, answer = await ctl.forward(target.id, KIND, body)
        except StoreUnavailable as exc:  # no node took it in time, or no store
            log.info("changes reported by Stash's hooks not sent yet", error=str(exc))
            return False
        except Conflict as exc:  # no other node: not reached (here() said there is)
            log.warning("changes reported by Stash's hooks dropped", error=str(exc))
            return True
        if status < 300:
            return True
        error = answer.get("error") if isinstance(answer, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        if status == 503 or code == "LeaseLost":
            return False
        message = error.get("message") if isinstance(error, dict) else None
        log.warning(
            "changes reported by Stash's hooks dropped: the integration's node refused them",
            integration_id=target.id,
            status=status,
            error=message,
        )
        return True


_RELAYS: weakref.WeakKeyDictionary[Control, Relay] = weakref.WeakKeyDictionary()


def relay(ctl: Control) -> Relay:
    """The relay of the daemon whose control interface is *ctl*."""
    found = _RELAYS.get(ctl)
    if found is None:
        found = _RELAYS[ctl] = Relay()
    return found
