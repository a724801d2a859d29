"""Notification settings in the config, what is notified, and the rate limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sluiced.config import load_config
from sluiced.events import JobEvent
from sluiced.models import IntegrationState, Job, JobStatus, Quarantine
from sluiced.plugins.notify import RateLimit, notification_for

from .test_config import GOOD, problems, write

NOTIFY = """
[notify]
webhook_url = "https://hooks.example/sluiced"
email_to = ["ops@example.com"]
email_from = "sluiced@example.com"
smtp_host = "smtp.example.com"
smtp_password_env = "SMTP_PASSWORD"
every = "30m"
[integrations.hr.notify]
email_to = ["hr-it@example.com"]
on = ["quarantine"]
"""


def test_an_integrations_notify_table_overrides_the_config_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "pw")
    config = load_config(write(tmp_path, GOOD + NOTIFY))
    settings = config.integrations["hr"].notify.over(config.notify)
    assert settings.email_to == ("hr-it@example.com",) and settings.smtp_host == "smtp.example.com"
    assert settings.interval == timedelta(minutes=30) and settings.active
    assert settings.wants("quarantine") and not settings.wants("failed")
    assert settings.smtp_password is not None and "pw" not in repr(settings)


def test_bad_notify_settings_name_their_keys(tmp_path: Path) -> None:
    text = GOOD + (
        '[notify]\nsmtp_password = "inline"\nwebhook_url = "ftp://x"\n'
        'on = ["failed", "sometimes"]\nemail_to = ["nobody"]\nsmtp_security = "ssl"\n'
    )
    joined = "\n".join(problems(tmp_path, text))
    assert "notify.smtp_password: found an inline secret (not shown)" in joined
    assert (
        "notify.webhook_url: found a value (not shown); expected an http:// or https:// URL"
        in joined
    )
    assert "notify.on[1]: found 'sometimes'" in joined
    assert "notify.email_to[0]: found 'nobody'; expected an e-mail address" in joined
    assert "notify.smtp_security" in joined
    assert "integrations.hr.notify.smtp_host: found nothing" in joined
    assert "ftp://x" not in joined


T0 = datetime(2026, 1, 1, tzinfo=UTC)
JOB = Job(id="j1", integration_id="hr", type="full_sync", created_at=T0)


def test_what_is_notified() -> None:
    failed = JobEvent(
        kind="job",
        integration_id="hr",
        job=Job(**{**JOB.__dict__, "status": JobStatus.FAILED, "error": "boom"}),
    )
    assert notification_for(failed) is not None and notification_for(failed)[0] == "failed"  # type: ignore[index]
    gate = JobEvent(
        kind="job",
        integration_id="hr",
        job=Job(**{**JOB.__dict__, "status": JobStatus.FAILED, "error_code": "TooManyDeletes"}),
    )
    assert notification_for(gate)[0] == "deletions"  # type: ignore[index]
    plan = Job(**{**JOB.__dict__, "status": JobStatus.FAILED, "params": {"dry_run": True}})
    assert notification_for(JobEvent(kind="job", integration_id="hr", job=plan)) is None
    running = Job(**{**JOB.__dict__, "status": JobStatus.COMPLETED})
    assert notification_for(JobEvent(kind="job", integration_id="hr", job=running)) is None
    q = Quarantine(
        current_began=T0,
        next_attempt=None,
        reason="TooManyDeletes",
        series_began=T0,
        series_count=1,
    )
    entered = IntegrationState(integration_id="hr", quarantine=q)
    kind, _, payload = notification_for(  # type: ignore[misc]
        JobEvent(kind="quarantine", integration_id="hr", state=entered)
    )
    assert kind == "quarantined" and payload["quarantine"]["reason"] == "TooManyDeletes"
    left = IntegrationState(integration_id="hr")
    assert notification_for(JobEvent(kind="quarantine", integration_id="hr", state=left))[0] == (  # type: ignore[index]
        "recovered"
    )


def test_the_rate_limit_is_per_integration_and_kind() -> None:
    limit = RateLimit()
    assert limit.allow(("hr", "failed"), 60, now=0)
    assert not limit.allow(("hr", "failed"), 60, now=59)
    assert limit.allow(("hr", "quarantined"), 60, now=59)
    assert limit.allow(("crm", "failed"), 60, now=59)
    assert limit.allow(("hr", "failed"), 60, now=60)


def test_config_show_hides_the_webhook_path_and_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluiced.configview import effective_config

    monkeypatch.setenv("SMTP_PASSWORD", "pw-s3cret")
    text = GOOD + NOTIFY.replace("/sluiced", "/services/T0/B0/hook-s3cret")
    shown = effective_config(load_config(write(tmp_path, text)))
    assert shown["notify"]["webhook_url"] == "https://hooks.example/[redacted]"
    assert shown["notify"]["smtp_password"] == "[redacted, from env:SMTP_PASSWORD]"
    assert shown["integrations"]["hr"]["notify"] == {
        "on": ["quarantine"],
        "email_to": ["hr-it@example.com"],
    }
    assert "s3cret" not in repr(shown)
