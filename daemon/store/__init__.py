"""Where the daemon keeps its state. ``open_store`` picks the implementation."""

from .abc import BatchCommit as BatchCommit
from .abc import JobHistory as JobHistory
from .abc import StagedDeletion as StagedDeletion
from .abc import Store as Store
from .memory import MemoryStore as MemoryStore
from .sqlite import SqliteStore as SqliteStore

__all__ = ["BatchCommit", "JobHistory", "MemoryStore", "SqliteStore", "StagedDeletion", "Store"]
