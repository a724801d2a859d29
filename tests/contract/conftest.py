"""Fixtures of the contract suite: one peer per connector (see ``peers.py``); a test
takes the fixture of the connectors its contract applies to.

The SCIM server (a subprocess) is started once per module and emptied before each
test; the fake Stash runs in a thread of this process, one per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..scimserver import ScimServer, scim_server
from ..slapd import Slapd
from .peers import (
    FileSourcePeer,
    FileTargetPeer,
    LdapSourcePeer,
    LdapTargetPeer,
    MemorySourcePeer,
    MemoryTargetPeer,
    MirrorTargetPeer,
    ScimSourcePeer,
    ScimTargetPeer,
    StashSourcePeer,
    empty_stash,
)

SOURCES = [
    "memory",
    "jsonl",
    "csv",
    "scim",
    "stash-performer",
    "stash-tag",
    "stash-scene",
    "ldap",
]
TARGETS = ["memory", "jsonl", "csv", "scim", "ldap"]
#: Targets holding objects under their source ids (which disable by removing them).
KEYED_TARGETS = ["stash-mirror"]
DAMAGEABLE_SOURCES = ["memory", "jsonl", "csv"]
REFUSING_TARGETS = ["memory", "scim", "ldap"]


@pytest.fixture(scope="module")
def scim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    with scim_server(tmp_path_factory.mktemp("scim")) as server:
        yield server


def emptied(server: ScimServer) -> ScimServer:
    with server.client() as c:
        for endpoint in ("/Groups", "/Users"):
            for resource in server.all(endpoint):
                c.delete(f"{endpoint}/{resource['id']}")
    return server


def _source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    name: str = request.param
    if name == "memory":
        yield MemorySourcePeer(tmp_path)
    elif name in ("jsonl", "csv"):
        yield FileSourcePeer(tmp_path, name)
    elif name == "scim":
        yield ScimSourcePeer(tmp_path, emptied(request.getfixturevalue("scim")))
    elif name == "ldap":
        server = Slapd(tmp_path).start()
        try:
            yield LdapSourcePeer(tmp_path, server)
        finally:
            server.stop()
    else:
        with empty_stash() as fake:
            yield StashSourcePeer(tmp_path, fake, name.removeprefix("stash-"))


def _target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    name: str = request.param
    if name == "memory":
        return MemoryTargetPeer(tmp_path)
    if name in ("jsonl", "csv"):
        return FileTargetPeer(tmp_path, name)
    if name == "stash-mirror":
        return MirrorTargetPeer(tmp_path)
    if name == "ldap":
        return LdapTargetPeer(tmp_path, request.getfixturevalue("slapd"))
    return ScimTargetPeer(tmp_path, emptied(request.getfixturevalue("scim")))


@pytest.fixture(params=SOURCES)
def source_peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    yield from _source(request, tmp_path)


@pytest.fixture(params=DAMAGEABLE_SOURCES)
def damageable_source_peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Sources whose data a test can make unreadable."""
    yield from _source(request, tmp_path)


@pytest.fixture(params=TARGETS)
def target_peer(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return _target(request, tmp_path)


@pytest.fixture(params=TARGETS + KEYED_TARGETS)
def any_target_peer(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Every target, keyed by source ids or not."""
    return _target(request, tmp_path)


@pytest.fixture(params=KEYED_TARGETS)
def keyed_target_peer(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Targets offering :class:`~sluiced.connectors.TransactionalTarget` and
    :class:`~sluiced.connectors.SourceKeyedTarget`."""
    return _target(request, tmp_path)


@pytest.fixture(params=REFUSING_TARGETS)
def refusing_target_peer(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Targets that refuse some objects (a file takes everything)."""
    return _target(request, tmp_path)
