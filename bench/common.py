"""What the benchmarks share: one run of the daemon, its CPU time, each size in a fresh
process, and the figures' table.

The daemon's CPU time is the user + system time of the process that runs it (every
thread), read from ``os.times()``: what a slow peer adds to the wall time does not
hide it. ``SLUICED_BENCH_PROFILE=DIR`` writes a cProfile of each daemon run to
``DIR/<name>-<count>.prof`` (read it with ``python -m pstats``).
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from sluiced.config import load_config
from sluiced.gcpolicy import daemon_gc
from sluiced.supervisor import Daemon


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all its threads."""
    t = os.times()
    return t.user + t.system


@dataclass
class Measured:
    """Wall and CPU seconds of one measured stretch."""

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def measured(profile_as: str | None = None) -> Iterator[Measured]:
    """Measure the wall and CPU time of the block; with ``SLUICED_BENCH_PROFILE`` set
    and *profile_as* given, profile it too: this thread and every thread started
    meanwhile (the store's, the workers of ``trio.to_thread``), in one file."""
    out = Measured()
    folder = os.environ.get("SLUICED_BENCH_PROFILE")
    profilers: list[cProfile.Profile] = []

    def in_new_thread(*_: Any) -> None:
        threading.setprofile(None)
        sys.setprofile(None)
        profilers.append(cProfile.Profile())
        profilers[-1].enable()

    if folder and profile_as:
        profilers.append(cProfile.Profile())
        threading.setprofile(in_new_thread)
        profilers[0].enable()
    wall, cpu = time.perf_counter(), cpu_seconds()
    try:
        yield out
    finally:
        out.wall, out.cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        threading.setprofile(None)
        for profiler in profilers:
            profiler.disable()  # the other threads' stop when they next run Python code
        if folder and profilers:
            Path(folder).mkdir(parents=True, exist_ok=True)
            stats = pstats.Stats(profilers[0])
            for profiler in profilers[1:]:
                profiler.create_stats()
                stats.add(profiler)
            stats.dump_stats(Path(folder) / f"{profile_as}.prof")


def run_once(config: Path, profile_as: str | None = None) -> Measured:
    """Run one job per integration of *config* through the whole daemon, in this
    process; its wall and CPU time."""
    daemon = Daemon(load_config(config))
    with measured(profile_as) as m, daemon_gc():  # as ``sluiced run`` runs it
        status = trio.run(lambda: daemon.run(once=True))
    assert status == 0, "the benchmark job failed"
    return m


def floor_of(work: Callable[[], None], profile_as: str | None = None) -> Measured:
    """Time *work* (the floor: the same objects handled directly, in this process)."""
    with measured(profile_as) as m:
        work()
    return m


def run_child(script: str, *args: str) -> dict[str, Any]:
    """Run ``script --child ARGS`` in a fresh process (its peak memory its own) and
    return the JSON object it printed last."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def per_object_us(seconds: float, count: int) -> float:
    return 1e6 * seconds / count if count else 0.0


def cost_line(label: str, count: int, daemon_cpu: float, floor_cpu: float) -> str:
    """``label: daemon CPU µs/object, floor µs/object, ratio``."""
    d, f = per_object_us(daemon_cpu, count), per_object_us(floor_cpu, count)
    ratio = d / f if f else float("nan")
    return f"{label}: daemon CPU {d:6.1f} µs/object, floor {f:5.1f} µs/object, ratio {ratio:4.1f}x"
