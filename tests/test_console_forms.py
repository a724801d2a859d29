"""The console forms a job type declares (``JobType.console``): served by
``/console/job-types`` for the console's script to draw, and checked against the job
type's body when the plugin builds it, with an error naming the job type, the form and
the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sluiced.api import Checkbox, ConsoleForm, Field, IdList, JobType
from sluiced.console import console_app

TOKEN = "the-api-token-0123456789"
ROOT = Path(__file__).resolve().parent.parent

BODY = Field(
    "object",
    fields={
        "job_type": Field("string", required=True, choices=("report", "report_all")),
        "metadata": Field(
            "object",
            fields={
                "deep": Field("bool"),
                "ids": Field("array", items=Field("id")),
                "depth": Field("int"),
            },
        ),
        "integrationId": Field("string"),
    },
)
DEEP = Checkbox(name="deep", label="Deep report", default=True)
IDS = IdList(name="ids", label="Object ids", hint="One per line.", separators="\n;")


def report(*forms: Any, body: Field = BODY) -> JobType:
    return JobType(
        name="report",
        body=body,
        params=lambda b: {},
        targets=frozenset({"memory"}),
        answer=lambda job: {"id": job.id},
        response={"type": "object"},
        console=tuple(forms),
    )


def form(*fields: Any, **changes: Any) -> ConsoleForm:
    spec: dict[str, Any] = {"title": "Report", "job_type": "report", "submit": "Run report"}
    return ConsoleForm(**{**spec, **changes}, fields=tuple(fields))


def test_a_job_type_without_console_forms_offers_none() -> None:
    assert report().console == ()


def test_the_forms_are_served_as_declared_for_the_script() -> None:
    kind = report(form(DEEP, IDS, legend="Options"))
    assert [f.as_json() for f in kind.console] == [
        {
            "title": "Report",
            "jobType": "report",
            "submit": "Run report",
            "legend": "Options",
            "fields": [
                {"kind": "checkbox", "name": "deep", "label": "Deep report", "default": True},
                {
                    "kind": "ids",
                    "name": "ids",
                    "label": "Object ids",
                    "separators": "\n;",
                    "hint": "One per line.",
                    "inputmode": "text",
                    "required": True,
                    "pick": "",
                },
            ],
        }
    ]
    assert form(DEEP).as_json()["legend"] == "Report"  # the title, when none is given


@pytest.mark.parametrize(
    ("forms", "message"),
    [
        (
            (form(Checkbox(name="depth", label="Depth")),),
            "form 'Report': checkbox 'depth': the body's metadata has no bool field",
        ),
        (
            (form(Checkbox(name="missing", label="Missing")),),
            "form 'Report': checkbox 'missing': the body's metadata has no bool field",
        ),
        (
            (form(IdList(name="deep", label="Deep")),),
            "form 'Report': id list 'deep': the body's metadata has no array field",
        ),
        (
            (form(IdList(name="ids", label="Ids", inputmode="numbers")),),
            "form 'Report': id list 'ids': inputmode 'numbers' is not one of decimal, numeric,",
        ),
        (
            (form(IdList(name="ids", label="Ids", separators="")),),
            "form 'Report': id list 'ids': separators must name at least one character",
        ),
        (
            (form(IdList(name="ids", label="Ids", separators="x,")),),
            "form 'Report': id list 'ids': separators 'x,' hold a letter or digit",
        ),
        (
            (form(IdList(name="ids", label="Ids", pick="a scene")),),
            "form 'Report': id list 'ids': pick must be an entity type's name, or empty",
        ),
        ((form(Checkbox(name="deep", label=" ")),), "form 'Report': field 'deep' needs a label"),
        (
            (form(Checkbox(name="deep", label="Deep", default="yes")),),
            "form 'Report': checkbox 'deep': default must be True or False",
        ),
        ((form(DEEP, DEEP),), "form 'Report': two fields are named 'deep'"),
        ((form(DEEP, "ids"),), "form 'Report': a field must be a Checkbox or an IdList, not str"),
        ((form(),), "form 'Report': fields must be a non-empty tuple"),
        (
            (form(DEEP, job_type="audit"),),
            "form 'Report': job_type 'audit' is not one of ['report', 'report_all']",
        ),
        ((form(DEEP, title=""),), "a console form needs a title and a submit label"),
        ((form(DEEP), form(IDS)), "two console forms are titled 'Report'"),
        (({"title": "Report"},), "a console form must be a ConsoleForm, not dict"),
    ],
)
def test_a_form_that_does_not_fit_the_body_is_refused_naming_what_is_wrong(
    forms: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        report(*forms)
    assert str(info.value).startswith(f"job type 'report': {message}")


def test_a_form_must_fill_the_bodys_required_metadata() -> None:
    body = Field(
        "object",
        fields={
            "job_type": Field("string", required=True, choices=("report",)),
            "metadata": Field(
                "object",
                required=True,
                fields={"deep": Field("bool"), "ids": Field("array", required=True)},
            ),
        },
    )
    with pytest.raises(ValueError, match="form 'Report': no field for the required ids"):
        report(form(DEEP), body=body)
    assert report(form(DEEP, IDS), body=body).console[0].fields == (DEEP, IDS)


def test_a_form_the_api_would_always_refuse_is_refused_at_load() -> None:
    def body(ids: Field, **more: Field) -> Field:
        return Field(
            "object",
            fields={
                "job_type": Field("string", required=True, choices=("report",)),
                "metadata": Field("object", fields={"ids": ids}),
                **more,
            },
        )

    with pytest.raises(ValueError, match="the console sends strings, the body wants ints"):
        report(form(IDS), body=body(Field("array", items=Field("int"))))
    optional = IdList(name="ids", label="Ids", required=False)
    with pytest.raises(ValueError, match="an empty list is refused by the body"):
        report(form(optional), body=body(Field("array", items=Field("id"), min_length=1)))
    scoped = body(Field("array", items=Field("id")), scope=Field("string", required=True))
    with pytest.raises(ValueError, match="the body requires scope, which a form cannot fill"):
        report(form(IDS), body=scoped)


def test_console_must_be_a_tuple() -> None:
    with pytest.raises(ValueError, match="console must be a tuple of ConsoleForm, not list"):
        JobType(
            name="report",
            body=BODY,
            params=lambda b: {},
            targets=frozenset({"memory"}),
            answer=lambda job: {"id": job.id},
            response={"type": "object"},
            console=[form(DEEP)],  # type: ignore[arg-type]
        )


async def test_the_console_serves_the_stash_forms_as_the_seeds_word_them() -> None:
    from sluiced.plugins.stash.routes import JOB_TYPES

    app = console_app(lambda *a: None, TOKEN, JOB_TYPES)  # type: ignore[arg-type,return-value]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        assert (await c.get("/console/job-types")).status_code == 401
        r = await c.post("/console/login", data={"token": TOKEN})
        assert r.status_code == 303
        kinds = (await c.get("/console/job-types")).json()["jobTypes"]
    assert [k["name"] for k in kinds] == ["sync", "sync_scenes"]  # by name: seed 000, then 001
    (sync,) = kinds[0]["console"]
    assert (sync["title"], sync["jobType"], sync["submit"]) == (
        "Sync from Stash",
        "sync",
        "Sync from Stash",
    )
    assert [(f["kind"], f["name"], f["label"], f["default"]) for f in sync["fields"]] == [
        ("checkbox", "full_resync", "Full Resync (ignore timestamps)", False),
        ("checkbox", "include_scenes", "Include Scenes", True),
        ("checkbox", "include_performers", "Include Performers", True),
        ("checkbox", "include_tags", "Include Tags", True),
        ("checkbox", "include_studios", "Include Studios", True),
    ]
    (scenes,) = kinds[1]["console"]
    assert (scenes["title"], scenes["jobType"], scenes["submit"]) == (
        "Sync Scenes",
        "sync_scenes",
        "Sync Scenes",
    )
    (ids,) = scenes["fields"]
    assert (ids["kind"], ids["name"], ids["label"], ids["required"], ids["pick"]) == (
        "ids",
        "scene_ids",
        "Scene IDs",
        True,
        "scene",
    )


def test_the_core_names_no_plugin() -> None:
    """The console draws the plugins' forms from their declarations: nothing in the core
    (its script included) names the Stash plugin."""
    files = [
        f
        for f in (ROOT / "daemon").rglob("*")
        if f.is_file() and "__pycache__" not in f.parts  # compiled leftovers are not source
    ]
    assert [str(f) for f in files if b"stash" in f.read_bytes().lower()] == []
