"""The contracts of connectors (:mod:`.abc`), what a target may offer beyond them
(:mod:`.capabilities`), and validating a connector's config table (:mod:`.parsing`).

A plugin imports from here; in-memory implementations for its tests are in
:mod:`sluiced.testing`.
"""

from .abc import ConnectorContext as ConnectorContext
from .abc import ConnectorFactory as ConnectorFactory
from .abc import EntityType as EntityType
from .abc import Malformed as Malformed
from .abc import Op as Op
from .abc import OpResult as OpResult
from .abc import Page as Page
from .abc import Record as Record
from .abc import Source as Source
from .abc import Target as Target
from .capabilities import TargetCapabilities as TargetCapabilities
from .driver import DriverContext as DriverContext
from .driver import JobDriver as JobDriver
from .parsing import ParsedConnector as ParsedConnector
from .parsing import parse_connector as parse_connector
from .parsing import raise_problems as raise_problems

__all__ = [
    "ConnectorContext",
    "ConnectorFactory",
    "DriverContext",
    "EntityType",
    "JobDriver",
    "Malformed",
    "Op",
    "OpResult",
    "Page",
    "Record",
    "Source",
    "Target",
    "TargetCapabilities",
    "parse_connector",
]
