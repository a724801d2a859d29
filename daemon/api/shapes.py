"""The declared shapes of the control API's requests: path parameters, query
parameters and bodies. Each is a :class:`~sluiced.api.bodies.Field`, which both checks a
request and documents itself in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from ..config import ID_PATTERN, SCHEDULE_STATES
from ..control import RESET_SCOPES
from ..models import JobStatus, JobType
from .bodies import Field

__all__ = [
    "CREATE_INTEGRATION",
    "ESCROW_KEY",
    "INTEGRATION_ID",
    "JOB_ID",
    "PROVISION",
    "RESTART",
    "create_job_body",
    "duration",
]

#: An integration id, in the config and the API alike.
INTEGRATION_ID = Field("string", pattern=ID_PATTERN, description="an integration id")
JOB_ID = Field("string", max_length=64, description="a job id (job-...)")
OBJECT_ID = Field("string", max_length=1024)
ENTITY_TYPE = Field("string", max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")

_N = "[1-9][0-9]{0,3}"
_UNIT = "(ms|d|h|m|s)"
#: What the API accepts as a duration: ISO 8601 (``PT40M``, ``P1DT2H``) or the short
#: form (``40m``, ``1h30m``, ``1h 30m``), each number without leading zeros and of up to
#: 4 digits; or a number of seconds.
DURATION_PATTERN = (
    rf"^(P({_N}D|({_N}D)?T({_N}H({_N}M)?({_N}S)?|{_N}M({_N}S)?|{_N}S))"
    rf"|{_N}{_UNIT}( ?{_N}{_UNIT}){{0,3}})$"
)
#: The same, or nothing at all (``PT0S``, ``0s``), where a duration may be zero.
DURATION_OR_ZERO_PATTERN = rf"^(PT0S|0s|{DURATION_PATTERN[1:-1]})$"
YEAR_S = 366 * 86400
#: The shape of an RFC 3339 date-time from 1970 to 2999 (a 29 February is checked for
#: its year, and every time for overflow, when it is read: :func:`date_time`).
DATE_TIME_PATTERN = (
    r"^(19[7-9][0-9]|2[0-9]{3})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-9])"
    r"|(0[13-9]|1[0-2])-30|(0[13578]|1[02])-31)"
    r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def date_time(text: str) -> datetime:
    """*text*, a date-time of :data:`DATE_TIME_PATTERN`'s shape, read (in UTC if it has
    no offset).

    Raises:
        ValueError: not a date-time (a 29 February of a year without one, say).
    """
    try:
        at = datetime.fromisoformat(text.upper())
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        at.astimezone(UTC)  # an offset at the edge of the range overflows here
    except OverflowError:
        raise ValueError(f"{text} is out of range") from None
    return at


def duration(minimum: float, description: str) -> Field:
    return Field(
        "any",
        any_of=(
            Field("string", pattern=DURATION_OR_ZERO_PATTERN if minimum <= 0 else DURATION_PATTERN),
            Field("number", minimum=minimum, maximum=YEAR_S),
        ),
        description=description,
    )


JOB_TYPES = tuple(t.value for t in JobType)
STATUS_NAMES = (*(s.value for s in JobStatus), "pending")

JOB_OPTION_FIELDS = {
    "force": Field("bool"),
    "includeArchived": Field("bool"),
    "batchSize": Field("int", minimum=1, maximum=100_000),
    "entityTypes": Field("array", items=ENTITY_TYPE, max_length=64),
    "dryRun": Field("bool"),
}
#: A full or incremental sync; a selective sync, which needs the entity types.
JOB_VARIANTS = (
    Field(
        "object",
        fields={
            "integrationId": Field("string", required=True, pattern=ID_PATTERN),
            "type": Field("string", required=True, choices=("full_sync", "incremental_sync")),
            "options": Field("object", fields=JOB_OPTION_FIELDS),
        },
    ),
    Field(
        "object",
        fields={
            "integrationId": Field("string", required=True, pattern=ID_PATTERN),
            "type": Field("string", required=True, choices=("selective_sync",)),
            "options": Field(
                "object",
                required=True,
                fields={
                    **JOB_OPTION_FIELDS,
                    "entityTypes": Field(
                        "array", required=True, items=ENTITY_TYPE, min_length=1, max_length=64
                    ),
                },
            ),
        },
    ),
)
assert {c for v in JOB_VARIANTS for c in v.fields["type"].choices} == set(JOB_TYPES)


def create_job_body(forms: Sequence[Field]) -> Field:
    """``POST /api/sync/jobs``: the core's variants, then the plugins' job types' *forms*."""
    return Field("object", any_of=(*JOB_VARIANTS, *forms))


