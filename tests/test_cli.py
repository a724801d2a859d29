"""The sluiced admin commands, run in-process through main()."""

from __future__ import annotations

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
        CONFIG.replace('connector = "jsonl"\npaths = { user = "out.jsonl" }', 'connector = "ldap"')
    )
    assert main(["check-config", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        'integrations.hr.target.connector: found "ldap"; expected a connector name ("csv", "jsonl", "scim", "stash", "stash-mirror")'
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
    assert "complete -F _sluicectl sluicectl" in script
    if shutil.which("bash"):
        probe = (
            script
            + 'COMP_WORDS=(sluicectl restart --s); COMP_CWORD=2; _sluicectl; echo "${COMPREPLY[@]}"\n'
        )
        out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["--scope"]


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
