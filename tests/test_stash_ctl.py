"""``sluicectl sync-scenes``: the ids as the console's field takes them."""

from __future__ import annotations

import argparse
from typing import Any

from sluiced.plugins.stash.ctl import run_sync_scenes


class Recorded:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        self.sent.append((method, path, body))
        return {"id": "job-1"}

    def created(self, job_id: str, data: Any) -> int:
        return 0


def test_commas_separate_scene_ids_as_spaces_do() -> None:
    session = Recorded()
    args = argparse.Namespace(scene_ids=["1,", "2", "scene123,99999", ",2"], integration=None)
    assert run_sync_scenes(session, args) == 0  # type: ignore[arg-type]
    assert session.sent == [
        ("POST", "/api/sync/scenes", {"scene_ids": ["1", "2", "scene123", "99999", "2"]})
    ]
