"""The web console's forms of a job type (:attr:`JobType.console
<sluiced.api.jobtypes.JobType.console>`): what a plugin declares so that the console
offers its jobs without knowing them.

A :class:`ConsoleForm` is drawn on the page of each integration that runs its job type,
with a heading, its fields in order and one submit button. Submitting it posts
``{"job_type": form.job_type, "integrationId": ..., "metadata": {...}}`` to ``POST
/api/sync/jobs``: each field sets the ``metadata`` entry of its name, a
:class:`Checkbox` to ``true`` or ``false``, an :class:`IdList` to the list of ids typed
(strings). :func:`check_forms` holds a declaration against the job type's body when
the plugin is loaded, so a form the API would refuse never reaches a page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .bodies import Field

__all__ = ["INPUT_MODES", "Checkbox", "ConsoleForm", "IdList", "check_forms"]

#: The ``inputmode`` values an :class:`IdList` may ask the browser's keyboard for.
INPUT_MODES = frozenset({"text", "numeric", "decimal", "tel", "search"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True, kw_only=True)
class Checkbox:
    """A checkbox setting the boolean ``metadata[name]``; checked at first if *default*."""

    name: str
    label: str
    default: bool = False

    def as_json(self) -> dict[str, Any]:
        """The checkbox as ``/console/job-types`` shows it."""
        return {"kind": "checkbox", "name": self.name, "label": self.label, "default": self.default}


@dataclass(frozen=True, kw_only=True)
class IdList:
    """A text field of ids setting the list ``metadata[name]`` (the ids as strings).

    * ``separators``: the characters between two ids; a space in it stands for any
      whitespace (``", "``: commas, spaces, tabs and line breaks).
    * ``hint``: a line under the field saying how to fill it in.
    * ``inputmode``: the keyboard a phone shows (one of :data:`INPUT_MODES`).
    * ``required``: the form is not sent without an id.
    * ``pick``: an entity type whose objects can also be picked into the field from the
      integration's provisioning log (its rows of that type get a checkbox); empty:
      the ids are only typed.
    """

    name: str
    label: str
    separators: str = ", "
    hint: str = ""
    inputmode: str = "text"
    required: bool = True
    pick: str = ""

    def as_json(self) -> dict[str, Any]:
        """The field as ``/console/job-types`` shows it."""
        return {
            "kind": "ids",
            "name": self.name,
            "label": self.label,
            "separators": self.separators,
            "hint": self.hint,
            "inputmode": self.inputmode,
            "required": self.required,
            "pick": self.pick,
        }


@dataclass(frozen=True, kw_only=True)
class ConsoleForm:
    """One form of the console: its heading *title*, the *job_type* value it posts (one
    of the job type's forms), the *submit* button's label, its *fields* in order, and
    the *legend* of the group its checkboxes make (the title if empty)."""

    title: str
    job_type: str
    submit: str
    fields: tuple[Checkbox | IdList, ...]
    legend: str = ""

    def as_json(self) -> dict[str, Any]:
        """The form as ``/console/job-types`` shows it."""
        return {
            "title": self.title,
            "jobType": self.job_type,
            "submit": self.submit,
            "legend": self.legend or self.title,
            "fields": [f.as_json() for f in self.fields],
        }


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _field_problem(field: Checkbox | IdList, metadata: Field | None) -> str | None:
    """What is wrong with one declared field, or None."""
    if not isinstance(field, Checkbox | IdList):
        return f"a field must be a Checkbox or an IdList, not {type(field).__name__}"
    if not isinstance(field.name, str) or not _NAME.fullmatch(field.name):
        return f"field name {field.name!r} is not a name (letters, digits, _)"
    if not _text(field.label):
        return f"field {field.name!r} needs a label"
    declared = metadata.fields.get(field.name) if metadata is not None else None
    if isinstance(field, Checkbox):
        if not isinstance(field.default, bool):
            return f"checkbox {field.name!r}: default must be True or False"
        if declared is None or declared.kind != "bool":
            return f"checkbox {field.name!r}: the body's metadata has no bool field of that name"
        return None
    if not isinstance(field.hint, str):
        return f"id list {field.name!r}: hint must be a string"
    if not isinstance(field.required, bool):
        return f"id list {field.name!r}: required must be True or False"
    if not isinstance(field.pick, str) or (field.pick and not _NAME.fullmatch(field.pick)):
        return f"id list {field.name!r}: pick must be an entity type's name, or empty"
    if field.inputmode not in INPUT_MODES:
        return (
            f"id list {field.name!r}: inputmode {field.inputmode!r} is not one of "
            f"{', '.join(sorted(INPUT_MODES))}"
        )
    if not isinstance(field.separators, str) or not field.separators:
        return f"id list {field.name!r}: separators must name at least one character"
    if any(c.isalnum() for c in field.separators):
        return f"id list {field.name!r}: separators {field.separators!r} hold a letter or digit"
    if declared is None or declared.kind != "array":
        return f"id list {field.name!r}: the body's metadata has no array field of that name"
    if declared.items is not None and declared.items.kind not in ("string", "id", "any"):
        return f"id list {field.name!r}: the console sends strings, the body wants {declared.items.kind}s"
    if not field.required and declared.min_length:
        return (
            f"id list {field.name!r}: an empty list is refused by the body, so it must be required"
        )
    return None


def _form_problem(form: ConsoleForm, forms: Sequence[str], body: Field) -> str | None:
    """What is wrong with one declared form, or None."""
    if not isinstance(form, ConsoleForm):
        return f"a console form must be a ConsoleForm, not {type(form).__name__}"
    if not _text(form.title) or not _text(form.submit):
        return "a console form needs a title and a submit label"
    if not isinstance(form.legend, str):
        return f"form {form.title!r}: legend must be a string"
    if form.job_type not in forms:
        return f"form {form.title!r}: job_type {form.job_type!r} is not one of {list(forms)}"
    if not isinstance(form.fields, tuple) or not form.fields:
        return f"form {form.title!r}: fields must be a non-empty tuple"
    metadata = body.fields.get("metadata")
    if metadata is not None and metadata.kind != "object":
        metadata = None
    names: set[str] = set()
    for field in form.fields:
        if (problem := _field_problem(field, metadata)) is not None:
            return f"form {form.title!r}: {problem}"
        if field.name in names:
            return f"form {form.title!r}: two fields are named {field.name!r}"
        names.add(field.name)
    posted = ("job_type", "integrationId", "metadata")  # what the console sends
    unfilled = sorted(n for n, f in body.fields.items() if f.required and n not in posted)
    if unfilled:
        return f"form {form.title!r}: the body requires {', '.join(unfilled)}, which a form cannot fill"
    if metadata is not None:
        missing = sorted(n for n, f in metadata.fields.items() if f.required and n not in names)
        if missing:
            return f"form {form.title!r}: no field for the required {', '.join(missing)}"
    return None


def check_forms(console: tuple[ConsoleForm, ...], forms: Sequence[str], body: Field) -> str | None:
    """What is wrong with *console* as the console forms of a job type whose body is
    *body* and whose ``job_type`` values are *forms*, or None (a tuple of
    :class:`ConsoleForm` with distinct titles, whose fields are ``metadata`` fields of
    *body* of the matching kind, covering its required ones)."""
    if not isinstance(console, tuple):
        return f"console must be a tuple of ConsoleForm, not {type(console).__name__}"
    titles: set[str] = set()
    for form in console:
        if (problem := _form_problem(form, forms, body)) is not None:
            return problem
        if form.title in titles:
            return f"two console forms are titled {form.title!r}"
        titles.add(form.title)
    return None
