"""Targets that run their jobs themselves instead of the generic sync engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from .abc import Source

__all__ = ["DriverContext", "JobDriver"]


@dataclass(frozen=True, kw_only=True)
class DriverContext:
    """What a :class:`JobDriver` gets to run a job: everything the engine would use."""

    cfg: Any  # IntegrationConfig
    store: Any  # Store
    clock: Any  # Clock
    log: Any  # JobLog: async (level, message)
    control: Any  # JobControl: pause_requested, stop_requested
    breakers: Any  # Breakers
    source: Source


class JobDriver(ABC):
    """A target that runs its jobs itself instead of the generic sync engine.

    For targets whose rows and checkpoint must commit in one transaction of their own
    (the Stash mirror). The contract is the engine's: return an
    :class:`~sluiced.engine.EngineResult`; raise :class:`~sluiced.engine.Interrupted`
    at a boundary when ``control`` asks to pause or stop; keep ``job`` (progress, stage,
    stats, checkpoint) saved in ``store`` as it goes; resume from ``job.checkpoint``.
    """

    @abstractmethod
    async def run(self, job: Any, ctx: DriverContext) -> Any:
        """Run *job* to its end."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the driver holds."""

    async def validate(self) -> str:
        """Check that the driver's target can be written; see :meth:`Source.validate`."""
        return "nothing to check"
