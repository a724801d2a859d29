"""A real PostgreSQL server in a temporary directory, for tests and benchmarks.

:class:`PgServer` runs ``initdb`` (trust authentication, superuser ``sluiced``, no
fsync) and ``pg_ctl start`` on a data directory that is also the directory of its Unix
socket; it listens on no TCP port. ``initdb`` refuses to run as root: as root, both run
as the ``postgres`` user, who owns the directory. Starting takes a few seconds, so the
tests share one server per session (per xdist worker) and each test makes its own
database (:meth:`PgServer.new_database`, from ``template0``: fast).

Debian's ``postgresql`` package provides the programs (in /usr/lib/postgresql/N/bin,
not on PATH); :func:`skip_reason` says why a test cannot start a server
(``.ci/system-packages`` installs it).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "sluiced"
_counter = itertools.count(1)


def bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are, or None."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def skip_reason() -> str | None:
    """Why no PostgreSQL server can be started here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'sluiced[postgresql]')"
    if bindir() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "as root, runuser is needed to run initdb as postgres"
    return None


class PgServer:
    """One server; :meth:`start` makes it (the first time) and starts it."""

    def __init__(self) -> None:
        folder = bindir()
        assert folder is not None, skip_reason()
        self.bin = folder
        self.dir = Path(tempfile.mkdtemp(prefix="sluiced-pg-"))
        self.data = self.dir / "data"
        self.running = False

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {out.stdout}{out.stderr}")

    @property
    def socket_dir(self) -> Path:
        return self.data

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of *database* through the Unix socket."""
        return f"postgresql://{USER}@/{database}?host={self.socket_dir}"

    def start(self) -> PgServer:
        if not self.data.exists():
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "--no-sync")
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-o",
            f"-k {self.data} -c listen_addresses='' -c fsync=off -c full_page_writes=off",
            "-w",
            "start",
        )
        self.running = True
        return self

    def stop(self) -> None:
        """Stop at once (``-m immediate``: as if the server crashed)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.running = False

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def new_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (skips the test when none can be started)."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PgServer().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL of a new database of its own on :func:`pg_server`; the server is running
    again when the test ends (a test may stop it)."""
    yield pg_server.new_database()
    if not pg_server.running:
        pg_server.start()
