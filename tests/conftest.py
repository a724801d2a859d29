"""Suite-wide settings and fixtures.

With ``SLUICED_NO_SKIPS=1`` (set by ``.ci/run``, which installs every system program
the tests use) a skipped test fails the run: a real-server test that skipped there
proved nothing.

``slapd``: a real OpenLDAP server (``tests/slapd.py``) started in the test's ``tmp_path``
and stopped after it; where none can be started (no slapd, or python-ldap not built:
``pip install 'sluiced[ldap]'``) the test skips with the reason.

``pg_server`` and ``pg_url``: a real PostgreSQL server for the session and a database of
its own for each test (``tests/pgserver.py``); they skip where none can be started.
``mirror_db``: the Stash mirror's database, once SQLite, once PostgreSQL
(``tests/mirrordb.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .mirrordb import mirror_db as mirror_db
from .pgserver import pg_server as pg_server
from .pgserver import pg_url as pg_url
from .slapd import Slapd, skip_reason


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


def needs_slapd() -> None:
    """Skip the calling test when no slapd can be started here (the reason says why)."""
    if (reason := skip_reason()) is not None:
        pytest.skip(reason)


@contextmanager
def running_slapd(root: Path, **options: Any) -> Iterator[Slapd]:
    """A seeded slapd in *root* (``Slapd`` *options*), stopped when the block ends;
    skips the test where none can be started."""
    needs_slapd()
    server = Slapd(root, **options).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    """A seeded slapd in the test's ``tmp_path``, stopped after the test; skips without one."""
    with running_slapd(tmp_path) as server:
        yield server
