"""A fake Stash server for tests, benchmarks and trying sluiced without a Stash.

python -m sluiced.plugins.stash.fake --scenes 1000 --port 9999 --tz America/Los_Angeles

Its HTTP side (:class:`FakeStash`, :class:`Faults`, :func:`build_app`) needs graphql-core,
which the extra ``sluiced[fake-stash]`` installs (``dev`` includes it); it is imported on
first use, and without graphql-core that use raises an :class:`ImportError` naming the
extra. :class:`Library` and :func:`generate` need nothing more than sluiced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .library import Library as Library
from .library import generate as generate

if TYPE_CHECKING:
    from .server import FakeStash as FakeStash
    from .server import Faults as Faults
    from .server import build_app as build_app

__all__ = ["FakeStash", "Faults", "Library", "build_app", "generate"]


def __getattr__(name: str) -> Any:
    if name in ("FakeStash", "Faults", "build_app"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
