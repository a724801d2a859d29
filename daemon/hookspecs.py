"""Every hook a sluiced plugin can implement, in one place.

Plugins are modules or objects registered under the entry-point group ``sluiced``
(built-in ones too). Implement a hook with ``@sluiced.hookimpl``.

Hooks are **synchronous, cheap, and return objects**: pluggy cannot await, and an
async ``firstresult`` hook would silently return its first coroutine. The async work
lives on the returned objects (:class:`~sluiced.connectors.Source`,
:class:`~sluiced.connectors.Target`), whose contracts are documented ABCs.

Lifecycle: the ``sluiced_connectors``, ``sluiced_entity_types`` and
``sluiced_mapping_functions`` hooks are called once when the daemon builds its registry
(at start and on reload); ``sluiced_job_event`` is called for every job and
integration transition while the daemon runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .connectors import ConnectorFactory, EntityType
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
    """Return entity-type definitions (Stash performer, tag, studio, scene, ...).

    Each is a :class:`~sluiced.connectors.EntityType`: a ``name`` unique across plugins
    and ``depends_on``, the names of entity types it links to. Collected from all
    plugins; connectors see them in ``ConnectorContext.entity_types``.
    """


@hookspec
def sluiced_mapping_functions() -> Mapping[str, Callable[..., Any]]:  # type: ignore[empty-body]
    """Return functions usable in mapping expressions, by name (``Append``, ...).

    Functions must be pure. Collected from all plugins; a name defined twice is an error.
    """


# -- runtime: called while the daemon runs ---------------------------------------------
@hookspec
def sluiced_job_event(event: JobEvent) -> None:
    """Observe a job or integration transition (job status changes, quarantine).

    Called in the daemon's event loop for every event, by every plugin; must return
    quickly and not block. An exception is logged and does not affect the job.
    """
