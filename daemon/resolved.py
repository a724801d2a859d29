"""An integration ready to run: its config and its validated connectors."""

from __future__ import annotations

from dataclasses import dataclass

from .config import IntegrationConfig
from .connectors import ParsedConnector

__all__ = ["Resolved"]


@dataclass(frozen=True, kw_only=True)
class Resolved:
    """An integration ready to run: its config and its validated connectors."""

    cfg: IntegrationConfig
    source: ParsedConnector
    target: ParsedConnector
