"""A job type a plugin adds to the control API (hook ``sluiced_job_types``).

Its request is one more form of ``POST /api/sync/jobs``: an object with a required
``job_type`` field whose ``choices`` name the form (several names may make one job
type, as seed 000's old ``sync_tags`` is a ``sync``), and an optional top-level
``integrationId``. The body is declared once, as a :class:`~sluiced.api.bodies.Field`,
and checks requests and documents itself in the OpenAPI document, as the core's do.
Its ``console`` forms (:mod:`.jobforms`) are what the web console offers to ask for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..models import Job
from .bodies import Field
from .jobforms import ConsoleForm, check_forms

__all__ = ["JobType"]


@dataclass(frozen=True, kw_only=True)
class JobType:
    """One job type: what it is stored as, how it is asked for, where it runs.

    * ``name``: the job's ``type`` as stored and shown (``sync``).
    * ``body``: its form of ``POST /api/sync/jobs``, an ``object`` field with a
      required ``job_type`` of fixed ``choices``.
    * ``params``: the job's parameters from a checked body (pure; may raise
      :class:`~sluiced.api.errors.ApiError` for a value the body cannot express).
    * ``targets``: the names of the target connectors whose integrations run it; a
      request without ``integrationId`` means the only such integration.
    * ``answer``: the JSON answered for the queued job, and ``response`` its JSON
      schema for the OpenAPI document.
    * ``console``: the forms the web console draws for it on the page of an
      integration that runs it (:class:`~sluiced.api.jobforms.ConsoleForm`; none: the
      console offers no form for it).

    Raises:
        ValueError: the body is not such an object, or a console form does not fit it
            (naming the job type, the form and the field).
    """

    name: str
    body: Field
    params: Callable[[Mapping[str, Any]], dict[str, Any]]
    targets: frozenset[str]
    answer: Callable[[Job], dict[str, Any]]
    response: Mapping[str, Any]
    console: tuple[ConsoleForm, ...] = ()

    @property
    def forms(self) -> tuple[str, ...]:
        """The ``job_type`` values that ask for it."""
        return self.body.fields["job_type"].choices

    def __post_init__(self) -> None:
        field = self.body.fields.get("job_type")
        if self.body.kind != "object" or field is None or not field.required or not field.choices:
            raise ValueError(
                f"job type {self.name!r}: its body must be an object with a required "
                "job_type field of fixed choices"
            )
        if (problem := check_forms(self.console, field.choices, self.body)) is not None:
            raise ValueError(f"job type {self.name!r}: {problem}")
