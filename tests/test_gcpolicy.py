"""The garbage collector's settings while the daemon runs."""

from __future__ import annotations

import gc

import pytest

from sluiced.gcpolicy import GEN0_THRESHOLD, daemon_gc


def test_the_daemon_runs_with_start_up_frozen_and_a_higher_threshold() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with daemon_gc():
        assert gc.get_threshold() == (GEN0_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_settings_are_restored_when_the_daemon_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), daemon_gc():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_are_still_collected() -> None:
    with daemon_gc():
        gc.collect()
        a: list[object] = []
        a.append(a)
        del a
        assert gc.collect() >= 1
