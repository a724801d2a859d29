"""Secrets never shown: in the provisioning log, a dry run's plan and a provisioning
trace, the values of attributes named like a secret, marked ``"secret": true`` in the
schema, or copied from a source attribute named like one read ``[redacted]``."""

from __future__ import annotations

from typing import Any

import pytest

from sluiced.changes import ChangeQuery, hide_plan_secrets, hide_secrets
from sluiced.mapping import BUILTINS, SchemaError, parse_schema
from sluiced.mapping.mapper import SchemaMapper

from .test_engine import Env

R = "[redacted]"


def direct(target: str, source: str, **kw: Any) -> dict[str, Any]:
    return {"targetAttributeName": target, "source": {"type": "Direct", "name": source}, **kw}


SCHEMA = {
    "objectMappings": [
        {
            "sourceObjectName": "user",
            "flowTypes": ["Add", "Update", "Delete"],
            "attributeMappings": [
                direct("id", "id"),
                direct("name", "name"),
                direct("pin", "pin", secret=True),  # marked in the schema
                direct("code", "apiToken"),  # copied from a secret
                direct("userPassword", "initial"),  # named like one (LDAP)
                {
                    "targetAttributeName": "hint",
                    "source": {"type": "Expression", "expression": 'Join("-", [name], [pwd])'},
                },
            ],
        }
    ]
}


def mapper() -> SchemaMapper:
    return SchemaMapper(parse_schema(SCHEMA, BUILTINS, ["user"]))


class Plan:
    def __init__(self) -> None:
        self.entries: list[Any] = []

    async def add(self, entries: Any) -> None:
        self.entries += entries


def put(env: Env, name: str, secret: str) -> None:
    env.source.put("user", "a", name=name, pin=secret, apiToken=secret, initial=secret, pwd=secret)


def test_the_schema_says_which_attributes_hold_a_secret() -> None:
    found = mapper().secrets("user")
    assert found == {"pin", "code", "apiToken", "userPassword", "initial", "hint"}
    assert mapper().secrets("group") == frozenset()
    bad = {"objectMappings": [{**SCHEMA["objectMappings"][0]}]}  # type: ignore[dict-item]
    bad["objectMappings"][0]["attributeMappings"] = [direct("id", "id", secret="yes")]
    with pytest.raises(SchemaError) as err:
        parse_schema(bad, BUILTINS, ["user"])
    assert "attributeMappings[0].secret" in str(err.value)


async def test_the_log_hides_what_the_schema_marks_secret() -> None:
    env = Env()
    put(env, "ada", "1234")
    await env.run(mapper=mapper())
    put(env, "alan", "5678")
    await env.run(mapper=mapper())
    update, create = await env.store.list_changes("hr", ChangeQuery())
    assert create.attributes == {
        "id": "a",
        "name": "ada",
        "pin": R,
        "code": R,
        "userPassword": R,
        "hint": R,
    }
    assert update.changes is not None and update.changes["name"] == {"from": "ada", "to": "alan"}
    assert all(update.changes[k] == {"from": R, "to": R} for k in ("pin", "code", "hint"))
    assert env.target.plain()["a"]["pin"] == "5678"  # the target gets the value


async def test_a_dry_runs_plan_and_a_provisioning_trace_hide_secrets() -> None:
    env = Env()
    env.source.put("user", "b", name="bob", password="hunter2")
    plan = Plan()
    await env.run(plan=plan)
    assert plan.entries[0]["attributes"] == {"id": "b", "name": "bob", "password": R}
    put(env, "ada", "1234")
    plan = Plan()
    await env.run(mapper=mapper(), plan=plan)
    (entry,) = [e for e in plan.entries if e["sourceId"] == "a"]
    assert {k: v for k, v in entry["attributes"].items() if v == R} == {
        "pin": R,
        "code": R,
        "userPassword": R,
        "hint": R,
    }
    steps = await env.engine.provision("user", "a")
    text = repr(steps)
    assert "1234" not in text and "hunter2" not in text
    (read,) = [s for s in steps if s.get("step") == "import" or s.get("name") == "import"]
    assert read["object"]["pin"] == R and read["object"]["name"] == "ada"


def test_hiding_copies_nothing_without_secrets() -> None:
    flat = {"name": "ada", "mail": "a@x"}
    assert hide_secrets(flat, {"pin"}) is flat
    assert hide_secrets({"PIN": 1}, {"pin"}) == {"PIN": R}  # whatever the case
    entry = {"action": "create", "sourceId": "pin", "attributes": {"pin": 1}}
    assert hide_plan_secrets(entry, {"pin"}) == {**entry, "attributes": {"pin": R}}


async def test_provisioning_trace_hides_the_source_of_a_secret_expression() -> None:
    schema = {
        "objectMappings": [
            {
                "sourceObjectName": "user",
                "flowTypes": ["Add", "Update", "Delete"],
                "attributeMappings": [
                    {"targetAttributeName": "id", "source": {"type": "Direct", "name": "id"}},
                    {
                        "targetAttributeName": "initial",
                        "secret": True,
                        "source": {"type": "Expression", "expression": 'Append([seed], "!")'},
                    },
                ],
            }
        ]
    }
    mapper = SchemaMapper(parse_schema(schema, BUILTINS, ["user"]))
    env = Env()
    env.source.put("user", "a", seed="s3cr3t")
    await env.run(mapper=mapper)
    (create,) = await env.store.list_changes("hr", ChangeQuery())
    assert create.attributes is not None and create.attributes["initial"] == "[redacted]"
    steps = await env.engine.provision("user", "a")
    assert "s3cr3t" not in repr(steps)


async def test_a_secret_expressions_error_names_the_attribute_not_the_value() -> None:
    schema = {
        "objectMappings": [
            {
                "sourceObjectName": "user",
                "flowTypes": ["Add", "Update", "Delete"],
                "attributeMappings": [
                    {"targetAttributeName": "id", "source": {"type": "Direct", "name": "id"}},
                    {
                        "targetAttributeName": "pin",
                        "secret": True,
                        "source": {"type": "Direct", "name": "pin"},
                    },
                    {
                        "targetAttributeName": "pinExpiry",
                        "source": {
                            "type": "Expression",
                            "expression": 'DateAdd("d", 90, [pinIssued])',
                        },
                    },
                    {
                        "targetAttributeName": "initial",
                        "secret": True,
                        "source": {
                            "type": "Expression",
                            "expression": "Mid([pin], 1, [pinLength])",
                        },
                    },
                ],
            }
        ]
    }
    mapper = SchemaMapper(parse_schema(schema, BUILTINS, ["user"]))
    env = Env()
    env.source.put("user", "a", pin="4711", pinLength="4711x", pinIssued="2024-01-01T00:00:00Z")
    await env.run(mapper=mapper)
    (esc,) = await env.store.list_changes("hr", ChangeQuery())
    assert esc.action == "escrow" and esc.reason is not None
    assert "initial" in esc.reason and "4711" not in esc.reason, esc.reason
    (escrow,) = await env.store.list_escrows("hr")
    assert "4711" not in escrow.reason
