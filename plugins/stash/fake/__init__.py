"""A fake Stash server for tests, benchmarks and trying sluiced without a Stash.

python -m sluiced.plugins.stash.fake --scenes 1000 --port 9999 --tz America/Los_Angeles
"""

from .library import Library as Library
from .library import generate as generate
from .server import FakeStash as FakeStash
from .server import Faults as Faults
from .server import build_app as build_app

__all__ = ["FakeStash", "Faults", "Library", "build_app", "generate"]
