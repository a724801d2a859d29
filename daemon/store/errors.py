"""What goes wrong with the store itself, by what the daemon does about it.

* :class:`StoreUnavailable` — the store cannot be read or written now (a full or
  read-only state directory, an I/O error, a database server that is down). Whatever
  was being done fails with the message, which names the file or the server; the daemon
  stays up and tries again later.
* :class:`StoreRefused` — the daemon must not start on this store until an operator acts
  (it is damaged, lost, or newer than this sluiced). The message says what to do;
  ``sluiced run`` exits with :data:`EXIT_STORE_REFUSED`, which the systemd unit lists in
  ``RestartPreventExitStatus=`` so that it does not restart in a loop.
* :class:`StoreInUse` — another live daemon uses this node's ``node_id`` on the
  PostgreSQL store (or holds it alone, for a store opened *exclusive*); ``sluiced run``
  exits as for a state directory another daemon holds.
* :class:`LeaseLost` — a write for an integration whose lease this node no longer holds
  (another node may run it now): nothing was written, and the job that tried ends on this
  node; the store itself is fine.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SyncError
from ..statelock import StateDirInUse

__all__ = [
    "EXIT_STORE_REFUSED",
    "LeaseLost",
    "StoreDamaged",
    "StoreInUse",
    "StoreMissing",
    "StoreRefused",
    "StoreUnavailable",
]

#: The exit status of ``sluiced run`` when it refuses the store (see the systemd unit).
EXIT_STORE_REFUSED = 3


class StoreUnavailable(SyncError):
    """The store (its file, or its database server) cannot be read or written at the
    moment."""

    code = "StoreUnavailable"


class LeaseLost(StoreUnavailable):
    """A fenced write for *integration_id* found that this node (*node_id*) does not hold
    its lease at *epoch* (None: it held none); *holder* is the node that does, if any.
    Nothing was written."""

    code = "LeaseLost"

    def __init__(
        self, integration_id: str, node_id: str, epoch: int | None, holder: str | None = None
    ) -> None:
        self.integration_id = integration_id
        self.node_id = node_id
        self.epoch = epoch
        self.holder = holder
        held = f"at epoch {epoch}" if epoch is not None else "(it held none)"
        where = f"the integration is held by node {holder}" if holder else "no node holds it now"
        super().__init__(
            f"lease lost: node {node_id} no longer holds the integration {integration_id} "
            f"{held}; nothing was written ({where})"
        )


class StoreRefused(RuntimeError):
    """The store cannot be used without an operator's decision."""


class StoreMissing(StoreRefused):
    """A store opened to be read does not exist yet (no daemon created it)."""


class StoreDamaged(StoreRefused):
    """The store file is not a sound SQLite database."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(
            f"the store {path} is damaged ({detail}). Restore it from a backup, or start "
            f"once with `sluiced run --fresh-store` (or create the file "
            f"{path.parent / 'fresh-store'}) to set it aside and begin with an empty store: "
            "links, watermarks and job history are lost, and the next run matches every "
            "object again"
        )


class StoreInUse(StateDirInUse):
    """Another daemon uses this node's name on the store's database, or holds the
    database alone."""
