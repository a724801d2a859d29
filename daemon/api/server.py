"""Serving the control API: a Unix socket (mode 0660), or the socket systemd passed
(``LISTEN_FDS``), and optionally TCP behind a bearer token. hypercorn does the HTTP
through its public API (``hypercorn.trio.serve`` on ``fd://`` binds of the sockets made
here); nothing here parses it.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import socket
import stat
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve as hypercorn_serve

from ..logs import get_logger

__all__ = [
    "SocketInUse",
    "bind_unix",
    "control_sockets",
    "require_token",
    "serve",
    "systemd_sockets",
    "tcp_socket",
]

log = get_logger("sluiced.api")
SD_LISTEN_FDS_START = 3

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[..., Any], Callable[..., Any]], Awaitable[None]
]


class SocketInUse(RuntimeError):
    pass


def systemd_sockets(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The listening sockets systemd passed to this process (socket activation), if any.

    The variables are removed from the environment so child processes do not adopt
    them too.
    """
    env = os.environ if environ is None else environ
    if env.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(env.get("LISTEN_FDS", "0") or 0)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    socks = [socket.socket(fileno=SD_LISTEN_FDS_START + i) for i in range(count)]
    for sock in socks:
        sock.setblocking(False)
    return socks


def bind_unix(path: Path, *, mode: int = 0o660) -> socket.socket:
    """A listening Unix socket at *path* with *mode*; a stale socket file is replaced,
    one that another process still listens on is not.

    Raises:
        SocketInUse: another process answers on *path*.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.stat().st_mode):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()  # nobody listens: a leftover of a crash
            else:
                raise SocketInUse(f"another process listens on {path}")
            finally:
                probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~mode)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, mode)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def control_sockets(path: Path) -> tuple[list[socket.socket], Path | None]:
    """The control sockets: those systemd passed, or a new one bound at *path*; and the
    socket file made here (to remove when the daemon stops), if it made one.

    Raises:
        SocketInUse: another process listens on *path*.
    """
    sockets = systemd_sockets()
    if sockets:
        return sockets, None
    return [bind_unix(path)], path


def tcp_socket(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def require_token(app: ASGIApp, token: str) -> ASGIApp:
    """Wrap *app* so that HTTP requests without ``Authorization: Bearer <token>`` get a
    bare 401 and reach nothing else."""
    expected = f"Bearer {token}".encode()

    async def guarded(
        scope: MutableMapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                body = b'{"error": {"code": "Unauthorized", "message": "a valid bearer token is required", "field": null}}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


async def serve(
    app: Any,
    sockets: list[socket.socket],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* on *sockets* (listening, non-blocking) until cancelled; hypercorn
    takes them over (this closes them when it ends), so the caller must not close them.
    Requests still running at cancellation get ``graceful_timeout`` (2 s) to finish."""
    config = HyperConfig()
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 2.0
    for sock in sockets:
        name = sock.getsockname()
        log.info(
            "control API listening",
            address=name if isinstance(name, str) else f"{name[0]}:{name[1]}",
        )
    # hypercorn adopts each descriptor (``fd://``, as for sockets inherited from a
    # process manager); detached, only its socket objects own and close them.
    config.bind = [f"fd://{sock.detach()}" for sock in sockets]
    await hypercorn_serve(app, config, mode="asgi", task_status=task_status)
