"""Plans of dry runs: what a run would create, update (which attributes), disable and
delete, one JSON line per change in ``<state_dir>/plans/<job id>.jsonl``.

Written as the dry run goes, so memory stays flat however large the plan; read back in
pages through ``GET /api/sync/jobs/{id}/plan``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import trio

__all__ = ["PlanFile", "read_plan"]


class PlanFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def start(self) -> None:
        """Begin the plan again (a dry run resumed after a crash starts over)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    async def add(self, entries: Sequence[Mapping[str, Any]]) -> None:
        text = "".join(json.dumps(e, default=str, separators=(",", ":")) + "\n" for e in entries)

        def append() -> None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(text)

        await trio.to_thread.run_sync(append)


def read_plan(path: Path, *, offset: int = 0, limit: int = 1000) -> dict[str, Any]:
    """Entries ``offset .. offset+limit`` of a plan, and counts of every action in it."""
    entries: list[Any] = []
    counts: Counter[str] = Counter()
    total = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            counts[entry.get("action", "?")] += 1
            if offset <= total < offset + limit:
                entries.append(entry)
            total += 1
    return {
        "summary": dict(sorted(counts.items())),
        "total": total,
        "offset": offset,
        "entries": entries,
    }
