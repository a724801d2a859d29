"""Suite-wide settings.

With ``SLUICED_NO_SKIPS=1`` (set by ``.ci/run``, which installs every system program
the tests use) a skipped test fails the run: a real-server test that skipped there
proved nothing.
"""

from __future__ import annotations

import os

import pytest

from .pgserver import pg_server as pg_server
from .pgserver import pg_url as pg_url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("SLUICED_NO_SKIPS") != "1" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        for report in skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            print(f"\nSLUICED_NO_SKIPS: skipped {report.nodeid}: {reason}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
