from __future__ import annotations

from collections.abc import Sequence

import pluggy
import pytest

from sluiced.connectors import ConnectorFactory
from sluiced.hookspecs import hookimpl
from sluiced.pluginmanager import RegistryError, build_plugin_manager, build_registry
from sluiced.testing import MemoryConnector


def test_builtin_plugins_come_from_entry_points() -> None:
    registry = build_registry(build_plugin_manager())
    assert {"jsonl", "csv"} <= set(registry.connectors)
    (files,) = [p for p in registry.plugins if p.name == "files"]
    assert files.version and files.provides == ("connector jsonl", "connector csv")


def test_disabled_plugins_are_not_loaded() -> None:
    registry = build_registry(build_plugin_manager(disabled=["files"]))
    assert "jsonl" not in registry.connectors


def test_a_hook_implementation_without_a_spec_is_refused() -> None:
    class Typo:
        @hookimpl
        def sluiced_conectors(self) -> list[object]:
            return []

    with pytest.raises(pluggy.PluginValidationError, match="sluiced_conectors"):
        build_plugin_manager(entry_points=False, extra=[Typo()])


def test_two_plugins_with_one_connector_name_are_refused() -> None:
    class One:
        @hookimpl
        def sluiced_connectors(self) -> Sequence[ConnectorFactory]:
            return [MemoryConnector()]

    pm = build_plugin_manager(entry_points=False)
    pm.register(One(), name="one")
    pm.register(One(), name="two")
    with pytest.raises(RegistryError, match="connector 'memory' is provided by both"):
        build_registry(pm)


def test_mapping_functions_and_entity_types_are_collected() -> None:
    class Provider:
        name = "thing"
        depends_on = ()

        @hookimpl
        def sluiced_mapping_functions(self) -> dict[str, object]:
            return {"Shout": str.upper}

        @hookimpl
        def sluiced_entity_types(self) -> list[object]:
            return [self]

    pm = build_plugin_manager(entry_points=False)
    pm.register(Provider(), name="provider")
    registry = build_registry(pm)
    assert registry.functions["Shout"]("a") == "A" and "thing" in registry.entity_types
    (info,) = registry.plugins
    assert info.provides == ("entity type thing", "function Shout")
