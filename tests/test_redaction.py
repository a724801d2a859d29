"""Credentials in URLs never show: user-info is refused when the config is read, and
sensitive query values are hidden in config problems, ``config show``, log lines, job
errors and logs, the integration's last execution, validate-credentials answers and
the store."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from sluiced.cli import main
from sluiced.config import load_config
from sluiced.errors import ConfigError
from sluiced.logs import configure_logging, get_logger
from sluiced.redact import has_userinfo, redact_text

from .daemonproc import SLUICED, DaemonProc, daemons, first_job, wait_job

procs = pytest.fixture(daemons)

SECRET = "SEKRIT-7f3a"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            f"cannot reach https://admin:{SECRET}@idp.example/scim/v2/Users?filter=x: refused",
            "cannot reach https://[redacted]@idp.example/scim/v2/Users?filter=x: refused",
        ),
        (
            f"GET http://h:9999/?apikey={SECRET}/graphql answered 500",
            "GET http://h:9999/?apikey=[redacted] answered 500",
        ),
        (
            f"'http://h/x?page=2&access_token={SECRET}&X-Api-Key={SECRET}#token={SECRET}'",
            "'http://h/x?page=2&access_token=[redacted]&X-Api-Key=[redacted]#token=[redacted]'",
        ),
        (f"/cb?code={SECRET};sig={SECRET}", "/cb?code=[redacted];sig=[redacted]"),
        (f"?password={SECRET}&secret={SECRET}&key={SECRET}", None),
        ("http://h/x?id=3&sort=name a=b user@example.org", None),
    ],
)
def test_redact_text(text: str, shown: str | None) -> None:
    out = redact_text(text)
    assert SECRET not in out
    if shown is not None:
        assert out == shown
    if SECRET not in text:
        assert out == text


def test_has_userinfo() -> None:
    assert has_userinfo("https://u:p@h/x") and has_userinfo("http://token@h")
    assert not has_userinfo("https://h/a@b") and not has_userinfo("mailto:a@b")


CONFIG = """
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
[integrations.hr]
entity_types = ["User"]
[integrations.hr.source]
connector = "jsonl"
paths = {{ User = "people.jsonl" }}
[integrations.hr.target]
connector = "scim"
url = "{url}"
"""


def test_a_url_with_userinfo_is_refused_at_load_pointing_to_the_secret_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(url=f"https://admin:{SECRET}@idp.example/scim/v2"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert problem.key == "integrations.hr.target.url"
    assert "user name or password" in problem.found
    assert "_file, _env or _credential" in problem.expected and "token_file" in problem.expected
    assert SECRET not in str(caught.value) and "admin" not in str(caught.value)

    # Through the CLI: exit 2, the key named, the secret nowhere.
    checked = subprocess.run(
        [*SLUICED, "check-config", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 2
    assert "integrations.hr.target.url" in checked.stderr
    assert SECRET not in checked.stdout + checked.stderr and "Traceback" not in checked.stderr


def test_other_problems_never_repeat_a_urls_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(url=f"ftp://idp.example/scim?access_token={SECRET}"))
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "integrations.hr.target.url" in err
    assert "access_token=[redacted]" in err  # still says what was found...
    assert SECRET not in err  # ...but not the secret


def test_config_show_hides_sensitive_query_values(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        CONFIG.format(url=f"https://idp.example/scim/v2?tenant=t1&access_token={SECRET}")
    )
    shown = subprocess.run(
        [*SLUICED, "config", "show", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert 'url = "https://idp.example/scim/v2?tenant=t1&access_token=[redacted]"' in shown.stdout
    assert SECRET not in shown.stdout + shown.stderr


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    yield stream
    structlog.reset_defaults()


def test_log_lines_hide_url_credentials_in_every_value(json_log: io.StringIO) -> None:
    log = get_logger("test")
    log.error(f"GET https://u:{SECRET}@h/x failed", error=f"http://h/?apikey={SECRET}", n=3)
    try:
        raise ValueError(f"cannot reach http://h/graphql?access_token={SECRET}")
    except ValueError:
        log.exception("job failed unexpectedly", problems=[f"http://h/?token={SECRET}"])
    lines = [json.loads(x) for x in json_log.getvalue().splitlines()]
    assert lines[0]["event"] == "GET https://[redacted]@h/x failed"
    assert lines[0]["error"] == "http://h/?apikey=[redacted]" and lines[0]["n"] == 3
    assert "access_token=[redacted]" in lines[1]["exception"]
    assert lines[1]["problems"] == ["http://h/?token=[redacted]"]
    assert SECRET not in json_log.getvalue()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.e2e
def test_a_failing_source_url_never_shows_its_apikey(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/?apikey={SECRET}"
    (tmp_path / "config.toml").write_text(f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
[integrations.stash]
entity_types = ["performer"]
interval = "1h"
jitter = "0s"
[integrations.stash.retry]
attempts = 1
[integrations.stash.source]
connector = "stash"
url = "{url}"
timeout = "2s"
[integrations.stash.target]
connector = "stash-mirror"
path = "mirror.sqlite3"
""")
    d = DaemonProc(tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    procs.append(d)
    d.start()
    client = d.client()
    job = wait_job(client, first_job(client, "stash")["id"])
    assert job["status"] == "failed"
    assert "apikey=[redacted]" in job["error"], job
    assert any("apikey=[redacted]" in e["message"] for e in job["logs"])
    integration = client.get("/api/sync/integrations/stash").json()
    assert "apikey=[redacted]" in json.dumps(integration)
    checked = client.post("/api/sync/integrations/stash/validate-credentials")
    assert "apikey=[redacted]" in checked.text, checked.text
    created = client.post(
        "/api/sync/integrations",
        json={
            "id": "other",
            "entityTypes": ["performer"],
            "source": {"connector": "stash", "url": f"http://admin:{SECRET}@127.0.0.1:1"},
            "target": {"connector": "stash-mirror", "path": "other.sqlite3"},
        },
    )
    assert created.status_code == 422, created.text
    assert created.json()["error"]["field"] == "source.url"
    assert "user name or password" in created.text and "_credential" in created.text
    answers = [
        created.json(),
        job,
        integration,
        checked.json(),
        client.get("/api/sync/jobs").json(),
        client.get("/api/sync/integrations/status").json(),
    ]
    assert d.stop() == 0
    assert SECRET not in json.dumps(answers)
    assert SECRET not in d.log.read_text()
    for part in (tmp_path / "state").glob("sluiced.sqlite3*"):
        assert SECRET.encode() not in part.read_bytes(), part
    shown = subprocess.run(
        [*SLUICED, "job", job["id"], "-c", str(d.config)], capture_output=True, text=True
    )
    assert shown.returncode == 0 and "apikey=[redacted]" in shown.stdout
    assert SECRET not in shown.stdout


@pytest.mark.e2e
def test_a_failing_target_url_never_shows_its_token_in_provisioning(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    (tmp_path / "people.jsonl").write_text('{"id": "P1", "userName": "p1"}\n')
    url = f"http://127.0.0.1:{closed_port()}/scim/v2?access_token={SECRET}"
    (tmp_path / "config.toml").write_text(
        CONFIG.format(url=url).replace(
            'entity_types = ["User"]', 'entity_types = ["User"]\nstate = "Paused"'
        )
        + "[integrations.hr.retry]\nattempts = 1\n"
    )
    d = DaemonProc(tmp_path)
    procs.append(d)
    d.start()
    client = d.client()
    answer = client.post("/api/sync/integrations/hr/provision-on-demand", json={"objectId": "P1"})
    assert answer.status_code == 502, answer.text
    assert "access_token=[redacted]" in answer.text
    jobs = client.get("/api/sync/jobs").json()["jobs"]
    assert len(jobs) == 1 and "access_token=[redacted]" in jobs[0]["error"], jobs
    assert d.stop() == 0
    assert SECRET not in answer.text + json.dumps(jobs) + d.log.read_text()
    for part in (tmp_path / "state").glob("sluiced.sqlite3*"):
        assert SECRET.encode() not in part.read_bytes(), part
