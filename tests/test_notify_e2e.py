"""Notifications end to end: the daemon as a subprocess, a real SMTP server on loopback
(aiosmtpd, STARTTLS with a self-signed certificate, a password) and a local HTTP
receiver. A failing job, quarantine and its end, and the deletion threshold each
notify, at most once per integration and kind per ``every``; a webhook that never
answers delays no job."""

from __future__ import annotations

import email
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from .daemonproc import DaemonProc, daemons, wait_for, wait_job, write_people

pytestmark = pytest.mark.e2e

procs = pytest.fixture(daemons)
PASSWORD = "smtp-s3cret"


def self_signed(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl (to make the SMTP server's certificate) is not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert session.ssl is not None, "the message came before STARTTLS"
        self.messages.append(email.message_from_bytes(envelope.content))  # type: ignore[arg-type]
        return "250 OK"

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Inbox, int, Path]]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=inbox.authenticate,
    )
    server.start()
    yield inbox, port, cert
    server.stop()


class Receiver(BaseHTTPRequestHandler):
    posts: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[list[dict[str, Any]], int]]:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    server.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.posts, server.server_address[1]  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@pytest.fixture
def black_hole() -> Iterator[socket.socket]:
    """A listening socket that answers nothing (until the test closes a connection)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        s.settimeout(30)
        yield s


INTEGRATION = """
[integrations.{ident}]
entity_types = ["user"]
interval = "1h"
jitter = "0s"
state = "Paused"
[integrations.{ident}.source]
connector = "jsonl"
paths = {{ user = "{ident}.jsonl" }}
[integrations.{ident}.target]
connector = "jsonl"
paths = {{ user = "out-{ident}/people.jsonl" }}
[integrations.{ident}.quarantine]
after_failures = 2
[integrations.{ident}.deletion_threshold]
count = 3
"""


@pytest.fixture
def daemon(
    tmp_path: Path,
    procs: list[DaemonProc],
    smtp: tuple[Inbox, int, Path],
    webhook: tuple[list[dict[str, Any]], int],
    black_hole: socket.socket,
) -> DaemonProc:
    _, smtp_port, cert = smtp
    (tmp_path / "smtp-password").write_text(PASSWORD + "\n")
    config = f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"

[notify]
webhook_url = "http://127.0.0.1:{webhook[1]}/hook?token=hook-s3cret"
email_to = ["ops@example.com"]
email_from = "sluiced@example.com"
smtp_host = "localhost"
smtp_port = {smtp_port}
smtp_ca_file = "{cert}"
smtp_user = "sluiced"
smtp_password_file = "smtp-password"
every = "1h"
timeout = "2s"
"""
    for ident in ("hr", "crm"):
        config += INTEGRATION.format(ident=ident)
        write_people(tmp_path / f"{ident}.jsonl", 10)
    # crm's webhook never answers; its e-mails are off.
    config += f"""
[integrations.crm.notify]
webhook_url = "http://127.0.0.1:{black_hole.getsockname()[1]}/"
timeout = "60s"
enabled = true
on = ["failed"]
email_to = []
"""
    (tmp_path / "config.toml").write_text(config)
    d = DaemonProc(tmp_path)
    procs.append(d)
    return d.start()


def run(d: DaemonProc, ident: str) -> dict[str, Any]:
    answer = d.client().post("/api/sync/jobs", json={"integrationId": ident, "type": "full_sync"})
    assert answer.status_code == 202, answer.text
    return wait_job(d.client(), answer.json()["jobId"])


def test_failures_quarantine_and_the_deletion_threshold_notify_by_webhook_and_email(
    daemon: DaemonProc,
    tmp_path: Path,
    smtp: tuple[Inbox, int, Path],
    webhook: tuple[list[dict[str, Any]], int],
) -> None:
    inbox, posts = smtp[0], webhook[0]
    (tmp_path / "out-hr").write_text("a file where the target's directory should be")
    assert run(daemon, "hr")["status"] == "failed"
    wait_for(lambda: len(posts) == 1 and len(inbox.messages) == 1)
    post, mail = posts[0], inbox.messages[0]
    assert post["kind"] == "failed" and post["integrationId"] == "hr" and post["jobId"]
    assert post["status"] == "failed" and post["error"]
    assert mail["To"] == "ops@example.com" and mail["From"] == "sluiced@example.com"
    assert mail["Subject"].startswith("[sluiced] hr: job ") and "failed" in mail["Subject"]
    assert inbox.logins == ["sluiced"]

    # The second failure quarantines: notified; the failure itself is not again (1h).
    assert run(daemon, "hr")["status"] == "failed"
    wait_for(lambda: any(p["kind"] == "quarantined" for p in posts))
    assert [p["kind"] for p in posts] == ["failed", "quarantined"]
    assert posts[1]["quarantine"]["reason"]
    wait_for(lambda: len(inbox.messages) == 2)
    assert "quarantine" in inbox.messages[1]["Subject"]

    # Fixed: the next run leaves quarantine.
    (tmp_path / "out-hr").unlink()
    assert run(daemon, "hr")["status"] == "completed"
    wait_for(lambda: len(posts) == 3)
    assert posts[2]["kind"] == "recovered" and posts[2]["quarantine"] is None

    # Most of the source is gone: the deletion threshold stops the run.
    write_people(tmp_path / "hr.jsonl", 2)
    job = run(daemon, "hr")
    assert job["status"] == "failed" and job["errorCode"] == "TooManyDeletes"
    wait_for(lambda: len(posts) == 4 and len(inbox.messages) == 4)
    assert posts[3]["kind"] == "deletions" and posts[3]["errorCode"] == "TooManyDeletes"
    assert "deletion threshold" in inbox.messages[3]["Subject"]

    log = daemon.log.read_text()
    assert PASSWORD not in log and "hook-s3cret" not in log


def test_a_webhook_that_never_answers_delays_no_job(
    daemon: DaemonProc,
    tmp_path: Path,
    smtp: tuple[Inbox, int, Path],
    black_hole: socket.socket,
) -> None:
    def failed_logged() -> bool:
        return any(
            line.get("event") == "notification by webhook failed"
            and line.get("integration_id") == "crm"
            for line in daemon.log_lines()
        )

    (tmp_path / "out-crm").write_text("not a directory")
    assert run(daemon, "crm")["status"] == "failed"
    (tmp_path / "out-crm").unlink()
    # The next job runs and completes while the first one's webhook call still waits.
    assert run(daemon, "crm")["status"] == "completed"
    connection, _ = black_hole.accept()
    assert not failed_logged()
    connection.close()  # the call fails: logged, nothing else happens
    wait_for(failed_logged)
    assert daemon.client().get("/healthz").json()["ok"]
    assert smtp[0].messages == []  # its e-mails are off
