"""The sluiced admin commands, run in-process through main()."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sluiced.cli import main

CONFIG = """
[daemon]
state_dir = "state"
[integrations.hr]
entity_types = ["user"]
interval = "PT40M"
[integrations.hr.source]
connector = "jsonl"
paths = { user = "in.jsonl" }
[integrations.hr.target]
connector = "jsonl"
paths = { user = "out.jsonl" }
"""


def test_check_config_ok_and_failing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    assert main(["check-config", "-c", str(config)]) == 0
    assert "ok (1 integrations)" in capsys.readouterr().out
    config.write_text(
        CONFIG.replace('connector = "jsonl"\npaths = { user = "out.jsonl" }', 'connector = "x500"')
    )
    assert main(["check-config", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        'integrations.hr.target.connector: found "x500"; expected a connector name ("csv", "jsonl", "ldap", "scim", "stash", "stash-mirror")'
        in err
    )


def test_config_show_prints_effective_toml_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    assert main(["config", "show", "-c", str(config)]) == 0
    shown = tomllib.loads(capsys.readouterr().out)
    hr = shown["integrations"]["hr"]
    assert hr["interval"] == "40m" and hr["batch_size"] == 500
    assert hr["quarantine"]["escalation"] == ["10m", "30m", "1h", "2h", "6h"]
    assert hr["source"] == {"connector": "jsonl", "paths": {"user": "in.jsonl"}}
    assert shown["daemon"]["state_dir"] == str(tmp_path / "state")


def test_plugins_lists_what_each_provides(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    assert main(["plugins", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "files 0.1.0" in out and "connector jsonl" in out and "connector csv" in out


def test_job_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    assert main(["job", "-c", str(config), "job-nope"]) == 1
    assert "no job 'job-nope'" in capsys.readouterr().err


def test_sluicectl_bash_completion(capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    import subprocess

    from sluiced.ctl import main as ctl_main

    assert ctl_main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "complete -o default -F _sluicectl sluicectl" in script
    if shutil.which("bash"):
        probe = (
            script
            + 'COMP_WORDS=(sluicectl restart --s); COMP_CWORD=2; _sluicectl; echo "${COMPREPLY[@]}"\n'
        )
        out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["--scope", "--socket"]


def test_mapping_test_runs_a_schema_over_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    root = Path(__file__).resolve().parent.parent
    sample = tmp_path / "sample.jsonl"
    sample.write_text(
        '{"id": "1", "givenName": "Ada", "familyName": "Lovelace", "mail": "ADA@x.org", "status": "active",'
        ' "department": "R&D"}\n'
        '{"id": "2", "givenName": "Bob", "mail": "b@x.org", "status": "gone", "department": "Finance"}\n'
        "{not json\n"
    )
    assert main(["mapping", "test", str(root / "examples" / "hr-schema.json"), str(sample)]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {
        "line": 1,
        "action": "create",
        "object": {
            "id": "1",
            "userName": "ada@x.org",
            "displayName": "Ada Lovelace",
            "active": "True",
            "department": "R&D",
        },
    }
    assert lines[1] == {"line": 2, "action": "out of scope"}
    assert lines[2]["action"] == "escrow" and lines[2]["line"] == 3
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "objectMappings": [
                    {
                        "sourceObjectName": "user",
                        "attributeMappings": [
                            {
                                "targetAttributeName": "x",
                                "source": {"type": "Expression", "expression": "Left([a]"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    assert main(["mapping", "test", str(bad), str(sample)]) == 2
    assert (
        "schema.objectMappings[0].attributeMappings[0].source.expression: column 9"
        in capsys.readouterr().err
    )


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluiced", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env={**os.environ, "SLUICED_CONFIG": ""},
    )


def test_global_options_go_before_or_after_the_command(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    for argv in (["-c", str(config), "jobs", "--json"], ["--json", "jobs", "-c", str(config)]):
        result = _run(*argv, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"jobs": [], "total": 0}
    assert _run("-c", str(config), "check-config", cwd=tmp_path).returncode == 0
    # one written after the command wins over one before it
    result = _run("-c", "/nonexistent.toml", "check-config", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_check_config_takes_the_file_as_a_positional(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    assert main(["check-config", str(config)]) == 0
    assert "ok (1 integrations)" in capsys.readouterr().out
    assert main(["check-config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err
    assert main(["check-config", str(config), "-c", str(tmp_path / "other.toml")]) == 2
    assert "two configs given" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import sluiced

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"sluiced {sluiced.__version__}\n"


def test_config_example_prints_the_documented_config_and_units(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = Path(__file__).resolve().parent.parent
    assert main(["config", "example"]) == 0
    assert capsys.readouterr().out == (root / "config.toml.example").read_text()
    for unit in ("sluiced.service", "sluiced.socket"):
        assert main(["config", "example", unit]) == 0
        assert capsys.readouterr().out == (root / "systemd" / unit).read_text()


def test_help_shows_exit_codes_environment_and_positionals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["--help"], ["jobs", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "exit status:" in out and "  3  the store is refused" in out
        assert "SLUICED_CONFIG" in out
    with pytest.raises(SystemExit):
        main(["job", "--help"])
    assert re.search(r"^  JOB +a job's id", capsys.readouterr().out, re.M)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["mapping", "test", "{schema}", "missing.jsonl"], "cannot read the sample missing.jsonl"),
        (["mapping", "test", "missing.json", "{sample}"], "cannot read missing.json"),
        (["check-config", "{bad_duration}"], "daemon.shutdown_grace: found float inf"),
        (["check-config", "{huge_duration}"], 'daemon.shutdown_grace: found "99999999999d"'),
        (["completion"], "the following arguments are required: SHELL"),
    ],
)
def test_ordinary_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], expected: str
) -> None:
    root = Path(__file__).resolve().parent.parent
    sample = tmp_path / "sample.jsonl"
    sample.write_text('{"id": "1"}\n')
    (tmp_path / "inf.toml").write_text("[daemon]\nshutdown_grace = inf\n")
    (tmp_path / "huge.toml").write_text('[daemon]\nshutdown_grace = "99999999999d"\n')
    names = {
        "schema": str(root / "examples" / "hr-schema.json"),
        "sample": str(sample),
        "bad_duration": str(tmp_path / "inf.toml"),
        "huge_duration": str(tmp_path / "huge.toml"),
    }
    result = _run(*(a.format(**names) for a in argv), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("sluiced")]) == 1


def test_read_commands_create_nothing_on_an_empty_folder(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    for argv in (["jobs"], ["job", "job-x"], ["jobs", "--json"]):
        _run("-c", str(config), *argv, cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


async def _store_with_a_job(path: Path) -> str:
    from datetime import UTC, datetime

    from sluiced.models import Job, LogEntry
    from sluiced.store import SqliteStore

    store = SqliteStore(path)
    now = datetime(2024, 1, 1, 12, tzinfo=UTC)
    job = Job(id="job-1", integration_id="hr", type="full_sync", created_at=now, node="node-a")
    await store.save_job(job)
    await store.append_logs("job-1", [LogEntry(timestamp=now, level="info", message="hello")])
    await store.aclose()
    return job.id


def test_job_prints_the_api_shape_and_reads_the_store_read_only(tmp_path: Path) -> None:
    import hashlib
    import sqlite3

    import trio

    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    db = tmp_path / "state" / "sluiced.sqlite3"
    trio.run(_store_with_a_job, db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    shown = _run("-c", str(config), "job", "job-1", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    job = json.loads(shown.stdout)
    assert job["integrationId"] == "hr" and job["createdAt"] == "2024-01-01T12:00:00.000Z"
    assert job["logs"][0]["message"] == "hello" and "integration_id" not in job
    listed = json.loads(_run("-c", str(config), "jobs", "--json", cwd=tmp_path).stdout)
    assert listed["jobs"][0]["integrationId"] == "hr"
    assert listed["jobs"][0]["node"] == "node-a"  # the node that ran it
    table = _run("-c", str(config), "jobs", cwd=tmp_path).stdout.splitlines()
    assert table[0].split()[-1] == "NODE" and table[1].split()[-1] == "node-a", table
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    # an older schema is not migrated by a read command: it says what to do
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version=1")
    old = _run("-c", str(config), "jobs", cwd=tmp_path)
    assert old.returncode == 3 and "`sluiced run` upgrades it" in old.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "sluiced", "config", "example"],
        ["-c", "import sys; from sluiced.ctl import main; sys.exit(main())", "completion", "bash"],
    ],
)
def test_a_closed_pipe_on_stdout_is_quiet(tmp_path: Path, argv: list[str]) -> None:
    """`sluiced ... | head -1`: the reader is gone before the output is written."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
    finally:
        os.close(write)
    assert result.stderr == "" and result.returncode == 0
