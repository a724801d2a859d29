"""``--follow``'s progress line: fitted to the terminal, redrawn in place, coloured only
on a terminal; and the same in a real terminal (tmux at 80 columns) against the daemon."""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluiced.progress import Follow, log_line, progress_line, use_colour

from .daemonproc import SLUICECTL, DaemonProc, daemons, first_job, make_daemon, wait_job

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
BIG = {
    "progress": 42.0,
    "status": "running",
    "stage": "user: writing",
    "result": {
        "processed": 123456,
        "created": 120000,
        "updated": 3456,
        "deleted": 0,
        "disabled": 0,
        "skipped": 0,
        "errors": 0,
    },
}


@pytest.mark.parametrize("width", [20, 40, 60, 80, 120, 300])
def test_the_line_fits_the_terminal(width: int) -> None:
    for colour in (False, True):
        line = progress_line(BIG, width, colour=colour)
        visible = ANSI.sub("", line)
        assert len(visible) <= width - 1, (width, visible)
        assert visible == progress_line(BIG, width)  # colours change no visible character
        assert "\n" not in line and "\r" not in line
    assert progress_line(BIG, 300).startswith("[########............]  42.0% running")


def test_what_gives_way_first() -> None:
    wide = progress_line(BIG, 300)
    assert "deleted 0" in wide and "[########" in wide  # everything fits
    assert "deleted 0" not in progress_line(BIG, 110)  # zero counters go first
    assert progress_line(BIG, 90).startswith("[####......]  42.0%")  # then half the bar
    assert progress_line(BIG, 80) == (
        "[####......]  42.0% running user: writing proc 123456 new 120000 upd 3456"
    )  # then the long names
    narrow = progress_line(BIG, 40)
    assert narrow.endswith("…") and narrow.startswith("[####......]")  # then the end


def test_colours_mark_the_status_and_level() -> None:
    done = progress_line({**BIG, "status": "completed", "progress": 100}, 80, colour=True)
    assert "\x1b[32mcompleted\x1b[0m" in done
    error = log_line(
        {"timestamp": "2024-01-01T00:00:00Z", "level": "error", "message": "x"}, colour=True
    )
    assert error.startswith("2024-01-01 00:00:00 \x1b[31merror  \x1b[0m")
    assert "\x1b[" not in log_line({"timestamp": "t", "level": "error", "message": "x"})


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_colour_off_a_terminal_or_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(FakeTTY()) and not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(FakeTTY())
    monkeypatch.setenv("NO_COLOR", "")
    assert use_colour(FakeTTY())


def _events() -> Iterator[tuple[str, Any]]:
    for percent in (10.0, 50.0):
        yield "progress", {**BIG, "progress": percent}
    yield "log", {"timestamp": "2024-01-01T00:00:00Z", "level": "info", "message": "halfway"}
    yield "progress", {**BIG, "progress": 100.0, "status": "completed"}
    yield "end", {"status": "completed"}


def test_on_a_terminal_updates_redraw_one_line() -> None:
    out = FakeTTY()
    shown = Follow(out, tty=True, colour=False, width=lambda: 80)
    shown.run(_events())
    text = out.getvalue()
    assert shown.status == "completed" and shown.job["progress"] == 100.0
    # progress updates never start a new line; the log line is printed above the bar,
    # which is drawn again under it
    assert text.count("\n") == 2
    first, second, last = text.split("\n")
    assert first.count("\r\x1b[K") == 3 and first.endswith("halfway")
    assert second.startswith("[#####.....]  50.0% running user: writing proc") and last == ""
    assert "100.0% completed" in second


def test_off_a_terminal_each_update_is_a_line() -> None:
    out = io.StringIO()
    Follow(out, tty=False, colour=False).run(_events())
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in out.getvalue() and "deleted 0" in lines[0]
    assert lines[2].endswith("info    halfway")


# -- in a real terminal --------------------------------------------------------------------
procs = pytest.fixture(daemons)


@pytest.mark.e2e
@pytest.mark.skipif(not shutil.which("tmux"), reason="no tmux")
def test_follow_in_an_80_column_terminal(tmp_path: Path, procs: list[DaemonProc]) -> None:
    daemon = make_daemon(tmp_path, people=3000, batch_size=25)
    procs.append(daemon)
    daemon.start()
    wait_job(daemon.client(), first_job(daemon.client())["id"])
    server = f"sluiced-test-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", server, "-f", "/dev/null"]
    command = shlex.join(
        [*SLUICECTL, "--socket", str(daemon.socket), "run", "people", "--type", "full_sync"]
    )
    command += " --follow"
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "80", "-y", "50", f"{command}; sleep 60"],
        check=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TERM": "xterm", "HOME": str(tmp_path)},
    )
    try:
        deadline = time.monotonic() + 60
        screen: list[str] = []
        while time.monotonic() < deadline:
            pane = subprocess.run(
                [*tmux, "capture-pane", "-p", "-J"], capture_output=True, text=True, check=True
            )
            screen = [line.rstrip() for line in pane.stdout.splitlines() if line.strip()]
            if any(line.startswith("job ") for line in screen):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the followed job did not end:\n" + "\n".join(screen))
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    bars = [line for line in screen if line.startswith("[")]
    assert len(bars) == 1, screen  # one line, redrawn: not one line (or two) per update
    assert bars[0].startswith("[####################] 100.0% completed"), screen
    assert all(len(line) < 80 for line in screen if not line.startswith("20")), screen
    assert screen[-1].endswith(": completed")
