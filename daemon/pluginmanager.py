"""Building the plugin manager and the registry of what plugins provide.

Never a module global: the daemon builds one per lifetime (and per reload); tests build
fresh ones with inline ``@hookimpl`` classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import distribution
from typing import Any

import pluggy

from . import hookspecs
from .connectors import ConnectorFactory

__all__ = ["PluginInfo", "Registry", "RegistryError", "build_plugin_manager", "build_registry"]

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
    """What the loaded plugins provide, by name."""

    pm: pluggy.PluginManager
    connectors: Mapping[str, ConnectorFactory] = field(default_factory=dict)
    entity_types: Mapping[str, Any] = field(default_factory=dict)
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    plugins: tuple[PluginInfo, ...] = ()


def _per_plugin(pm: pluggy.PluginManager, hook_name: str) -> list[tuple[str, Any]]:
    """Call *hook_name* on each plugin separately, to know who provided what."""
    out = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        out.append((name, impl.function()))
    return out


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Collect connectors, entity types and mapping functions from every plugin.

    Raises:
        RegistryError: two plugins provide the same name.
    """
    owners: dict[str, str] = {}
    provides: dict[str, list[str]] = {}
    connectors: dict[str, ConnectorFactory] = {}
    entity_types: dict[str, Any] = {}
    functions: dict[str, Callable[..., Any]] = {}

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
        plugins=tuple(infos),
    )


def _own_version(plugin: object) -> str | None:
    module = str(getattr(plugin, "__name__", "") or type(plugin).__module__)
    if module.startswith("sluiced"):
        return distribution("sluiced").version
    return None
