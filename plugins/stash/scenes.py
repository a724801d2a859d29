"""The ids of a ``sync_scenes`` job (seed 001): the given scenes, fully, with all they
link to. The mirror's plan of the job (``target.py``) makes it the engine's pass by ids.

* The ids are read as Stash reads them (Go's ``strconv.Atoi``: an optional sign and
  decimal digits) and deduplicated as integers *before* anything is asked: one
  malformed or duplicate id fails Stash's whole ``findScenes(ids:)`` call ("converting
  ids: strconv.Atoi ...", "validating ids: duplicate id found: N"). An id that cannot
  be a scene's (``"scene123"``, ``"0"``) is logged as an error and counted in the job's
  errors, like an id Stash does not have; the other scenes sync. Duplicates are synced
  once.
* Scenes are asked for a batch at a time (one request, then what they link to that the
  mirror lacks). An id Stash does not have is an error, and leaves the mirror.
* Each scene commits on its own, with the job's position and counts: progress moves
  scene by scene, in memory (the API shows it while the job runs); the daemon's store
  is written once a batch, and takes its counts from the mirror if the job resumes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["BATCH", "SceneIds", "scene_ids"]

#: Scenes asked for in one request (seed 001 expects 1 to 100 scenes a job).
BATCH = 100
_ATOI = re.compile(r"[+-]?[0-9]+")
_LARGEST = 2**63 - 1  # Go's int and SQLite's INTEGER


@dataclass(frozen=True)
class SceneIds:
    #: Distinct scene ids, canonical (``"007"`` -> ``"7"``), in the order first given.
    ids: list[str]
    #: Ids that cannot be a Stash scene's, as given.
    malformed: list[str]
    #: How many ids repeated one given before them.
    duplicates: int


def scene_ids(given: Iterable[Any]) -> SceneIds:
    """Sort *given* into ids to ask Stash for and ids that cannot be a scene's."""
    ids: list[str] = []
    seen: set[int] = set()
    malformed: list[str] = []
    duplicates = 0
    for raw in given:
        text = str(raw)
        value = int(text) if _ATOI.fullmatch(text) else 0
        if not 1 <= value <= _LARGEST:
            malformed.append(text)
        elif value in seen:
            duplicates += 1
        else:
            seen.add(value)
            ids.append(str(value))
    return SceneIds(ids=ids, malformed=malformed, duplicates=duplicates)
