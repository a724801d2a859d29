"""Sending notifications off the event loop: a queue and one worker thread, a webhook
POST and an SMTP session per notification, each bounded by the settings' timeout.

Nothing here raises to the caller: a full queue drops the notification, a failed
send is logged (without the webhook's URL, the password or the recipients' server
credentials) and the next one is tried.
"""

from __future__ import annotations

import queue
import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx

from sluiced.logs import get_logger
from sluiced.notifications import NotifySettings
from sluiced.redact import redact_text

__all__ = ["Notification", "Sender", "send_email", "send_webhook"]

log = get_logger("sluiced.notify")


@dataclass(frozen=True)
class Notification:
    integration_id: str
    kind: str
    subject: str
    body: str
    payload: dict[str, Any]
    settings: NotifySettings


def send_webhook(n: Notification) -> None:
    """POST the payload as JSON; raises on a transport error or a status >= 400."""
    if n.settings.webhook_url is None:
        raise ValueError("no webhook_url")
    response = httpx.post(n.settings.webhook_url, json=n.payload, timeout=n.settings.timeout_s)
    response.raise_for_status()


def send_email(n: Notification) -> None:
    """Send the message through the settings' SMTP server (STARTTLS by default: the
    server's certificate is verified, against ``smtp_ca_file`` too if set)."""
    s = n.settings
    if s.smtp_host is None or s.email_from is None or not s.email_to:
        raise ValueError("e-mail needs smtp_host, email_from and email_to in [notify]")
    message = EmailMessage()
    message["Subject"] = n.subject
    message["From"] = s.email_from
    message["To"] = ", ".join(s.email_to)
    message.set_content(n.body)
    security = s.smtp_security or "starttls"
    context = ssl.create_default_context()
    if s.smtp_ca_file is not None:
        context.load_verify_locations(cafile=str(s.smtp_ca_file))
    timeout = s.timeout_s
    if security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            s.smtp_host, s.smtp_port or 465, timeout=timeout, context=context
        )
    else:
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port or 587, timeout=timeout)
    with smtp:
        if security == "starttls":
            smtp.starttls(context=context)
        if s.smtp_user is not None and s.smtp_password is not None:
            smtp.login(s.smtp_user, s.smtp_password.reveal())
        smtp.send_message(message)


class Sender:
    """A bounded queue of notifications and the daemon thread that sends them."""

    def __init__(self, size: int = 100) -> None:
        self._queue: queue.Queue[Notification] = queue.Queue(size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, n: Notification) -> None:
        """Queue *n*; returns at once (a full queue drops it, with a warning)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(n)
        except queue.Full:
            log.warning(
                "notification dropped: too many waiting",
                integration_id=n.integration_id,
                kind=n.kind,
            )

    def join(self) -> None:
        """Wait until every queued notification was sent or failed (tests)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            n = self._queue.get()
            try:
                self._send(n)
            finally:
                self._queue.task_done()

    def _send(self, n: Notification) -> None:
        channels = []
        if n.settings.webhook_url:
            channels.append(("webhook", send_webhook))
        if n.settings.email_to:
            channels.append(("email", send_email))
        for name, send in channels:
            try:
                send(n)
            except Exception as exc:  # logged; the next channel and notification go on
                log.error(
                    f"notification by {name} failed",
                    integration_id=n.integration_id,
                    kind=n.kind,
                    error=redact_text(_describe(exc)),
                )
            else:
                log.info(
                    f"notification sent by {name}", integration_id=n.integration_id, kind=n.kind
                )


def _describe(exc: Exception) -> str:
    """What went wrong, without the request's URL (a webhook's URL is a secret)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"the webhook answered {exc.response.status_code}"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__} calling the webhook"
    return f"{type(exc).__name__}: {exc}"
