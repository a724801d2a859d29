"""The README's command blocks run as written, in order, in a scratch copy of the repository.

Every ```` ```sh ```` block of README.md is run line by line (a line ending in ``\\`` goes
on), each line by ``bash`` in the copy's root, and must exit 0. An HTML comment right
before a block says how the test treats it, with items separated by ``;``:

- ``skip (REASON)``: the block is not run (it installs system-wide, drives systemd, or
  rewrites tracked files).
- ``skip=COMMAND (REASON)``: lines that start with COMMAND are not run.
- ``background=COMMAND``: lines that start with COMMAND are started in the background
  (as in "another shell"), like a line that ends in ``&``; they run until the test ends.
- ``set NAME=COMMAND``: before the block, NAME in its lines is replaced by what COMMAND
  prints (a placeholder such as ``JOB_ID``).
- ``expect "TEXT" ...``: the output of the block's lines contains each TEXT.

A background process is waited for: until it accepts connections on its ``--port``, and
the daemon (``make run``) until it completed its first job. The ports the README names
(9999 for the fake Stash, 8080 for scim2-server) are replaced, in the blocks and in the
copy's ``config.toml.example``, by free ones. ``make`` uses the test's own virtual
environment as ``.venv`` and is told not to set it up again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
#: The ports the README's walkthroughs use, replaced by free ones.
README_PORTS = (9999, 8080)
LINE_TIMEOUT = 60.0
READY_TIMEOUT = 30.0
FENCE = re.compile(
    r"(?:<!-- readme-test: (?P<directive>.*?) -->\n)?^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$",
    re.S | re.M,
)
ITEM_SPLIT = re.compile(r";\s*(?=(?:skip|background|set|expect)\b)")


@dataclass
class Block:
    """One ```sh block of the README and what its directive says."""

    line: int
    lines: list[str]
    skip: str | None = None
    skip_lines: list[str] = field(default_factory=list)
    background: list[str] = field(default_factory=list)
    sets: dict[str, str] = field(default_factory=dict)
    expect: list[str] = field(default_factory=list)


def parse_directive(block: Block, text: str) -> None:
    for item in ITEM_SPLIT.split(text.strip()):
        item = item.strip()
        if m := re.fullmatch(r"skip \((.+)\)", item):
            block.skip = m.group(1)
        elif m := re.fullmatch(r"skip=(.+?) \((.+)\)", item):
            block.skip_lines.append(m.group(1))
        elif item.startswith("background="):
            block.background.append(item.removeprefix("background="))
        elif m := re.fullmatch(r"set ([A-Z_]+)=(.+)", item):
            block.sets[m.group(1)] = m.group(2)
        elif item.startswith("expect "):
            block.expect += shlex.split(item.removeprefix("expect "))
        else:
            raise AssertionError(f"README.md:{block.line}: unknown readme-test item {item!r}")


def command_lines(body: str) -> list[str]:
    """The block's commands: continuation lines joined, blank and comment lines left out."""
    out: list[str] = []
    pending = ""
    for raw in body.splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line and not line.startswith("#"):
            out.append(line)
    return out


def readme_blocks(text: str) -> list[Block]:
    blocks = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start("body"))
        assert m.group("lang") not in ("bash", "shell", "console", "shell-session"), (
            f"README.md:{line}: write shell commands in ```sh blocks (this test runs them)"
        )
        if m.group("lang") != "sh":
            continue
        block = Block(line=line, lines=command_lines(m.group("body")))
        if m.group("directive"):
            parse_directive(block, m.group("directive"))
        blocks.append(block)
    return blocks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scratch_copy(dst: Path) -> None:
    """The repository's files (not its environment, state or caches) in ``dst``."""
    shutil.copytree(
        REPO,
        dst,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    (dst / ".venv").symlink_to(Path(sys.prefix))


def without_comment(line: str) -> str:
    """The line without a trailing ``# comment`` (quotes respected)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    # Cut at the comment's position: re-find the last token in the raw line.
    if not tokens:
        return ""
    cut = line.find("#", line.rfind(tokens[-1]) + len(tokens[-1]))
    return (line if cut < 0 else line[:cut]).rstrip()


class Session:
    """A newcomer's shells: commands in the copy's root, background processes kept."""

    def __init__(self, root: Path, ports: dict[int, int]) -> None:
        self.root = root
        self.ports = ports
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICED_")}
        self.env.pop("NO_COLOR", None)

    def localise(self, line: str) -> str:
        for old, new in self.ports.items():
            line = re.sub(rf"\b{old}\b", str(new), line)
        # make: the test's environment is .venv already; never set it up again.
        return re.sub(r"^make\b", "make -o .venv/.installed", line)

    def run(self, line: str) -> str:
        with subprocess.Popen(
            ["bash", "-o", "pipefail", "-c", self.localise(line)],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ) as proc:
            try:
                raw, _ = proc.communicate(timeout=LINE_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the line's children too
                raw, _ = proc.communicate()
                out = raw.decode(errors="replace")
                raise AssertionError(f"`{line}` still ran after {LINE_TIMEOUT} s:\n{out}") from None
        out = raw.decode(errors="replace")
        assert proc.returncode == 0, f"`{line}` exited {proc.returncode}:\n{out}"
        return out

    def start(self, line: str) -> None:
        command = self.localise(without_comment(line).removesuffix("&").strip())
        log = self.root / f"background-{len(self.procs)}.log"
        with log.open("wb") as f:
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=self.root,
                env=self.env,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append((line, proc, log))
        deadline = time.monotonic() + READY_TIMEOUT
        port = re.search(r"--port (\d+)", command)
        daemon = re.search(r"\bmake\b.*\brun\b|\bsluiced run\b", command)
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"`{line}` exited:\n{log.read_text()}"
            if port and self.accepts(int(port.group(1))):
                return
            if daemon and "completed" in log.read_text(errors="replace"):
                return
            if not port and not daemon:
                return
            time.sleep(0.05)
        raise AssertionError(f"`{line}` did not come up:\n{log.read_text()}")

    @staticmethod
    def accepts(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Stop every background process group (SIGTERM: the daemon checkpoints), then
        SIGKILL what is left."""
        for signum in (signal.SIGTERM, signal.SIGKILL):
            for _, proc, _ in reversed(self.procs):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signum)
            deadline = time.monotonic() + 20
            for _, proc, _ in self.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.1, deadline - time.monotonic()))
            if all(group_gone(proc.pid) for _, proc, _ in self.procs):
                return


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_directives_are_read() -> None:
    text = """
<!-- readme-test: background=make run; skip=make test (it runs this test); expect "a b" "c" -->
```sh
make run     # the daemon
make test
curl -X POST http://x \\
     -d '{}'
```

```toml
x = 1
```

<!-- readme-test: skip (installs system-wide) -->
```sh
systemctl start sluiced
```
"""
    first, second = readme_blocks(text)
    assert first.lines == [
        "make run     # the daemon",
        "make test",
        "curl -X POST http://x       -d '{}'",
    ]
    assert first.background == ["make run"]
    assert first.skip_lines == ["make test"]
    assert first.expect == ["a b", "c"]
    assert second.skip == "installs system-wide"
    assert without_comment("make run     # the daemon") == "make run"
    assert without_comment("echo '#x' &  # a comment") == "echo '#x' &"


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    for program in ("curl", "sqlite3", "make"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is not installed (.ci/system-packages installs it)")
    blocks = readme_blocks(README.read_text())
    root = tmp_path / "sluiced"
    scratch_copy(root)
    ports = {old: free_port() for old in README_PORTS}
    config = root / "config.toml.example"
    text = config.read_text()
    for old, new in ports.items():
        text = re.sub(rf"\b{old}\b", str(new), text)
    config.write_text(text)

    session = Session(root, ports)
    ran = 0
    try:
        for block in blocks:
            if block.skip is not None:
                continue
            values = {name: session.run(cmd).strip() for name, cmd in block.sets.items()}
            output = ""
            for line in block.lines:
                for name, value in values.items():
                    line = line.replace(name, value)
                if any(line.startswith(p) for p in block.skip_lines):
                    continue
                if any(line.startswith(p) for p in block.background) or without_comment(
                    line
                ).endswith("&"):
                    session.start(line)
                else:
                    output += session.run(line)
                ran += 1
            for text in block.expect:
                assert text in output, f"README.md:{block.line}: no {text!r} in:\n{output}"
    finally:
        session.close()
    assert ran >= 10, "the README's walkthroughs lost their command blocks"
