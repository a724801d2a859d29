"""What the benchmarks share: one run of the daemon, and each size in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from sluiced.config import load_config
from sluiced.supervisor import Daemon


def run_once(config: Path) -> float:
    """Run one job per integration of *config* through the whole daemon; seconds taken."""
    daemon = Daemon(load_config(config))
    start = time.perf_counter()
    status = trio.run(lambda: daemon.run(once=True))
    assert status == 0, "the benchmark job failed"
    return time.perf_counter() - start


def run_child(script: str, *args: str) -> dict[str, Any]:
    """Run ``script --child ARGS`` in a fresh process (its peak memory its own) and
    return the JSON object it printed last."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