# -- integrations (seeds 002 and 003) -------------------------------------------------------
CONNECTOR = Field(
    "object",
    required=True,
    fields={"connector": Field("string", required=True, max_length=64)},
    extra=True,
    description="a connector name and its settings (see the README)",
)
RETRY = Field(
    "object",
    fields={
        "attempts": Field("int", minimum=1, maximum=100),
        "base": duration(0, "the first backoff"),
        "cap": duration(0, "the longest backoff"),
    },
    description="as [integrations.<id>.retry] in the config",
)
QUARANTINE = Field(
    "object",
    fields={
        "after_failures": Field("int", minimum=1, maximum=1000),
        "escalation": Field(
            "array", items=duration(0, "a retry delay"), min_length=1, max_length=32
        ),
        "disable_after": duration(1, "then the integration is disabled"),
        "escrow_proportion": Field("number", minimum=0, maximum=1),
        "escrow_min_failures": Field("int", minimum=1, maximum=10**9),
    },
    description="as [integrations.<id>.quarantine] in the config",
)
ESCROW = Field(
    "object",
    fields={"base": duration(0, "the first backoff"), "cap": duration(0, "the longest")},
    description="as [integrations.<id>.escrow] in the config",
)
DELETION_THRESHOLD = Field(
    "object",
    fields={
        "enabled": Field("bool"),
        "count": Field("int", minimum=0, maximum=10**9),
        "percent": Field("number", minimum=0, maximum=100),
    },
    description="as [integrations.<id>.deletion_threshold] in the config",
)
CREATE_INTEGRATION = Field(
    "object",
    fields={
        "id": Field("string", required=True, pattern=ID_PATTERN),
        "name": Field("string", max_length=200),
        "templateId": Field("string", max_length=200),
        "entityTypes": Field(
            "array", required=True, items=ENTITY_TYPE, min_length=1, max_length=64
        ),
        "schedule": Field(
            "object",
            fields={
                "interval": duration(1, "the delay between runs"),
                "state": Field("string", choices=SCHEDULE_STATES),
                "expiration": Field(
                    "string",
                    max_length=64,
                    pattern=DATE_TIME_PATTERN,
                    description="a date-time with an offset, from 1970 to 2999",
                ),
            },
        ),
        "fullSyncInterval": duration(1, "make a run full when this long passed since the last"),
        "jitter": duration(0, "start up to this much later than the schedule says"),
        "batchSize": Field("int", minimum=1, maximum=100_000),
        "source": CONNECTOR,
        "target": CONNECTOR,
        "retry": RETRY,
        "quarantine": QUARANTINE,
        "escrow": ESCROW,
        "deletionThreshold": DELETION_THRESHOLD,
    },
)
_SCOPE_LIST = "|".join(RESET_SCOPES)
RESTART = Field(
    "object",
    fields={
        "criteria": Field(
            "object",
            fields={
                "resetScope": Field(
                    "any",
                    any_of=(
                        Field("array", items=Field("string", choices=RESET_SCOPES)),
                        Field(
                            "string",
                            pattern=rf"^ *({_SCOPE_LIST}) *(, *({_SCOPE_LIST}) *)*$",
                            description='scopes separated by commas ("Watermark, Escrows")',
                        ),
                    ),
                )
            },
        )
    },
)
ESCROW_KEY = Field(
    "object",
    fields={
        "entityType": Field("string", required=True, max_length=128),
        "objectId": Field("string", required=True, max_length=1024),
    },
)
PROVISION = Field(
    "object",
    fields={
        "objectId": Field("string", required=True, max_length=1024),
        "entityType": Field("string", max_length=128),
        "dryRun": Field("bool"),
    },
)
