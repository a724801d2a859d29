"""Where the daemon keeps its state. ``open_store`` picks the implementation."""

from .abc import BatchCommit as BatchCommit
from .abc import JobHistory as JobHistory
from .abc import StagedDeletion as StagedDeletion
from .abc import Store as Store
from .abc import StoreWatcher as StoreWatcher
from .errors import EXIT_STORE_REFUSED as EXIT_STORE_REFUSED
from .errors import StoreDamaged as StoreDamaged
from .errors import StoreRefused as StoreRefused
from .errors import StoreUnavailable as StoreUnavailable
from .memory import MemoryStore as MemoryStore
from .sqlite import SqliteStore as SqliteStore

__all__ = [
    "EXIT_STORE_REFUSED",
    "BatchCommit",
    "JobHistory",
    "MemoryStore",
    "SqliteStore",
    "StagedDeletion",
    "Store",
    "StoreDamaged",
    "StoreRefused",
    "StoreUnavailable",
    "StoreWatcher",
]
