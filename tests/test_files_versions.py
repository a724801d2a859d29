"""The file connectors against damaged and changing files: a merge keeps every byte of
the target file it does not own, and a read sees one version of the source file."""

from __future__ import annotations

from pathlib import Path

from sluiced.connectors import Malformed, Op, Record
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
