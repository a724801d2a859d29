"""Start-up on a PostgreSQL store that cannot be trusted, as for the SQLite file
(``test_store_startup.py``): a lost store (no tables where this node ran before), a
damaged one (tables of its version missing), a schema that is not a store; and
beginning anew (``--fresh-store``), which is refused while other nodes are live."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sluiced.store import EXIT_STORE_REFUSED

from .daemonproc import SLUICED, DaemonProc, daemons, make_daemon

pytestmark = pytest.mark.e2e

psycopg = pytest.importorskip("psycopg")

procs = pytest.fixture(daemons)


def node(root: Path, pg_url: str, name: str, people: int = 50) -> DaemonProc:
    root.mkdir(exist_ok=True)
    extra = f'store = "{pg_url}"\nnode_id = "{name}"\nlease_ttl = "6s"\nheartbeat = "1s"'
    return make_daemon(root, people=people, extra_daemon=extra)


def run_cli(d: DaemonProc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SLUICED, *args, "-c", str(d.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=d.root,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def sql(pg_url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description is not None else []


def links(pg_url: str) -> int:
    return int(sql(pg_url, "SELECT count(*) FROM sluiced.links")[0][0])  # type: ignore[call-overload]


def schemas(pg_url: str) -> list[str]:
    rows = sql(pg_url, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sluiced%'")
    return sorted(str(r[0]) for r in rows)


def assert_refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == EXIT_STORE_REFUSED, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = result.stderr.splitlines()
    for word in words:
        assert word in line, line


def test_read_commands_on_a_store_no_daemon_created_show_nothing_and_create_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    d = node(tmp_path, pg_url, "node-a")
    listed = run_cli(d, "jobs")
    assert listed.returncode == 0 and "(0 of 0)" in listed.stdout, listed.stderr
    assert run_cli(d, "job", "nope").returncode == 1
    assert schemas(pg_url) == []
    assert run_cli(d, "run", "--once").returncode == 0  # a first start needs no flag
    assert links(pg_url) == 50


def test_a_lost_store_where_the_node_ran_is_refused_then_begun_anew_when_told(
    tmp_path: Path, pg_url: str
) -> None:
    d = node(tmp_path, pg_url, "node-a")
    assert run_cli(d, "run", "--once").returncode == 0
    sql(pg_url, "DROP SCHEMA sluiced CASCADE")
    result = run_cli(d, "run", "--once")
    assert_refused(
        result, "(schema sluiced) holds no sluiced tables", "sluiced.lock", "--fresh-store"
    )
    assert schemas(pg_url) == []  # nothing created
    assert run_cli(d, "jobs").returncode == 0
    assert run_cli(d, "run", "--once", "--fresh-store").returncode == 0
    assert links(pg_url) == 50
    assert run_cli(d, "run", "--once").returncode == 0  # no flag needed any more
    (d.root / "state" / "fresh-store").touch()  # a sound store is kept, the file used up
    assert run_cli(d, "run", "--once").returncode == 0
    assert links(pg_url) == 50 and not (d.root / "state" / "fresh-store").exists()


def test_a_damaged_store_is_refused_then_set_aside_when_told(tmp_path: Path, pg_url: str) -> None:
    d = node(tmp_path, pg_url, "node-a")
    assert run_cli(d, "run", "--once").returncode == 0
    sql(pg_url, "DROP TABLE sluiced.links")
    assert_refused(run_cli(d, "run"), "is damaged", "without the tables links", "--fresh-store")
    assert schemas(pg_url) == ["sluiced"]
    assert run_cli(d, "run", "--once", "--fresh-store").returncode == 0
    (aside,) = [s for s in schemas(pg_url) if s != "sluiced"]
    assert aside.startswith("sluiced_damaged_")
    kept = sql(pg_url, f"SELECT count(*) FROM {aside}.jobs")
    assert kept == [(1,)]  # renamed with what it held, never dropped
    assert links(pg_url) == 50


def test_a_schema_of_another_application_is_refused_even_when_told_to_begin_anew(
    tmp_path: Path, pg_url: str
) -> None:
    sql(pg_url, "CREATE SCHEMA sluiced; CREATE TABLE sluiced.invoices (id int)")
    d = node(tmp_path, pg_url, "node-a")
    for flags in ((), ("--fresh-store",)):
        assert_refused(run_cli(d, "run", "--once", *flags), "not a sluiced store's (invoices)")
    assert sql(pg_url, "SELECT count(*) FROM sluiced.invoices") == [(0,)]


def test_beginning_anew_is_refused_while_another_node_is_live(
    tmp_path: Path, pg_url: str, procs: list[DaemonProc]
) -> None:
    a = node(tmp_path / "a", pg_url, "node-a")
    procs.append(a)
    a.start()
    b = node(tmp_path / "b", pg_url, "node-b")
    result = run_cli(b, "run", "--once", "--fresh-store")
    assert_refused(result, "other nodes are live", "node-a (host", "stop them first")
    assert schemas(pg_url) == ["sluiced"]
    assert a.stop() == 0  # it left: beginning anew may go on
    assert run_cli(b, "run", "--once", "--fresh-store").returncode == 0


def test_no_secret_of_the_store_url_shows_when_the_server_cannot_be_reached(
    tmp_path: Path,
) -> None:
    url = "postgresql://sluiced@/sluiced?host=/nonexistent&sslpassword=topsecret"
    d = node(tmp_path, url, "node-a")
    for args in (("jobs",), ("run", "--once"), ("config", "show")):
        result = run_cli(d, *args)
        assert "topsecret" not in result.stdout + result.stderr, args
        if args != ("config", "show"):
            assert result.returncode == 1 and "cannot open the store" in result.stderr, args


def test_read_commands_outside_the_unit_read_the_store_without_its_credential(
    tmp_path: Path, pg_url: str
) -> None:
    d = node(tmp_path, pg_url, "node-a")
    assert run_cli(d, "run", "--once").returncode == 0
    text = d.config.read_text()
    d.config.write_text(text.replace("[daemon]", '[daemon]\nstore_password_credential = "db"'))
    listed = run_cli(d, "jobs")  # no $CREDENTIALS_DIRECTORY here: libpq's means apply
    assert listed.returncode == 0 and "(1 of 1)" in listed.stdout, listed.stderr
    (note,) = listed.stderr.splitlines()
    assert "daemon.store_password_credential" in note and "without it" in note
    assert run_cli(d, "run", "--once").returncode == 2  # the daemon needs it
    d.config.write_text(text.replace("[daemon]", '[daemon]\nstore_password = "inline"'))
    refused = run_cli(d, "jobs")
    assert refused.returncode == 2 and "an inline secret" in refused.stderr
