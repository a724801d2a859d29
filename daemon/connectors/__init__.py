"""The contracts of connectors (:mod:`.abc`) and what flows through them
(:mod:`.records`), what a target may offer beyond them
(:mod:`.capabilities`), what mirrors offer (:mod:`.mirrors`), and validating a
connector's config table (:mod:`.parsing`).

A plugin imports from here; in-memory implementations for its tests are in
:mod:`sluiced.testing`.
"""

from .abc import ConnectorContext as ConnectorContext
from .abc import ConnectorFactory as ConnectorFactory
from .abc import EntityType as EntityType
from .abc import Source as Source
from .abc import Target as Target
from .capabilities import TargetCapabilities as TargetCapabilities
from .mirrors import Checkpoint as Checkpoint
from .mirrors import JobPlan as JobPlan
from .mirrors import LinkingSource as LinkingSource
from .mirrors import PlanningTarget as PlanningTarget
from .mirrors import Reconciler as Reconciler
from .mirrors import ReconcilingTarget as ReconcilingTarget
from .mirrors import SourceKeyedTarget as SourceKeyedTarget
from .mirrors import Survey as Survey
from .mirrors import TransactionalTarget as TransactionalTarget
from .mirrors import Writes as Writes
from .parsing import ParsedConnector as ParsedConnector
from .parsing import parse_connector as parse_connector
from .parsing import raise_problems as raise_problems
from .records import Gone as Gone
from .records import Malformed as Malformed
from .records import Op as Op
from .records import OpResult as OpResult
from .records import Page as Page
from .records import Record as Record

__all__ = [
    "Checkpoint",
    "ConnectorContext",
    "ConnectorFactory",
    "EntityType",
    "Gone",
    "JobPlan",
    "LinkingSource",
    "Malformed",
    "Op",
    "OpResult",
    "Page",
    "PlanningTarget",
    "Reconciler",
    "ReconcilingTarget",
    "Record",
    "Source",
    "SourceKeyedTarget",
    "Survey",
    "Target",
    "TargetCapabilities",
    "TransactionalTarget",
    "Writes",
    "parse_connector",
]
