"""Every hook a sluiced plugin can implement, in one place.

Plugins are modules or objects registered under the entry-point group ``sluiced``
(built-in ones too). Implement a hook with ``@sluiced.hookimpl``.

Hooks are **synchronous, cheap, and return objects**: pluggy cannot await, and an
async ``firstresult`` hook would silently return its first coroutine. The async work
lives on the returned objects (:class:`~sluiced.connectors.Source`,
:class:`~sluiced.connectors.Target`), whose contracts are documented ABCs.

Lifecycle: the registry hooks (``sluiced_connectors``, ``sluiced_entity_types``,
``sluiced_mapping_functions``, ``sluiced_job_types``, ``sluiced_api_routes`` and
``sluiced_ctl_commands``) are called once when a registry is built: by the daemon at
start, and by ``sluicectl`` (which loads plugins as the daemon does) for its commands;
``sluiced_job_event`` is called for every job and integration transition while the
daemon runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .api.jobtypes import JobType
    from .api.routing import Route
    from .connectors import ConnectorFactory, EntityType
    from .ctl._command import Command
    from .events import JobEvent

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "sluiced"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- registry: called once per registry build; every plugin's results are collected ---
@hookspec
def sluiced_connectors() -> Sequence[ConnectorFactory]:  # type: ignore[empty-body]
    """Return the connector factories this plugin provides.

    Called once when the registry is built; results of all plugins are collected. Two
    factories with the same ``name`` are an error naming both plugins.
    """


@hookspec
def sluiced_entity_types() -> Sequence[EntityType]:  # type: ignore[empty-body]
    """Return entity-type definitions (a directory's user and group, ...).

    Each is a :class:`~sluiced.connectors.EntityType`: a ``name`` unique across plugins
    and ``depends_on``, the names of entity types it links to. Collected from all
    plugins; connectors see them in ``ConnectorContext.entity_types``.
    """


@hookspec
def sluiced_mapping_functions() -> Mapping[str, Callable[..., Any]]:  # type: ignore[empty-body]
    """Return functions usable in mapping expressions, by name (``Append``, ...).

    Functions must be pure. Collected from all plugins; a name defined twice is an error.
    """


@hookspec
def sluiced_job_types() -> Sequence[JobType]:  # type: ignore[empty-body]
    """Return the job types this plugin adds (:class:`sluiced.api.JobType`): each is
    one more form of ``POST /api/sync/jobs`` (a ``job_type`` and its body), the params
    it makes, and the target connectors whose integrations run it.

    Collected from all plugins; two job types of one ``name`` are an error naming both
    plugins, and so is a ``job_type`` form two of them claim.
    """


@hookspec
def sluiced_api_routes() -> Sequence[Route]:  # type: ignore[empty-body]
    """Return routes this plugin adds to the control API (:class:`sluiced.api.Route`).

    Each declares its parameters and body once, as the core's do (they are checked and
    documented in ``/api/openapi.json``); its handler gets the checked request and the
    :class:`sluiced.control.Control` interface. Collected from all plugins; a method and
    path that two plugins, or a plugin and the core, answer is an error.
    """


@hookspec
def sluiced_ctl_commands() -> Sequence[Command]:  # type: ignore[empty-body]
    """Return ``sluicectl`` subcommands this plugin adds (:class:`sluiced.ctl.Command`).

    Called when ``sluicectl`` builds its command line (and with the daemon's registry);
    collected from all plugins. A name that two plugins, or a plugin and ``sluicectl``
    itself, use is an error.
    """


# -- runtime: called while the daemon runs ---------------------------------------------
@hookspec
def sluiced_job_event(event: JobEvent) -> None:
    """Observe a job or integration transition (job status changes, quarantine).

    Called in the daemon's event loop for every event, by every plugin; must return
    quickly and not block. An exception is logged and does not affect the job.
    """
