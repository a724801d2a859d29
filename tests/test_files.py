"""The built-in file connectors: JSONL and CSV, as source and as target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from sluiced.connectors import Malformed, Op, Record
from sluiced.errors import ConfigError, SyncError
from sluiced.models import JobType
from sluiced.plugins.files import FileConnector
from sluiced.plugins.files.source import FileSource
from sluiced.plugins.files.target import FileTarget
from sluiced.tables import Problems, TableReader


def settings(kind: str, tmp_path: Path, **table: Any) -> Any:
    problems = Problems("c.toml")
    reader = TableReader(table, path="s", problems=problems, base_dir=tmp_path)
    result = FileConnector(kind, "").parse_settings(reader)
    problems.raise_if_any()
    return result


async def read_all(
    source: FileSource, since: str | None = None, cursor: Any = None, size: int = 2
) -> list[Any]:
    return [
        item
        async for page in source.read("user", since=since, cursor=cursor, page_size=size)
        for item in page.items
    ]


async def test_jsonl_source_reads_records_and_escrows_malformed_lines(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(
        '{"id": "a", "n": 1}\n\n[1, 2]\n{"id": 7}\n{broken\n{"name": "no id"}\n{"id": "é", "n": "ü"}\n'
    )
    source = FileSource(settings("jsonl", tmp_path, paths={"user": "in.jsonl"}))
    items = await read_all(source)
    records = [(i.id, dict(i.data)) for i in items if isinstance(i, Record)]
    assert records == [("a", {"id": "a", "n": 1}), ("7", {"id": 7}), ("é", {"id": "é", "n": "ü"})]
    bad = [(i.key, i.reason) for i in items if isinstance(i, Malformed)]
    assert bad[0] == ("in.jsonl:3", "expected a JSON object, found list")
    assert bad[1][0] == "in.jsonl:5" and bad[1][1].startswith("invalid JSON")
    assert bad[2] == ("in.jsonl:6", "no usable 'id' attribute (found None)")


async def test_source_resumes_at_a_cursor_and_restarts_when_the_file_changed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": str(i)}) + "\n" for i in range(6)))
    source = FileSource(settings("jsonl", tmp_path, paths={"user": "in.jsonl"}))
    items = await read_all(source)
    after_two = items[1].cursor
    assert [i.id for i in await read_all(source, cursor=after_two)] == ["2", "3", "4", "5"]
    path.write_text(path.read_text() + '{"id": "6"}\n')
    assert [i.id for i in await read_all(source, cursor=after_two)] == [str(i) for i in range(7)]


async def test_source_watermark_skips_an_unchanged_file(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a"}\n')
    source = FileSource(settings("jsonl", tmp_path, paths={"user": "in.jsonl"}))
    mark = await source.watermark("user")
    assert await read_all(source, since=mark) == []
    path.write_text('{"id": "a"}\n{"id": "b"}\n')
    assert len(await read_all(source, since=mark)) == 2


async def test_a_missing_source_file_is_an_error_not_an_empty_source(tmp_path: Path) -> None:
    source = FileSource(settings("jsonl", tmp_path, paths={"user": "gone.jsonl"}))
    with pytest.raises(SyncError, match="does not exist"):
        await read_all(source)


async def test_csv_source_with_quoted_newlines(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(
        'id,name,note\n1,Ada,"two\nlines"\n2,Grace,\n3,too,many,cells\n'
    )
    source = FileSource(settings("csv", tmp_path, paths={"user": "in.csv"}))
    items = await read_all(source, size=10)
    assert [(i.id, dict(i.data)) for i in items if isinstance(i, Record)] == [
        ("1", {"id": "1", "name": "Ada", "note": "two\nlines"}),
        ("2", {"id": "2", "name": "Grace"}),
    ]
    (bad,) = [i for i in items if isinstance(i, Malformed)]
    assert bad.key == "in.csv:5" and "expected 3 cells" in bad.reason


async def test_a_csv_quote_left_open_escrows_its_line_and_the_later_rows_still_read(
    tmp_path: Path,
) -> None:
    (tmp_path / "in.csv").write_text(
        'id,name\n1,"Ann\n2,Bob\n3,"two\nlines"\n4,Dan\n5,"Eve\n6,Fay\n'
    )
    source = FileSource(settings("csv", tmp_path, paths={"user": "in.csv"}))
    items = await read_all(source)
    records = [(i.id, dict(i.data)) for i in items if isinstance(i, Record)]
    assert records == [
        ("2", {"id": "2", "name": "Bob"}),
        ("3", {"id": "3", "name": "two\nlines"}),
        ("4", {"id": "4", "name": "Dan"}),
        ("6", {"id": "6", "name": "Fay"}),
    ]
    bad = {i.key: i.reason for i in items if isinstance(i, Malformed)}
    assert set(bad) == {"in.csv:2", "in.csv:7"}
    assert "a quote left open?" in bad["in.csv:2"] and "reading on from line 3" in bad["in.csv:2"]
    assert bad["in.csv:7"].startswith("a quote opened on this line is never closed")


async def test_invalid_utf8_is_escrowed_with_its_line_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_bytes(
        b'{"id": "a", "n": "ok"}\n{"id": "b", "n": "caf\xe9"}\n{"id": "c"}\n'
    )
    source = FileSource(settings("jsonl", tmp_path, paths={"user": "in.jsonl"}))
    items = await read_all(source)
    assert [i.id for i in items if isinstance(i, Record)] == ["a", "c"]
    (bad,) = [i for i in items if isinstance(i, Malformed)]
    assert bad.key == "in.jsonl:2" and "invalid UTF-8 byte 0xe9" in bad.reason
    (tmp_path / "h.csv").write_bytes(b"id,n\xff\n1,x\n")
    csv_source = FileSource(settings("csv", tmp_path, paths={"user": "h.csv"}))
    with pytest.raises(SyncError, match=r"h.csv:1: the header is not UTF-8"):
        await read_all(csv_source)


async def test_duplicate_ids_are_escrowed_with_both_lines(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(
        '{"id": "a", "n": 1}\n{"id": "b"}\n{"id": "a", "n": 2}\n{"id": 7}\n{"id": "7"}\n'
    )
    source = FileSource(settings("jsonl", tmp_path, paths={"user": "in.jsonl"}))
    for size in (1, 100):  # whatever the pages, and resumed from a cursor
        items = await read_all(source, size=size)
        assert [i.id for i in items if isinstance(i, Record)] == ["b"]
        bad = {i.key: i.reason for i in items if isinstance(i, Malformed)}
        assert bad == {
            "in.jsonl:1": "id 'a' is on more than one line: 1 and 3",
            "in.jsonl:3": "id 'a' is on more than one line: 1 and 3",
            "in.jsonl:4": "id '7' is on more than one line: 4 and 5",
            "in.jsonl:5": "id '7' is on more than one line: 4 and 5",
        }
    after_first = (await read_all(source))[0].cursor
    resumed = await read_all(source, cursor=after_first)
    assert next(i.key for i in resumed if isinstance(i, Malformed)) == "in.jsonl:3"


async def test_a_damaged_file_read_deletes_nothing_from_the_target(tmp_path: Path) -> None:
    """Through the engine, with real files: the rows an open quote would have swallowed
    are synced, the damaged line is escrowed, and nothing is deleted."""
    from .test_engine import Env

    src, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    src.write_text("id,name\n" + "".join(f"{i},person {i}\n" for i in range(8)))
    env = Env()
    env.source = FileSource(settings("csv", tmp_path, paths={"user": "in.csv"}))  # type: ignore[assignment]
    env.target = FileTarget(settings("jsonl", tmp_path, paths={"user": "out.jsonl"}))  # type: ignore[assignment]
    assert (await env.run(JobType.FULL)).job.stats.created == 8
    lines = src.read_text().splitlines()
    lines[2] = '1,"person 1'  # a quote left open; 5 is gone from the file
    del lines[6]
    src.write_text("\n".join(lines) + "\n")
    result = await env.run(JobType.FULL)
    assert result.failed == {} and result.job.stats.deleted == 0
    assert sorted(json.loads(line)["id"] for line in out.read_text().splitlines()) == [
        str(i) for i in range(8)
    ]
    assert [e.object_id for e in await env.store.list_escrows("hr")] == ["in.csv:3"]
    lines[2] = "1,person 1"
    src.write_text("\n".join(lines) + "\n")
    result = await env.run(JobType.FULL)
    assert result.job.stats.deleted == 1 and await env.store.list_escrows("hr") == []
    assert "5" not in [json.loads(line)["id"] for line in out.read_text().splitlines()]
    await env.target.aclose()


async def test_jsonl_target_journals_then_merges_atomically_and_idempotently(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out" / "people.jsonl"
    target = FileTarget(settings("jsonl", tmp_path, paths={"user": "out/people.jsonl"}))
    ops = [Op(kind="create", source_id=str(i), data={"id": str(i), "n": i}) for i in range(3)]
    await target.apply("user", ops)
    assert not out.exists()  # not visible before flush
    await target.apply("user", ops)  # a replay after a crash
    await target.flush()
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["0", "1", "2"]
    await target.apply(
        "user",
        [
            Op(kind="update", source_id="1", target_id="1", data={"id": "1", "n": 10}),
            Op(kind="delete", source_id="0", target_id="0"),
            Op(kind="create", source_id="9", data={"id": "9"}),
        ],
    )
    await target.flush()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [{"id": "1", "n": 10}, {"id": "2", "n": 2}, {"id": "9"}]
    assert not list(out.parent.glob(".*sluiced-tmp"))
    await target.aclose()


async def test_a_journal_left_by_a_crash_is_applied_by_the_next_target(tmp_path: Path) -> None:
    cfg = settings("jsonl", tmp_path, paths={"user": "out.jsonl"})
    crashed = FileTarget(cfg)
    await crashed.apply("user", [Op(kind="create", source_id="a", data={"id": "a"})])
    # The process dies here: no flush, no close.
    fresh = FileTarget(cfg)
    await fresh.apply("user", [Op(kind="create", source_id="b", data={"id": "b"})])
    await fresh.flush()
    assert (tmp_path / "out.jsonl").read_text().splitlines() == ['{"id":"a"}', '{"id":"b"}']


async def test_a_journal_left_by_a_crash_is_merged_by_a_flush_with_nothing_new(
    tmp_path: Path,
) -> None:
    """The resumed job of a process killed during its final merge applies nothing: its
    flush must still merge what the dead process journalled."""
    cfg = settings("jsonl", tmp_path, paths={"User": "out.jsonl"})
    crashed = FileTarget(cfg)
    await crashed.apply("user", [Op(kind="create", source_id="a", data={"id": "a"})])
    (tmp_path / ".out.jsonl.sluiced-tmp").write_text("half a merge")  # died mid-merge
    fresh = FileTarget(cfg)
    await fresh.flush()
    assert (tmp_path / "out.jsonl").read_text().splitlines() == ['{"id":"a"}']
    assert not (tmp_path / ".out.jsonl.sluiced-tmp").exists()
    await fresh.aclose()
    await crashed.aclose()


async def test_two_targets_on_one_file_lose_nothing_written_during_a_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two integrations export into one file: what one journals while the other merges
    (after the merge read the journal, before it emptied it) waits for that merge, and
    reaches the file with the next one."""
    import os
    import threading

    from sluiced.plugins.files import target as target_module

    cfg = settings("jsonl", tmp_path, paths={"user": "out.jsonl"})
    one, other = FileTarget(cfg), FileTarget(cfg)
    journal = other._open("user")
    await one.apply("user", [Op(kind="create", source_id="a", data={"id": "a"})])
    writer = threading.Thread(target=journal.add, args=([("b", 0, "upsert", '{"id":"b"}')],))
    real_replace = os.replace

    def replace_while_the_other_writes(src: Any, dst: Any) -> None:
        if not writer.is_alive() and writer.ident is None:
            writer.start()
            writer.join(0.5)  # it waits for this merge's transaction, or it is done
        real_replace(src, dst)

    monkeypatch.setattr(target_module.os, "replace", replace_while_the_other_writes)
    await one.flush()
    writer.join()
    await other.flush()
    assert (tmp_path / "out.jsonl").read_text().splitlines() == ['{"id":"a"}', '{"id":"b"}']
    await one.aclose()
    await other.aclose()


