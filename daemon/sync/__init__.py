"""The sync engine: source pages → mapping → target batches, checkpointed.

One engine serves every kind of integration. For each entity type it runs a pass
(:mod:`._passes`): the source's pages are read while the previous page is applied
(:mod:`._pipeline`), each object is mapped and compared with what was exported
(:mod:`._decide`, pure), the batch is applied to the target and committed with the job's
checkpoint in one store transaction. Failures are escrowed and retried
(:mod:`._escrows`); a full pass deprovisions what the source no longer has, through the
deletion gate (:mod:`._deletions`).

Pause stops at the next object boundary; graceful stop after the current batch; both
leave a checkpoint that ``run`` continues from.
"""

from ..retrying import Interrupted as Interrupted
from ._decide import content_hash as content_hash
from ._decide import plan_entry as plan_entry
from ._engine import SyncEngine as SyncEngine
from ._job import CHECKPOINT_VERSION as CHECKPOINT_VERSION
from ._job import EngineResult as EngineResult
from ._job import JobControl as JobControl
from ._job import JobLog as JobLog
from ._job import PlanSink as PlanSink
from ._job import TooManyDeletes as TooManyDeletes
from ._job import default_mapper as default_mapper
from ._pipeline import single_errors as single_errors

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
