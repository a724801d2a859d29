"""The garbage collector's settings while the daemon runs.

A sync makes a few short-lived container objects per synced object (its record, op,
result, link and their dicts); almost all are freed by reference counting, never by
the collector. With CPython's default first-generation threshold (700 allocations) the
collector still runs every hundred or so objects and walks the young objects each
time, and its full collections walk everything loaded at start-up (modules, config,
plugins). :func:`daemon_gc` freezes what exists when the daemon starts (it is kept for
the process's life anyway) and collects the first generation every
:data:`GEN0_THRESHOLD` allocations instead: reference cycles are still collected, a
bounded number of them later.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["GEN0_THRESHOLD", "daemon_gc"]

#: Container allocations (net of frees) between two collections of the first
#: generation while the daemon runs. The garbage in cycles waiting for a collection
#: is bounded by this many objects: well under a MiB.
GEN0_THRESHOLD = 20_000


@contextmanager
def daemon_gc() -> Iterator[None]:
    """Run the block (the daemon) with the objects that exist now frozen out of the
    collector's generations and the first generation's threshold raised to
    :data:`GEN0_THRESHOLD`; the settings before are restored after it, on any exit."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
