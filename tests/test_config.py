from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sluiced.config import load_config
from sluiced.errors import ConfigError
from sluiced.tables import Problems, TableReader

GOOD = """
[daemon]
state_dir = "state"
max_concurrent_jobs = 2
log_format = "json"

[integrations.hr]
entity_types = ["user"]
interval = "PT40M"
full_sync_interval = "1d"
jitter = "1m30s"
expiration = "2030-01-01T00:00:00Z"
[integrations.hr.source]
connector = "jsonl"
paths = { user = "in.jsonl" }
[integrations.hr.target]
connector = "jsonl"
paths = { user = "out.jsonl" }
[integrations.hr.quarantine]
escalation = ["5m", "1h"]
[integrations.hr.deletion_threshold]
count = 10
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return [str(p) for p in info.value.problems]


def test_good_config(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, GOOD))
    assert c.daemon.state_dir == tmp_path / "state"
    assert c.daemon.control_socket == tmp_path / "state" / "control.sock"
    assert c.daemon.max_concurrent_jobs == 2
    hr = c.integrations["hr"]
    assert hr.interval == timedelta(minutes=40) and hr.full_sync_interval == timedelta(days=1)
    assert hr.jitter == timedelta(seconds=90)
    assert hr.quarantine.escalation == (timedelta(minutes=5), timedelta(hours=1))
    assert hr.deletion_threshold.count == 10 and hr.deletion_threshold.percent is None
    assert hr.source.connector == "jsonl" and hr.source.settings == {"paths": {"user": "in.jsonl"}}
    assert hr.source.key == "integrations.hr.source"


def test_an_expiration_takes_rfc_3339s_lower_case_t_and_z(tmp_path: Path) -> None:
    text = GOOD.replace("2030-01-01T00:00:00Z", "2030-01-01t00:00:00z")
    assert load_config(write(tmp_path, text)).integrations["hr"].expiration == datetime(
        2030, 1, 1, tzinfo=UTC
    )


def test_every_problem_names_file_key_found_and_expected(tmp_path: Path) -> None:
    text = (
        GOOD.replace('interval = "PT40M"', 'interval = "forty minutes"')
        .replace("max_concurrent_jobs = 2", "max_concurrent_jobs = 0\ncolour = 1")
        .replace('entity_types = ["user"]', "entity_types = []")
    )
    found = problems(tmp_path, text)
    path = str(tmp_path / "config.toml")
    assert all(p.startswith(path + ": ") for p in found)
    joined = "\n".join(found)
    assert 'integrations.hr.interval: found "forty minutes"; expected a positive duration' in joined
    assert "daemon.max_concurrent_jobs: found int 0; expected an integer >= 1" in joined
    assert "daemon.colour: found unknown key 'colour'" in joined
    assert (
        "integrations.hr.entity_types: found an array; expected a non-empty array of strings"
        in joined
    )
    assert len(found) == 4


def test_missing_required_tables(tmp_path: Path) -> None:
    found = problems(tmp_path, "[integrations.x]\nentity_types=['a']\n")
    assert any(
        "integrations.x.source: found nothing (the key is required); expected a table" in p
        for p in found
    )
    assert any("integrations.x.target" in p for p in found)


def test_bad_id_and_bad_toml(tmp_path: Path) -> None:
    assert any(
        "integration id 'a b'" in p
        for p in problems(tmp_path, GOOD.replace("integrations.hr", '"integrations"."a b"'))
    )
    assert any("invalid TOML" in p for p in problems(tmp_path, "[daemon\n"))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no readable file"):
        load_config(tmp_path / "missing.toml")


def read_secret(tmp_path: Path, table: dict[str, object]) -> tuple[object, list[str]]:
    probs = Problems("c.toml")
    r = TableReader(table, path="s", problems=probs, base_dir=tmp_path)
    value = r.get_secret("token")
    r.finish()
    return value, [str(p) for p in probs.items]


def test_secrets_come_from_file_env_or_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tok").write_text("s3cret\n")
    value, found = read_secret(tmp_path, {"token_file": "tok"})
    assert found == [] and value is not None
    assert value.reveal() == "s3cret" and "s3cret" not in repr(value) and "s3cret" not in str(value)  # type: ignore[attr-defined]
    monkeypatch.setenv("TOK", "from-env")
    value, _ = read_secret(tmp_path, {"token_env": "TOK"})
    assert value.reveal() == "from-env"  # type: ignore[union-attr]
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    value, _ = read_secret(tmp_path, {"token_credential": "tok"})
    assert value.reveal() == "s3cret"  # type: ignore[union-attr]


def test_inline_or_missing_secrets_are_refused_without_showing_them(tmp_path: Path) -> None:
    _, found = read_secret(tmp_path, {"token": "hunter2"})
    assert found and "hunter2" not in found[0] and "never written inline" in found[0]
    _, found = read_secret(tmp_path, {"token_file": "nope"})
    assert found == [
        'c.toml: s.token_file: found "nope" (No such file or directory); expected a readable secret'
    ]
    _, found = read_secret(tmp_path, {"token_env": "SLUICED_UNSET_VAR"})
    assert "is not set" in found[0]
    _, found = read_secret(tmp_path, {})
    assert "the secret is required" in found[0]


SCHEMA_JSON = (
    Path(__file__).resolve().parent.parent / "examples" / "hr-scim-schema.json"
).read_text()


def test_a_schema_comes_from_its_own_file_or_an_inline_table(tmp_path: Path) -> None:
    (tmp_path / "schema.json").write_text(SCHEMA_JSON)
    c = load_config(
        write(
            tmp_path,
            GOOD.replace("full_sync_interval", 'schema = "schema.json"\nfull_sync_interval'),
        )
    )
    assert c.integrations["hr"].schema is not None
    assert c.integrations["hr"].schema["objectMappings"][0]["targetObjectName"] == "User"
    inline = (
        GOOD
        + """
