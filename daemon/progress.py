"""``sluicectl … --follow``: a job's progress line and log, as they arrive.

On a terminal the progress line is redrawn in place: it is fitted to the terminal's
width less one column (a line that fills the last column wraps, and ``\\r`` would then
redraw only its second half), and a log line is printed above it. Elsewhere (a pipe, a
file) each update is a line of its own. Colours are used only on a terminal, and never
when ``NO_COLOR`` is set (https://no-color.org).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from typing import Any, TextIO

__all__ = ["Follow", "log_line", "progress_line", "stats_text", "use_colour"]

_RESET = "\x1b[0m"
_COLOURS = {
    "completed": "\x1b[32m",
    "failed": "\x1b[31m",
    "cancelled": "\x1b[31m",
    "error": "\x1b[31m",
    "critical": "\x1b[31m",
    "warning": "\x1b[33m",
    "paused": "\x1b[33m",
    "running": "\x1b[36m",
}
_CLEAR = "\r\x1b[K"


def use_colour(stream: TextIO) -> bool:
    """Colours on a terminal unless ``NO_COLOR`` is set to anything but the empty string."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _paint(text: str, key: str, colour: bool) -> str:
    code = _COLOURS.get(key.lower())
    return f"{code}{text}{_RESET}" if colour and code else text


_SHORT = {
    "processed": "proc",
    "created": "new",
    "updated": "upd",
    "deleted": "del",
    "disabled": "dis",
    "skipped": "skip",
    "errors": "err",
}


def stats_text(stats: dict[str, int], *, skip_zero: bool = False, short: bool = False) -> str:
    """``processed 10 created 3 ...``; *short*: ``proc 10 new 3``; *skip_zero*: no ``0``s."""
    return " ".join(
        f"{_SHORT.get(k, k) if short else k} {v}" for k, v in stats.items() if v or not skip_zero
    )


def progress_line(data: dict[str, Any], width: int, *, colour: bool = False) -> str:
    """One progress event as a line of at most *width* - 1 visible characters.

    What does not fit gives way in this order: zero counters, half the bar, the counters'
    long names (``proc``, ``new``, ``upd``...), then the end of the line (cut with an
    ellipsis). The visible text never depends on *colour*.
    """
    limit = max(width - 1, 10)
    percent = float(data.get("progress") or 0)
    status = str(data.get("status") or "")
    stage = str(data.get("stage") or "")
    stats = data.get("result") or data.get("stats") or {}
    line = ""
    for bar_width, skip_zero, short in (
        (20, False, False),
        (20, True, False),
        (10, True, False),
        (10, True, True),
    ):
        filled = min(bar_width, int(percent / 100 * bar_width))
        bar = f"[{'#' * filled}{'.' * (bar_width - filled)}]"
        head = f"{bar} {percent:5.1f}% {status}"
        counters = stats_text(stats, skip_zero=skip_zero, short=short)
        line = " ".join(p for p in (head, stage, counters) if p)
        if len(line) <= limit:
            break
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    if colour and status and f"% {status}" in line:
        line = line.replace(f"% {status}", f"% {_paint(status, status, True)}", 1)
    return line


def log_line(data: dict[str, Any], *, colour: bool = False) -> str:
    stamp = str(data.get("timestamp") or "")[:19].replace("T", " ")
    level = str(data.get("level") or "")
    return f"{stamp} {_paint(f'{level:7}', level, colour)} {data.get('message', '')}"


class Follow:
    """Write a job's events to *out*; ``status`` and ``job`` hold what was last seen."""

    def __init__(
        self,
        out: TextIO,
        *,
        tty: bool,
        colour: bool,
        width: Callable[[], int] = lambda: shutil.get_terminal_size().columns,
    ) -> None:
        self.out, self.tty, self.colour, self.width = out, tty, colour, width
        self.status = "unknown"
        self.job: dict[str, Any] = {}
        self._shown = ""  # the progress line on the screen, if any

    def run(self, events: Iterable[tuple[str, Any]]) -> None:
        for event, data in events:
            if event == "progress":
                self.job = data
                self._progress(data)
            elif event == "log":
                self._log(data)
            elif event == "error":  # lines the daemon no longer has, say
                self._log({"level": "warning", "message": data.get("message", "")})
            elif event == "end":
                self.status = data["status"]
        if self._shown:
            self.out.write("\n")
            self.out.flush()

    def _progress(self, data: dict[str, Any]) -> None:
        if not self.tty:
            self.out.write(progress_line(data, 10_000) + "\n")
        else:
            self._shown = progress_line(data, self.width(), colour=self.colour)
            self.out.write(_CLEAR + self._shown)
        self.out.flush()

    def _log(self, data: dict[str, Any]) -> None:
        line = log_line(data, colour=self.colour)
        if self.tty and self._shown:
            line = _CLEAR + line + "\n" + self._shown
        else:
            line += "\n"
        self.out.write(line)
        self.out.flush()
