"""Which integrations a daemon runs: those of its config, and those defined through the
API, each validated with its connectors before it is scheduled."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import Config, parse_config
from .connectors import parse_connector, raise_problems
from .mapping import SchemaError, functions_from, parse_schema
from .pluginmanager import Registry
from .resolved import Resolved
from .tables import Problems

__all__ = ["API_ORIGIN", "parse_definition", "resolve_integrations"]

#: The "file" named in problems with integrations defined through the API.
API_ORIGIN = "(api)"


def resolve_integrations(
    config: Config, registry: Registry, *, confine: tuple[Path, ...] | None = None
) -> dict[str, Resolved]:
    """Validate every integration's source and target settings with their connectors,
    and its schema (none for a target keyed by source ids); with *confine*, their paths
    must lie inside those directories.

    Raises:
        ConfigError: listing every problem, in the same format as the config's own.
    """
    problems = Problems(str(config.path))
    base_dir = config.path.parent.resolve()
    functions = functions_from(registry.functions)
    out: dict[str, Resolved] = {}
    for ident, cfg in config.integrations.items():
        source, target = (
            parse_connector(
                c, role, registry.connectors, problems=problems, base_dir=base_dir, confine=confine
            )
            for c, role in ((cfg.source, "source"), (cfg.target, "target"))
        )
        if cfg.schema is not None and target is not None and target.factory.keyed_by_source_ids:
            problems.add(
                f"integrations.{ident}.schema",
                "a schema",
                f'no schema: the "{cfg.target.connector}" target is keyed by source ids and'
                " takes records as the source returns them",
            )
        elif cfg.schema is not None:
            try:
                parse_schema(cfg.schema, functions, cfg.entity_types)
            except SchemaError as exc:
                where = exc.path.removeprefix("schema")
                problems.add(f"integrations.{ident}.schema{where}", "a schema", exc.message)
        if source is not None and target is not None:
            out[ident] = Resolved(cfg=cfg, source=source, target=target)
    raise_problems(problems)
    return out


def parse_definition(
    daemon_config: Config, registry: Registry, integration_id: str, table: Mapping[str, Any]
) -> Resolved:
    """Validate an integration defined through the API like one from the config,
    every path it names confined to ``[daemon] allowed_paths``.

    Raises:
        ConfigError: problems keyed ``integrations.<id>.<key>``, file ``(api)``.
    """
    confine = daemon_config.daemon.api_paths
    config = parse_config(
        {"integrations": {integration_id: dict(table)}},
        path=daemon_config.path.parent / API_ORIGIN,
        confine=confine,
        changes_retention=daemon_config.daemon.changes_retention,
    )
    resolved = resolve_integrations(config, registry, confine=confine)[integration_id]
    return replace(resolved, cfg=replace(resolved.cfg, origin="api"))
