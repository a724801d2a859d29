"""The sync engine's public names, from :mod:`sluiced.sync`."""

from .sync import CHECKPOINT_VERSION as CHECKPOINT_VERSION
from .sync import EngineResult as EngineResult
from .sync import Interrupted as Interrupted
from .sync import JobControl as JobControl
from .sync import JobLog as JobLog
from .sync import PlanSink as PlanSink
from .sync import SyncEngine as SyncEngine
from .sync import TooManyDeletes as TooManyDeletes
from .sync import content_hash as content_hash
from .sync import default_mapper as default_mapper
from .sync import plan_entry as plan_entry
from .sync import single_errors as single_errors

__all__ = [
    "CHECKPOINT_VERSION",
    "EngineResult",
    "Interrupted",
    "JobControl",
    "JobLog",
    "PlanSink",
    "SyncEngine",
    "TooManyDeletes",
    "content_hash",
    "default_mapper",
    "plan_entry",
    "single_errors",
]
