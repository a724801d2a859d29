"""One daemon per state directory: an exclusive lock held for the daemon's lifetime, so
that two daemons never run the same integrations on one store."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

__all__ = ["StateDirInUse", "lock_state_dir"]


class StateDirInUse(RuntimeError):
    """Another daemon holds the state directory."""


def lock_state_dir(state_dir: Path) -> IO[bytes]:
    """Lock *state_dir* (made if missing); the lock lasts until the returned file is
    closed.

    Raises:
        StateDirInUse: another process holds it.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / "sluiced.lock").open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StateDirInUse(
            f"another sluiced is running on the state directory {state_dir}"
        ) from None
    return handle
