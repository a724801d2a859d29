"""An integration into a target keyed by source ids (the Stash mirror) takes records as
the source returns them: a schema for it is refused, in its config and through the
API, rather than silently ignored."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

import sluiced.plugins.stash as stash_plugin
from sluiced.config import parse_config
from sluiced.connectors import ConnectorFactory
from sluiced.pluginmanager import build_plugin_manager
from sluiced.plugins.stash import StashConnector, StashMirrorConnector
from sluiced.store import MemoryStore
from sluiced.supervisor import Daemon
from sluiced.testing import MemoryConnector

MIRROR = """
[daemon]
state_dir = "state"

[integrations.stash]
entity_types = ["performer", "tag"]
state = "Paused"
[integrations.stash.source]
connector = "stash"
url = "http://127.0.0.1:9"
[integrations.stash.target]
connector = "stash-mirror"
path = "mirror.sqlite3"
"""

SCHEMA = """
[[integrations.stash.schema.objectMappings]]
sourceObjectName = "performer"
[[integrations.stash.schema.objectMappings.attributeMappings]]
targetAttributeName = "name"
source = { type = "Direct", name = "name" }
"""

#: A schema that is valid for an integration whose target keeps links.
PUT_SCHEMA = {
    "objectMappings": [
        {
            "sourceObjectName": "performer",
            "attributeMappings": [
                {"targetAttributeName": "name", "source": {"type": "Direct", "name": "name"}}
            ],
        }
    ]
}


def test_factories_declare_whether_their_targets_are_keyed_by_source_ids() -> None:
    assert StashMirrorConnector.keyed_by_source_ids is True
    assert StashConnector.keyed_by_source_ids is False
    assert ConnectorFactory.keyed_by_source_ids is False
    assert MemoryConnector().keyed_by_source_ids is False


def test_a_schema_for_a_keyed_target_is_a_config_error_naming_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sluiced.cli import main

    config = tmp_path / "config.toml"
    config.write_text(MIRROR)
    assert main(["check-config", "-c", str(config)]) == 0
    config.write_text(MIRROR + SCHEMA)
    assert main(["check-config", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{config}: integrations.stash.schema: found a schema; expected no schema:"
        ' the "stash-mirror" target is keyed by source ids' in err
    ), err


async def test_the_api_refuses_a_schema_for_a_keyed_target_naming_the_field(
    tmp_path: Path,
) -> None:
    config = parse_config(
        {
            "daemon": {"state_dir": str(tmp_path / "state")},
            "integrations": {
                "stash": {
                    "entity_types": ["performer", "tag"],
                    "state": "Paused",
                    "source": {"connector": "stash", "url": "http://127.0.0.1:9"},
                    "target": {"connector": "stash-mirror", "path": str(tmp_path / "m.sqlite3")},
                }
            },
        },
        path=tmp_path / "config.toml",
    )
    daemon = Daemon(
        config,
        pm=build_plugin_manager(entry_points=False, extra=[stash_plugin]),
        store=MemoryStore(),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: daemon.run(api=False, task_status=task_status))
        transport = httpx.ASGITransport(app=daemon.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://sluiced") as client:
            url = "/api/sync/integrations/stash/schema"
            default = (await client.get(url)).json()
            r = await client.put(url, json=PUT_SCHEMA)
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["code"] == "InvalidSchema" and error["field"] == "schema"
            assert "keyed by source ids" in error["message"]
            assert (await client.get(url)).json() == default  # nothing was stored
            assert daemon.runner.source_keyed("stash")  # from its factory, opening nothing
            assert not (tmp_path / "m.sqlite3").exists()
        nursery.cancel_scope.cancel()
    state = await daemon.store.get_state("stash")
    assert state.schema is None and not state.full_sync_required