async def test_csv_target_grows_its_header_and_round_trips(tmp_path: Path) -> None:
    target = FileTarget(settings("csv", tmp_path, paths={"user": "out.csv"}))
    await target.apply(
        "user", [Op(kind="create", source_id="1", data={"id": "1", "name": "Ada, L."})]
    )
    await target.flush()
    await target.apply(
        "user", [Op(kind="create", source_id="2", data={"id": "2", "tags": ["x", "y"]})]
    )
    await target.flush()
    assert (tmp_path / "out.csv").read_text() == 'id,name,tags\n1,"Ada, L.",\n2,,"[""x"", ""y""]"\n'
    source = FileSource(settings("csv", tmp_path, paths={"user": "out.csv"}))
    assert [dict(i.data) for i in await read_all(source)] == [
        {"id": "1", "name": "Ada, L."},
        {"id": "2", "tags": '["x", "y"]'},
    ]


def test_settings_problems_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        settings("csv", tmp_path, paths={"user": 3}, delimiter=";;", colour="red")
    text = str(info.value)
    assert "s.paths.user: found int 3; expected a path" in text
    assert "s.delimiter: found ';;'; expected a single character" in text
    assert "s.colour: found unknown key 'colour'" in text
    with pytest.raises(ConfigError, match=r"s\.paths: found nothing"):
        settings("jsonl", tmp_path)


