"""The control API a daemon serves: the app (the core's routes and job types and the
plugins', checked against each other before anything starts), on the control socket,
and on TCP when ``[daemon] tcp_listen`` and ``api_token`` are set: behind the token,
or with the web console (``console = true``).
"""

from __future__ import annotations

import socket

import pluggy
import trio
from starlette.applications import Starlette

from .api import build_app, route_table, serve
from .api.server import require_token, tcp_socket
from .console import console_app
from .control import Control
from .daemonconfig import DaemonConfig
from .logs import get_logger
from .pluginmanager import Registry, RegistryError, build_registry

__all__ = ["STRONG_TOKEN", "checked_registry", "control_app", "serve_control_api"]

log = get_logger(__name__)

#: Fewer characters in the API token than this are warned of at start: failed logins
#: are limited per client, a bearer token is not (all local clients share one address,
#: so a limit would lock them all out), and the token's length is what stands against
#: guessing it.
STRONG_TOKEN = 16


def checked_registry(pm: pluggy.PluginManager) -> Registry:
    """The plugins' registry, with their API routes and job types checked against each
    other and the core's, so that a clash stops the daemon before it starts anything.

    Raises:
        RegistryError: two plugins provide one name, or a plugin's route or job type
            clashes with another's or the core's.
    """
    registry = build_registry(pm)
    try:
        route_table(list(registry.job_types.values()), registry.routes)
    except ValueError as exc:
        raise RegistryError(f"the plugins' API: {exc}") from None
    return registry


def control_app(ctl: Control, registry: Registry) -> Starlette:
    """The control API over *ctl*: the core's routes and job types and the plugins'."""
    return build_app(ctl, list(registry.job_types.values()), registry.routes)


async def serve_control_api(
    nursery: trio.Nursery,
    app: Starlette,
    sockets: list[socket.socket],
    daemon: DaemonConfig,
    registry: Registry,
) -> None:
    """Start serving *app* in *nursery* on *sockets* (the control socket's), and on TCP
    when *daemon* says so; returns once every listener is up. The listeners are
    cancelled with *nursery*."""
    await nursery.start(serve, app, sockets)
    if daemon.tcp_listen is not None and daemon.api_token is not None:
        token = daemon.api_token.reveal()
        if len(token) < STRONG_TOKEN:
            log.warning(
                "the API token is short: a token on a TCP listener should be long and "
                "random (openssl rand -hex 32)",
                characters=len(token),
                at_least=STRONG_TOKEN,
            )
        tcp_app = (
            console_app(
                app,
                token,
                list(registry.job_types.values()),
                keyed_targets=[
                    name
                    for name, factory in registry.connectors.items()
                    if factory.keyed_by_source_ids
                ],
            )
            if daemon.console
            else require_token(app, token)
        )
        await nursery.start(serve, tcp_app, [tcp_socket(daemon.tcp_listen)])
