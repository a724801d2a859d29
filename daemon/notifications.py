"""The settings of notifications (the built-in ``notify`` plugin sends them): the
``[notify]`` table of the config, for every integration, and ``[integrations.<id>.notify]``,
whose keys override those of ``[notify]`` for that integration.

Keys (all optional)::

    enabled = true                  # false: no notifications (for one integration, say)
    on = ["failed", "quarantine", "deletions"]   # what is notified (these three)
    every = "15m"                   # at most one per integration and kind this often
    timeout = "10s"                 # for each webhook call and SMTP session
    webhook_url = "https://..."     # POSTed a JSON object
    email_to = ["ops@example.com"]  # and e-mailed, through:
    email_from = "sluiced@host"
    smtp_host = "smtp.example.com"
    smtp_port = 587
    smtp_security = "starttls"      # or "tls" (port 465), or "none" (a local relay)
    smtp_ca_file = "ca.pem"         # a CA to trust besides the system's (a private one)
    smtp_user = "sluiced"
    smtp_password_file = "..."      # or smtp_password_env, smtp_password_credential
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path

from .tables import Problems, Secret, TableReader

__all__ = ["KINDS", "SECURITY", "NotifySettings", "check_email", "parse_notify"]

#: What can be notified: a job failed; an integration entered or left quarantine; the
#: deletion threshold stopped a run (a job failed with ``TooManyDeletes``).
KINDS = ("failed", "quarantine", "deletions")
SECURITY = ("starttls", "tls", "none")


@dataclass(frozen=True, kw_only=True)
class NotifySettings:
    """One table as written: None where a key is not set (see :meth:`over`)."""

    enabled: bool | None = None
    on: tuple[str, ...] | None = None
    every: timedelta | None = None
    timeout: timedelta | None = None
    webhook_url: str | None = None
    email_to: tuple[str, ...] | None = None
    email_from: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None
    smtp_ca_file: Path | None = None
    smtp_user: str | None = None
    smtp_password: Secret | None = None

    def over(self, base: NotifySettings) -> NotifySettings:
        """These settings, with *base*'s where these do not set a key."""
        return replace(
            base,
            **{
                f.name: getattr(self, f.name)
                for f in fields(self)
                if getattr(self, f.name) is not None
            },
        )

    @property
    def active(self) -> bool:
        """Whether anything is to be sent: enabled, with a webhook or an e-mail."""
        return self.enabled is not False and bool(self.webhook_url or self.email_to)

    def wants(self, kind: str) -> bool:
        return kind in (self.on if self.on is not None else KINDS)

    @property
    def interval(self) -> timedelta:
        return self.every if self.every is not None else timedelta(minutes=15)

    @property
    def timeout_s(self) -> float:
        return (self.timeout or timedelta(seconds=10)).total_seconds()


def parse_notify(t: TableReader) -> NotifySettings:
    """Read a ``notify`` table (problems are added to *t*'s, keyed by their path)."""
    on = t.get_str_list("on", None)
    for i, kind in enumerate(on or ()):
        if kind not in KINDS:
            t.problems.add(f"{t.key('on')}[{i}]", repr(kind), f"one of {', '.join(KINDS)}")
    email_to = t.get_str_list("email_to", None)
    for i, address in enumerate(email_to or ()):
        if "@" not in address:
            t.problems.add(f"{t.key('email_to')}[{i}]", repr(address), "an e-mail address")
    webhook = t.get_str("webhook_url", None)
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        t.problems.add(t.key("webhook_url"), "a value (not shown)", "an http:// or https:// URL")
    settings = NotifySettings(
        enabled=t.get_bool("enabled", None),
        on=tuple(on) if on is not None else None,
        every=t.get_duration("every", None),
        timeout=t.get_duration("timeout", None, positive=True),
        webhook_url=webhook,
        email_to=tuple(email_to) if email_to is not None else None,
        email_from=t.get_str("email_from", None),
        smtp_host=t.get_str("smtp_host", None),
        smtp_port=t.get_int("smtp_port", None, minimum=1),
        smtp_security=t.get_str("smtp_security", None, choices=SECURITY),
        smtp_ca_file=t.get_path("smtp_ca_file", None),
        smtp_user=t.get_str("smtp_user", None),
        smtp_password=t.get_secret("smtp_password", required=False),
    )
    t.finish()
    return settings


def check_email(problems: Problems, path: str, settings: NotifySettings) -> None:
    """E-mail needs a server and a sender: *settings* are an integration's effective
    ones, *path* its ``notify`` table's (``integrations.hr.notify``)."""
    if settings.email_to and settings.enabled is not False:
        for key in ("smtp_host", "email_from"):
            if getattr(settings, key) is None:
                problems.add(
                    f"{path}.{key}", "nothing", f"{key}, here or in [notify] (email_to is set)"
                )