async def test_an_escrow_retry_never_takes_an_unreadable_record_for_gone(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    """An escrowed object whose record is now on two lines is not returned by the
    source's get_many as a record: it is a Malformed, so the retry keeps the object in
    the target (and its escrow) instead of deleting it as gone from the source."""
    from .test_engine import T0, Env, ops_for

    src = tmp_path / "in.csv"
    rows = [f"{i},person {i}" for i in range(6)]
    src.write_text("id,name\n" + "\n".join(rows) + "\n")
    env = Env()
    env.source = FileSource(settings("csv", tmp_path, paths={"user": "in.csv"}))  # type: ignore[assignment]
    assert (await env.run(JobType.FULL)).job.stats.created == 6
    rows[3] = "3,person three"
    src.write_text("id,name\n" + "\n".join(rows) + "\n")
    env.target.reject = lambda op: "locked" if op.source_id == "3" else None
    await env.run(JobType.FULL)
    (e1,) = await env.store.list_escrows("hr")
    assert (e1.object_id, e1.attempts) == ("3", 1)
    src.write_text("id,name\n" + "\n".join([*rows, "3,someone else"]) + "\n")
    env.target.reject = None
    calls = len(env.target.applied)
    await trio.sleep((e1.next_retry - T0).total_seconds() + 1)
    result = await env.run(JobType.FULL)
    assert ops_for(env.target, "3", calls) == [] and result.job.stats.deleted == 0
    escrows = {e.object_id: e for e in await env.store.list_escrows("hr")}
    assert escrows["3"].attempts == 2 and "could not read" in escrows["3"].reason
    assert {"in.csv:5", "in.csv:8"} <= escrows.keys()  # both lines of the shared id


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "a", "n": 1}\n',
        b'{"id": "a"}\r\n',
        b'{"m": {"id": "x"}, "id": "b"}\n',
        b'{"id": 7}\n',
        b'{"id": ""}\n',
        b'{"m": {"id": "x"}}\n',
        b'["id", "a"]\n',
        b'{"id": "\\u00e9", "x": NaN}\n',
        b'{"id": "\xe9"}\n',
        b"\n",
    ],
)
def test_the_id_a_jsonl_line_tells_at_a_glance_is_the_one_its_parse_finds(raw: bytes) -> None:
    from sluiced.plugins.files.formats import JsonlFormat, LineError

    fmt = JsonlFormat()
    found = fmt.line_record(raw, "id")
    quick = found[1] if found else None
    try:
        parsed = fmt.parse(raw.decode("utf-8").rstrip("\r\n"), None).get("id")
    except (LineError, UnicodeDecodeError):
        parsed = None
    assert quick is None or quick == parsed
    assert found is None or found[0] == fmt.parse(raw.decode().rstrip("\r\n"), None)
    assert (quick is None) == (type(parsed) is not str or parsed == "" or b"NaN" in raw)


async def test_new_objects_are_appended_in_the_order_they_first_came(tmp_path: Path) -> None:
    target = FileTarget(settings("jsonl", tmp_path, paths={"user": "out.jsonl"}))

    def create(i: str, v: int = 1) -> Op:
        return Op(kind="create", source_id=i, data={"id": i, "v": v})

    await target.apply("user", [create("b"), create("a")])
    await target.apply("user", [create("c"), create("b", 2), create("d")])
    await target.flush()
    await target.apply("user", [create("f"), create("e")])  # after a merge emptied it
    await target.apply("user", [create("a", 2), create("g"), create("f", 2)])
    await target.flush()
    await target.aclose()
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(o["id"], o["v"]) for o in lines] == [
        ("b", 2),
        ("a", 2),
        ("c", 1),
        ("d", 1),
        ("f", 2),
        ("e", 1),
        ("g", 1),
    ]
