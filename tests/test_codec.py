"""The JSON codec: one text per object, and content hashes whose form can change
without an upgrade re-exporting every object or missing a change."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import MappingProxyType

import pytest

from sluiced.codec import (
    HASH_FORM,
    content_hash,
    dumps,
    encode_object,
    loads,
    object_hash,
    same_content,
)
from sluiced.connectors import Op, OpResult, Record
from sluiced.errors import ObjectError
from sluiced.models import JobType, Link
from sluiced.plugins.files.source import FileSource
from sluiced.plugins.files.target import FileTarget
from sluiced.store import BatchCommit

from .test_engine import Env
from .test_files import settings


def test_dumps_is_the_compact_sorted_json_lines_form() -> None:
    obj = {"b": [1, 2.5, None, True], "a": "é ✓", "c": {"z": 1, "y": 2}}
    assert dumps(obj) == json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert loads(dumps(obj)) == obj


def test_what_orjson_cannot_take_is_encoded_and_read_as_python_does() -> None:
    assert loads(dumps({"n": 2**70})) == {"n": 2**70}
    assert loads(dumps({1: "a key that is not a string"})) == {"1": "a key that is not a string"}
    assert loads('{"x": NaN}')["x"] != loads('{"x": NaN}')["x"]  # NaN, as json reads it
    assert loads(dumps({"when": Path("/x")})) == {"when": "/x"}  # other values as their str
    assert dumps(MappingProxyType({"b": MappingProxyType({"c": 1}), "a": 2})) == (
        '{"a":2,"b":{"c":1}}'
    )


def test_object_hashes_carry_their_form_and_tell_contents_apart() -> None:
    text, digest = encode_object({"id": "1", "name": "a"})
    assert text == '{"id":"1","name":"a"}'
    assert digest.startswith(HASH_FORM) and digest == object_hash({"name": "a", "id": "1"})
    assert digest != object_hash({"id": "1", "name": "b"})
    assert not content_hash({"id": "1"}).startswith(HASH_FORM)


def test_a_digest_of_the_first_form_is_compared_in_that_form() -> None:
    data = {"id": "1", "name": "Zoë"}
    old = content_hash(data)  # what a link written by an older version holds
    assert same_content(old, object_hash(data), data)
    changed = {"id": "1", "name": "Zoe"}
    assert not same_content(old, object_hash(changed), changed)
    assert not same_content(object_hash(data), object_hash(changed), changed)


async def test_an_upgrade_neither_re_exports_unchanged_objects_nor_misses_a_change() -> None:
    env = Env()
    env.fill(25)
    env.source.put("user", "u0001", name="Zoë")  # not ASCII: the two forms' texts differ
    await env.run()
    ids = sorted(env.source.objects["user"])
    links = await env.store.get_links("hr", "user", ids)
    assert all(link.hash.startswith(HASH_FORM) for link in links.values())
    # The links as an older version wrote them: digests of the first form.
    await env.store.commit_batch(
        BatchCommit(
            job=env.job(),
            entity_type="user",
            upsert_links=[
                Link(
                    source_id=k.source_id,
                    target_id=k.target_id,
                    hash=content_hash(k.data or {}),
                    seen_pass=k.seen_pass,
                    data=k.data,
                )
                for k in links.values()
            ],
        )
    )
    calls = len(env.target.applied)
    result = await env.run(JobType.FULL)
    assert len(env.target.applied) == calls, "an unchanged object was exported again"
    assert (result.job.stats.processed, result.job.stats.skipped) == (25, 25)

    env.source.put("user", "u0001", name="Zoé")
    result = await env.run()
    assert [(o.kind, o.source_id) for o in env.target.applied[-1]] == [("update", "u0001")]
    links = await env.store.get_links("hr", "user", ids)
    written = links["u0001"]
    assert written.data is not None and written.data["name"] == "Zoé"
    assert written.hash == object_hash(written.data)  # rewritten in the new form
    assert not links["u0002"].hash.startswith(HASH_FORM)  # unchanged: not written at all


async def test_the_journal_keeps_the_order_objects_came_in_across_batches_and_reopening(
    tmp_path: Path,
) -> None:
    cfg = settings("jsonl", tmp_path, paths={"user": "out.jsonl"})

    def create(*ids: str) -> list[Op]:
        return [Op(kind="create", source_id=i, data={"id": i}) for i in ids]

    first = FileTarget(cfg)
    await first.apply("user", create("c", "a"))
    await first.apply("user", create("b", "c"))  # c keeps its place
    second = FileTarget(cfg)  # as if the first had died before its merge
    await second.apply("user", create("e", "d", "g"))
    await first.apply("user", create("f"))  # after what the other connection wrote
    await second.flush()
    ids = [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert ids == ["c", "a", "b", "e", "d", "g", "f"]
    await first.aclose()
    await second.aclose()


async def test_a_journal_an_older_version_left_is_merged_in_the_file_s_form(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "out.jsonl.sluiced-journal"
    with sqlite3.connect(journal) as conn:  # as versions before the journal had a form
        conn.execute(
            "CREATE TABLE ops (id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
            " op TEXT NOT NULL, data TEXT)"
        )
        for n, obj in enumerate([{"id": "a", "name": "Zoë"}, {"id": "b", "n": [1, 2]}]):
            conn.execute(
                "INSERT INTO ops VALUES (?,?,?,?)",
                (obj["id"], n + 1, "upsert", json.dumps(obj, sort_keys=True)),
            )
    conn.close()
    target = FileTarget(settings("jsonl", tmp_path, paths={"user": "out.jsonl"}))
    await target.apply("user", [Op(kind="create", source_id="c", data={"id": "c"})])
    await target.flush()
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines() == [
        '{"id":"a","name":"Zoë"}',
        '{"id":"b","n":[1,2]}',
        '{"id":"c"}',
    ]
    with sqlite3.connect(journal) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1  # emptied: the new form
    conn.close()
    await target.aclose()


def test_a_bulk_request_is_sent_as_its_operations_were_encoded_to_weigh_them() -> None:
    from sluiced.plugins.scim.bulk import BULK_REQUEST, chunks
    from sluiced.plugins.scim.client import CORE_USER, Provider, ResourceType

    rt = ResourceType("User", "/Users", CORE_USER)
    provider = Provider(bulk=True, bulk_max_operations=1000, bulk_max_payload=4000)
    ops = [
        Op(kind="create", source_id=str(i), data={"userName": f"user.{i}@example.org"})
        for i in range(60)
    ]
    requests = chunks(provider, rt, ops, list(range(60)))
    assert [i for r in requests for i in r.indexes] == list(range(60))
    assert len(requests) > 1  # cut by the payload budget, not the operation count
    for r in requests:
        assert len(r.body) <= 4000
        message = loads(r.body)
        assert message["schemas"] == [BULK_REQUEST]
        assert message["Operations"] == [o for o in r.operations if o is not None]
        assert r.body.count(b"userName") == len(r.indexes)


def test_a_number_json_has_no_form_for_is_refused_naming_its_attribute() -> None:
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ObjectError, match=r"attribute 'score' holds .*JSON has no form"):
            encode_object({"id": "1", "score": {"runs": [1.5, bad]}, "none": None})
    assert encode_object({"id": "1", "none": None})[0] == '{"id":"1","none":null}'


async def test_an_object_holding_nan_is_escrowed_not_written_as_null(tmp_path: Path) -> None:
    """Through the engine, files to files: the standard library reads ``NaN`` and
    ``Infinity``, which JSON cannot hold; that object is escrowed with the attribute
    named, and the others sync."""
    (tmp_path / "in.jsonl").write_text(
        '{"id": "a", "score": 1.5}\n{"id": "b", "score": NaN}\n'
        '{"id": "c", "score": [Infinity]}\n{"id": "d", "score": null}\n'
    )
    env = Env()
    env.source = FileSource(settings("jsonl", tmp_path, paths={"user": "in.jsonl"}))  # type: ignore[assignment]
    env.target = FileTarget(settings("jsonl", tmp_path, paths={"user": "out.jsonl"}))  # type: ignore[assignment]
    result = await env.run(JobType.FULL)
    assert result.failed == {} and result.job.stats.created == 2
    written = (tmp_path / "out.jsonl").read_text().splitlines()
    assert written == ['{"id":"a","score":1.5}', '{"id":"d","score":null}']
    escrows = {e.object_id: e.reason for e in await env.store.list_escrows("hr")}
    assert escrows.keys() == {"b", "c"}
    assert "attribute 'score' holds nan" in escrows["b"]
    assert "attribute 'score' holds inf" in escrows["c"]
    await env.target.aclose()


@pytest.mark.parametrize("target_kind", ["jsonl", "csv"])
async def test_integers_beyond_64_bits_stay_exact_and_a_lone_surrogate_is_escrowed(
    tmp_path: Path, target_kind: str
) -> None:
    """Through the engine, files to files: orjson reads an integer beyond 64 bits as a
    float; such a line is read by the standard library, so the value arrives exact.
    A lone surrogate is not Unicode text: that object is escrowed, the others sync."""
    big, small = 2**64, -(2**63) - 1
    (tmp_path / "in.jsonl").write_text(
        f'{{"id": "a", "n": {big}}}\n{{"id": "b", "n": [{small}, "x"]}}\n'
        '{"id": "c", "n": "\\ud800"}\n{"id": "d", "n": 9223372036854775807}\n'
    )
    out = f"out.{target_kind}"
    env = Env()
    env.source = FileSource(settings("jsonl", tmp_path, paths={"user": "in.jsonl"}))  # type: ignore[assignment]
    env.target = FileTarget(settings(target_kind, tmp_path, paths={"user": out}))  # type: ignore[assignment]
    result = await env.run(JobType.FULL)
    await env.target.aclose()
    assert result.failed == {} and result.job.stats.created == 3
    escrows = {e.object_id: e.reason for e in await env.store.list_escrows("hr")}
    assert escrows.keys() == {"c"} and "lone surrogate" in escrows["c"]
    text = (tmp_path / out).read_text()
    assert str(big) in text and str(small) in text and "9223372036854775807" in text
    assert "e+" not in text and "e+" not in json.dumps(
        [link.data for link in (await env.store.get_links("hr", "user", ["a"])).values()]
    )


def test_loads_keeps_integers_beyond_64_bits_exact() -> None:
    for text in (f'{{"x": {2**64}}}', f'{{"x": {-(2**63) - 1}}}', f"[{10**30}]"):
        assert loads(text) == json.loads(text)
        assert loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("cls", [Record, Op, OpResult, Link])
def test_the_records_made_per_object_take_exactly_their_fields(cls: type) -> None:
    """Their ``__init__`` is written by hand (it is on the hot path): it takes every
    field, keyword only, with the field's default, and sets it."""
    import dataclasses
    import inspect

    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields
    ]
    values = {f.name: object() for f in fields}
    made = cls(**values)
    assert {name: getattr(made, name) for name in values} == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.__setattr__(fields[0].name, None)
    assert dataclasses.replace(made) == made
