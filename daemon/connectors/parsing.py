"""Validating a ``[integrations.*.source]`` or ``.target`` table with its connector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConnectorConfig
from ..errors import ConfigError
from ..tables import Problems, TableReader
from .abc import ConnectorFactory

__all__ = ["ParsedConnector", "parse_connector", "raise_problems"]


@dataclass(frozen=True, kw_only=True)
class ParsedConnector:
    """A connector table that its factory accepted, with the factory's settings."""

    factory: ConnectorFactory
    settings: Any
    config: ConnectorConfig = field(repr=False)


def parse_connector(
    cfg: ConnectorConfig,
    role: str,
    factories: Mapping[str, ConnectorFactory],
    *,
    problems: Problems,
    base_dir: Path,
    confine: Sequence[Path] | None = None,
) -> ParsedConnector | None:
    """Validate one source or target table with its factory.

    Returns the parsed connector, or None when the connector is unknown or cannot play
    *role*. Every problem (those of the factory's ``parse_settings`` too) is recorded
    in *problems*, not raised. With *confine*, every path setting (read with
    ``get_path``) must lie inside one of those directories.
    """
    factory = factories.get(cfg.connector)
    if factory is None:
        known = ", ".join(f'"{n}"' for n in sorted(factories)) or "none loaded"
        problems.add(f"{cfg.key}.connector", f'"{cfg.connector}"', f"a connector name ({known})")
        return None
    if role not in factory.roles:
        problems.add(
            f"{cfg.key}.connector", f'"{cfg.connector}"', f"a connector that can be a {role}"
        )
        return None
    reader = TableReader(
        cfg.settings, path=cfg.key, problems=problems, base_dir=base_dir, confine=confine
    )
    reader.ignore("connector")
    settings = factory.parse_settings(reader)
    return ParsedConnector(factory=factory, settings=settings, config=cfg)


def raise_problems(problems: Problems) -> None:
    """Raises:
    ConfigError: listing every problem recorded, if there is any."""
    if problems.items:
        raise ConfigError(problems.items)