[[integrations.hr.schema.objectMappings]]
sourceObjectName = "user"
targetObjectName = "User"
[[integrations.hr.schema.objectMappings.attributeMappings]]
targetAttributeName = "userName"
source = { type = "Direct", name = "mail" }
matchingPriority = 1
"""
    )
    c = load_config(write(tmp_path, inline))
    m = c.integrations["hr"].schema["objectMappings"][0]  # type: ignore[index]
    assert m["attributeMappings"][0]["matchingPriority"] == 1


def test_a_missing_or_broken_schema_file_is_named(tmp_path: Path) -> None:
    text = GOOD.replace("full_sync_interval", 'schema = "nope.json"\nfull_sync_interval')
    (found,) = problems(tmp_path, text)
    assert "integrations.hr.schema" in found and "nope.json" in found and "No such file" in found
    (tmp_path / "bad.json").write_text("{not json")
    (found,) = problems(tmp_path, text.replace("nope.json", "bad.json"))
    assert "bad.json" in found and "expected a readable JSON or TOML schema file" in found


def test_an_invalid_schema_is_named_by_its_json_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sluiced.cli import main

    bad = SCHEMA_JSON.replace("ToLower([mail])", "ToLower([mail]", 1)
    (tmp_path / "schema.json").write_text(bad)
    config = write(
        tmp_path, GOOD.replace("full_sync_interval", 'schema = "schema.json"\nfull_sync_interval')
    )
    assert main(["check-config", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "integrations.hr.schema.objectMappings[0].attributeMappings[0].source.expression" in err
    assert "column" in err


def test_a_secret_file_is_read_again_when_revealed(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    reader = TableReader(
        {"token_file": str(token)}, path="t", problems=Problems("c.toml"), base_dir=tmp_path
    )
    secret = reader.get_secret("token")
    assert secret is not None and secret.reveal() == "first"
    token.write_text("rotated\n")
    assert secret.reveal() == "rotated"
    token.unlink()
    assert secret.reveal() == "rotated" and "rotated" not in repr(secret)


def test_a_disabled_deletion_threshold_may_keep_its_count(tmp_path: Path) -> None:
    text = GOOD.replace("count = 10", "enabled = false\ncount = 10\npercent = 5")
    hr = load_config(write(tmp_path, text)).integrations["hr"]
    assert hr.deletion_threshold.count is None and hr.deletion_threshold.percent is None
    bad = GOOD.replace("count = 10", "enabled = false\ncount = -1")
    assert any("deletion_threshold.count" in p for p in problems(tmp_path, bad))


def test_allowed_paths_and_the_id_pattern(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, GOOD))
    assert c.daemon.api_paths == (tmp_path / "state",)  # the default: the state directory
    text = GOOD.replace('log_format = "json"', 'allowed_paths = ["exports", "/srv/x"]')
    c = load_config(write(tmp_path, text))
    assert c.daemon.api_paths == (tmp_path / "exports", Path("/srv/x"))
    for ident in ('".."', '"a.b"', '"-a"'):
        found = problems(tmp_path, GOOD.replace("integrations.hr", f"integrations.{ident}"))
        assert any("integration id" in p for p in found), ident
