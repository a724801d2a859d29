"""Talking to the daemon: the socket or URL to use, requests, and a job's event stream."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "DEFAULT_SOCKET",
    "Client",
    "Refused",
    "Unreachable",
    "UsageError",
    "read_file",
    "read_json",
]

DEFAULT_SOCKET = "/run/sluiced/control.sock"
#: How often in a row a followed job's event stream is opened again when it drops.
RECONNECTS = 5


class Unreachable(Exception):
    pass


class UsageError(Exception):
    """A mistake on the command line (a file that cannot be read...): exit 2, one line."""


def read_file(path: str, what: str) -> str:
    """The text of *path*, or a ``UsageError`` naming *what* it is for and why not."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read {what} {path}: {reason}") from None


def read_json(path: str, what: str) -> Any:
    try:
        return json.loads(read_file(path, what))
    except ValueError as exc:
        raise UsageError(f"{what} {path} is not JSON: {exc}") from None


class Refused(Exception):
    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"{status} {error.get('code', '')}: {error.get('message', body)}")
        self.status = status


def _socket_path(args: argparse.Namespace) -> str:
    if args.socket:
        return str(args.socket)
    if os.environ.get("SLUICED_SOCKET"):
        return os.environ["SLUICED_SOCKET"]
    config = args.config or os.environ.get("SLUICED_CONFIG") or "/etc/sluiced/config.toml"
    if Path(config).exists():
        from ..config import load_config
        from ..errors import ConfigError

        try:
            return str(load_config(config).daemon.control_socket)
        except ConfigError:
            pass
    return DEFAULT_SOCKET


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        headers = {}
        if args.url:
            self.where = args.url
            transport = httpx.HTTPTransport()
            base = args.url
            if args.token_file:
                token = read_file(args.token_file, "the --token-file").strip()
                headers["Authorization"] = f"Bearer {token}"
        else:
            self.where = _socket_path(args)
            transport = httpx.HTTPTransport(uds=self.where)
            base = "http://sluiced"
        self.http = httpx.Client(transport=transport, base_url=base, headers=headers, timeout=30)

    def close(self) -> None:
        """Close the connections to the daemon."""
        self.http.close()

    def request(self, method: str, path: str, body: Any = None, params: Any = None) -> Any:
        try:
            response = self.http.request(method, path, json=body, params=params)
        except (
            httpx.ConnectError,
            httpx.RemoteProtocolError,
            FileNotFoundError,
            PermissionError,
        ) as exc:
            raise Unreachable(self._unreachable(exc)) from None
        data = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else response.text
        )
        if response.status_code >= 400:
            raise Refused(response.status_code, data)
        return data

    def _unreachable(self, exc: Exception) -> str:
        if self.where.startswith("http"):
            return f"sluicectl: cannot reach the daemon at {self.where} ({exc}); is it running with tcp_listen set?"
        return (
            f"sluicectl: cannot reach the daemon at {self.where} ({exc}); is sluiced running "
            "(systemctl status sluiced), and may you open the socket (group of the socket)?"
        )

    def events(self, job_id: str) -> Iterator[tuple[str, Any]]:
        """The job's server-sent events until ``end``; a connection that drops is
        opened again (up to :data:`RECONNECTS` times in a row) with ``Last-Event-ID``,
        so no log line is lost or repeated."""
        last_id: str | None = None
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_id} if last_id is not None else {}
            try:
                with self.http.stream(
                    "GET", f"/api/sync/jobs/{job_id}/events", timeout=None, headers=headers
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise Refused(response.status_code, response.json())
                    event = ""
                    for line in response.iter_lines():
                        if line.startswith("id: "):
                            last_id = line[4:]
                        elif line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: "):
                            failures = 0
                            yield event, json.loads(line[6:])
                            if event == "end":
                                return
                    return  # closed without an end: the daemon is stopping
            except (httpx.ConnectError, FileNotFoundError) as exc:
                if last_id is None or failures >= RECONNECTS:
                    raise Unreachable(self._unreachable(exc)) from None
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if failures >= RECONNECTS:
                    raise Unreachable(self._unreachable(exc)) from None
            failures += 1
            time.sleep(min(2.0, 0.2 * 2**failures))
