"""The file connectors against damaged and changing files: a merge keeps every byte of
the target file it does not own, and a read sees one version of the source file."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
import trio

from sluiced.connectors import Malformed, Op, Page, Record
from sluiced.errors import TransientError
from sluiced.models import JobType
from sluiced.plugins.files.source import FileSource
from sluiced.plugins.files.target import FileTarget

from .test_files import read_all, settings


async def test_a_merge_keeps_the_rows_after_a_quote_left_open_in_the_target(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.csv"
    out.write_text('id,name\n1,"Ann\n2,Bob\n3,Cy\n')
    target = FileTarget(settings("csv", tmp_path, paths={"user": "out.csv"}))
    await target.apply("user", [Op(kind="create", source_id="9", data={"id": "9", "name": "New"})])
    await target.flush()
    assert out.read_text() == 'id,name\n1,"Ann\n2,Bob\n3,Cy\n9,New\n'
    # The rows after the open quote are still objects of the file: updated in place,
    # read by the source as they were written.
    await target.apply(
        "user",
        [
            Op(kind="update", source_id="2", target_id="2", data={"id": "2", "name": "Bo"}),
            Op(kind="delete", source_id="3", target_id="3"),
        ],
    )
    await target.flush()
    assert out.read_text() == 'id,name\n1,"Ann\n2,Bo\n9,New\n'
    await target.aclose()
    source = FileSource(settings("csv", tmp_path, paths={"user": "out.csv"}))
    items = await read_all(source)
    assert [i.id for i in items if isinstance(i, Record)] == ["2", "9"]
    assert [i.key for i in items if isinstance(i, Malformed)] == ["out.csv:2"]


async def test_a_merge_keeps_a_quote_left_open_on_the_last_line(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_text('id,name\n1,Ann\n2,"Bob')
    target = FileTarget(settings("csv", tmp_path, paths={"user": "out.csv"}))
    await target.apply("user", [Op(kind="create", source_id="9", data={"id": "9", "name": "New"})])
    await target.flush()
    assert out.read_text() == 'id,name\n1,Ann\n2,"Bob\n9,New\n'
    await target.aclose()


# The first page (one record) of OLD ends at byte 15, where NEW has "23,Bob": the tail
# of id 123. Read at the old offset, NEW gives a record 23 that is in neither version
# and skips 2, which both versions have.
OLD = "id,name\n1,Anna\n2,Bob\n3,Cy\n4,Dan\n"
NEW = "id,name\n1,\n2,\n123,Bob\n3,Cy\n4,Dan\n"


def replace_by_rename(path: Path, text: str) -> None:
    tmp = path.with_name("new.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_in_place(path: Path, text: str) -> None:
    with path.open("r+") as f:
        f.truncate(0)
        f.write(text)


class ChangingSource(FileSource):
    """A file source whose file *change* rewrites after the first page was taken."""

    def __init__(self, settings: Any, change: Callable[[], None]) -> None:
        super().__init__(settings)
        self.change: Callable[[], None] | None = change

    async def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncGenerator[Page, None]:
        pages = super().read(entity_type, since=since, cursor=cursor, page_size=page_size)
        async with aclosing(pages):
            async for page in pages:
                yield page
                change, self.change = self.change, None
                if change is not None:
                    change()


async def test_a_file_replaced_mid_read_is_read_as_it_was_when_the_read_began(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(OLD)
    cfg = settings("csv", tmp_path, paths={"user": "in.csv"})
    source = ChangingSource(cfg, lambda: replace_by_rename(path, NEW))
    items = await read_all(source, size=1)
    assert [(i.id, dict(i.data)) for i in items] == [
        ("1", {"id": "1", "name": "Anna"}),
        ("2", {"id": "2", "name": "Bob"}),
        ("3", {"id": "3", "name": "Cy"}),
        ("4", {"id": "4", "name": "Dan"}),
    ]
    fps = {i.cursor["fp"] for i in items}
    assert len(fps) == 1 and fps.pop().startswith(f"{len(OLD)}:")
    # The next read is of the new version, whole.
    assert [i.id for i in await read_all(source, cursor=items[0].cursor, size=1)] == [
        "1",
        "2",
        "123",
        "3",
        "4",
    ]


async def test_a_file_written_in_place_mid_read_fails_the_read_as_transient(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(OLD)
    source = ChangingSource(
        settings("csv", tmp_path, paths={"user": "in.csv"}), lambda: write_in_place(path, NEW)
    )
    seen: list[str] = []
    with pytest.raises(TransientError, match=r"in\.csv changed while it was read; read again"):
        async for page in source.read("user", since=None, cursor=None, page_size=1):
            seen += [i.key if isinstance(i, Malformed) else i.id for i in page.items]
    assert seen == ["1"]


@pytest.mark.parametrize("change", [replace_by_rename, write_in_place])
async def test_a_file_changed_mid_pass_syncs_no_wrong_record_and_deletes_nothing(
    tmp_path: Path, autojump_clock: trio.abc.Clock, change: Callable[[Path, str], None]
) -> None:
    """Through the engine, one record a page: the pass reads one version of the file
    (the one it began with, or after a transient failure the new one, whole)."""
    from .test_engine import Env

    src, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    src.write_text(OLD)
    env = Env()
    env.cfg = dataclasses.replace(env.cfg, batch_size=1)
    cfg = settings("csv", tmp_path, paths={"user": "in.csv"})
    env.source = FileSource(cfg)  # type: ignore[assignment]
    env.target = FileTarget(settings("jsonl", tmp_path, paths={"user": "out.jsonl"}))  # type: ignore[assignment]
    assert (await env.run(JobType.FULL)).job.stats.created == 4
    env.source = ChangingSource(cfg, lambda: change(src, NEW))  # type: ignore[assignment]
    result = await env.run(JobType.FULL)
    assert result.failed == {} and result.job.stats.deleted == 0
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert "23" not in ids and {"1", "2", "3", "4"} <= set(ids)
    result = await env.run(JobType.INCREMENTAL)  # the new version, if not read yet
    assert result.failed == {} and result.job.stats.deleted == 0
    assert sorted(json.loads(line)["id"] for line in out.read_text().splitlines()) == [
        "1",
        "123",
        "2",
        "3",
        "4",
    ]
    await env.target.aclose()
