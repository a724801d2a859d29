"""Building the plugin manager and the registry of what plugins provide.

Never a module global: the daemon builds one per lifetime (and per reload); tests build
fresh ones with inline ``@hookimpl`` classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import distribution
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .connectors import ConnectorFactory

if TYPE_CHECKING:
    from .api.jobtypes import JobType
    from .api.routing import Route
    from .ctl._command import Command

__all__ = [
    "PluginInfo",
    "Registry",
    "RegistryError",
    "build_plugin_manager",
    "build_registry",
    "ctl_commands",
]

ENTRY_POINT_GROUP = "sluiced"


class RegistryError(Exception):
    """Plugins that contradict each other (two connectors of one name, ...)."""


def build_plugin_manager(
    *, disabled: Iterable[str] = (), extra: Iterable[object] = (), entry_points: bool = True
) -> pluggy.PluginManager:
    """A plugin manager with every entry point of group ``sluiced`` except *disabled*.

    *extra* plugins (objects or modules) are registered too (tests use this).

    Raises:
        pluggy.PluginValidationError: a plugin implements a hook that has no spec.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    return pm


@dataclass(frozen=True, kw_only=True)
class PluginInfo:
    name: str
    version: str | None
    provides: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Registry:
    """What the loaded plugins provide, by name (routes in the order given)."""

    pm: pluggy.PluginManager
    connectors: Mapping[str, ConnectorFactory] = field(default_factory=dict)
    entity_types: Mapping[str, Any] = field(default_factory=dict)
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    job_types: Mapping[str, JobType] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    commands: Mapping[str, Command] = field(default_factory=dict)
    plugins: tuple[PluginInfo, ...] = ()


def _per_plugin(pm: pluggy.PluginManager, hook_name: str) -> list[tuple[str, Any]]:
    """Call *hook_name* on each plugin separately, to know who provided what."""
    out = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        out.append((name, impl.function()))
    return out


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Collect connectors, entity types, mapping functions, job types, API routes and
    ``sluicectl`` commands from every plugin.

    Raises:
        RegistryError: two plugins provide the same name (a job type's ``job_type``
            form and a route's method and path count as names).
    """
    owners: dict[str, str] = {}
    provides: dict[str, list[str]] = {}
    connectors: dict[str, ConnectorFactory] = {}
    entity_types: dict[str, Any] = {}
    functions: dict[str, Callable[..., Any]] = {}
    job_types: dict[str, JobType] = {}
    routes: list[Route] = []
    commands: dict[str, Command] = {}

    def claim(kind: str, name: str, plugin: str) -> None:
        key = f"{kind} {name}"
        if key in owners:
            raise RegistryError(f"{kind} {name!r} is provided by both {owners[key]} and {plugin}")
        owners[key] = plugin
        provides.setdefault(plugin, []).append(key)

    for plugin, result in _per_plugin(pm, "sluiced_connectors"):
        for factory in result or ():
            claim("connector", factory.name, plugin)
            connectors[factory.name] = factory
    for plugin, result in _per_plugin(pm, "sluiced_entity_types"):
        for et in result or ():
            claim("entity type", et.name, plugin)
            entity_types[et.name] = et
    for plugin, result in _per_plugin(pm, "sluiced_mapping_functions"):
        for fname, fn in (result or {}).items():
            claim("function", fname, plugin)
            functions[fname] = fn
    for plugin, result in _per_plugin(pm, "sluiced_job_types"):
        for kind in result or ():
            claim("job type", kind.name, plugin)
            for form in kind.forms:
                if form != kind.name:
                    claim("job type form", form, plugin)
            job_types[kind.name] = kind
    for plugin, result in _per_plugin(pm, "sluiced_api_routes"):
        for route in result or ():
            claim("route", f"{route.method} {route.path}", plugin)
            routes.append(route)
    for plugin, result in _per_plugin(pm, "sluiced_ctl_commands"):
        for command in result or ():
            claim("command", command.name, plugin)
            commands[command.name] = command

    dists = {id(p): d for p, d in pm.list_plugin_distinfo()}
    infos = []
    for name, obj in sorted(pm.list_name_plugin(), key=lambda pair: pair[0]):
        dist = dists.get(id(obj))
        version = dist.version if dist is not None else _own_version(obj)
        infos.append(PluginInfo(name=name, version=version, provides=tuple(provides.get(name, ()))))
    return Registry(
        pm=pm,
        connectors=connectors,
        entity_types=entity_types,
        functions=functions,
        job_types=job_types,
        routes=tuple(routes),
        commands=commands,
        plugins=tuple(infos),
    )


def ctl_commands(pm: pluggy.PluginManager) -> dict[str, Command]:
    """The ``sluicectl`` commands of every plugin, by name (only this hook is called:
    ``sluicectl`` needs nothing else).

    Raises:
        RegistryError: two plugins add a command of one name.
    """
    owners: dict[str, str] = {}
    commands: dict[str, Command] = {}
    for plugin, result in _per_plugin(pm, "sluiced_ctl_commands"):
        for command in result or ():
            if command.name in owners:
                raise RegistryError(
                    f"command {command.name!r} is provided by both {owners[command.name]} "
                    f"and {plugin}"
                )
            owners[command.name] = plugin
            commands[command.name] = command
    return commands


def _own_version(plugin: object) -> str | None:
    module = str(getattr(plugin, "__name__", "") or type(plugin).__module__)
    if module.startswith("sluiced"):
        return distribution("sluiced").version
    return None
