"""Running under the systemd unit: the directories systemd makes for it are the
defaults, and the unit runs what the README installs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluiced.config import parse_config

from .daemonproc import SLUICED, DaemonProc, daemons, first_job, wait_job, write_people

ROOT = Path(__file__).resolve().parent.parent
procs = pytest.fixture(daemons)


@pytest.fixture
def no_systemd_dirs(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    yield monkeypatch


def test_defaults_are_the_directories_systemd_made(
    tmp_path: Path, no_systemd_dirs: pytest.MonkeyPatch
) -> None:
    no_systemd_dirs.setenv("STATE_DIRECTORY", "/var/lib/sluiced:/var/lib/other")
    no_systemd_dirs.setenv("RUNTIME_DIRECTORY", "/run/sluiced")
    d = parse_config({}, path=tmp_path / "config.toml").daemon
    assert d.state_dir == Path("/var/lib/sluiced")
    assert d.control_socket == Path("/run/sluiced/control.sock")
    assert d.store_path == Path("/var/lib/sluiced/sluiced.sqlite3")


def test_the_config_wins_over_systemd(tmp_path: Path, no_systemd_dirs: pytest.MonkeyPatch) -> None:
    no_systemd_dirs.setenv("STATE_DIRECTORY", "/var/lib/sluiced")
    no_systemd_dirs.setenv("RUNTIME_DIRECTORY", "/run/sluiced")
    data = {"daemon": {"state_dir": "st", "control_socket": "/tmp/x.sock"}}
    d = parse_config(data, path=tmp_path / "config.toml").daemon
    assert d.state_dir == tmp_path / "st" and d.control_socket == Path("/tmp/x.sock")


def test_without_systemd_the_state_is_next_to_the_config(
    tmp_path: Path, no_systemd_dirs: pytest.MonkeyPatch
) -> None:
    no_systemd_dirs.setenv("STATE_DIRECTORY", "")
    d = parse_config({}, path=tmp_path / "config.toml").daemon
    assert d.state_dir == tmp_path / "state"
    assert d.control_socket == tmp_path / "state" / "control.sock"


class UnitDaemon(DaemonProc):
    @property
    def socket(self) -> Path:
        return self.root / "run" / "control.sock"


@pytest.mark.e2e
def test_the_daemon_keeps_its_state_where_systemd_says(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    """The config of the README (no state_dir, no control_socket) in a read-only
    /etc/sluiced: the store goes to $STATE_DIRECTORY, the socket to $RUNTIME_DIRECTORY."""
    etc, state, run = tmp_path / "etc", tmp_path / "state", tmp_path / "run"
    for d in (etc, state, run):
        d.mkdir()
    write_people(etc / "people.jsonl", 10)
    (etc / "config.toml").write_text(
        f"""
[daemon]
log_format = "json"
[integrations.people]
entity_types = ["user"]
interval = "1h"
jitter = "0s"
[integrations.people.source]
connector = "jsonl"
paths = {{ user = "people.jsonl" }}
[integrations.people.target]
connector = "jsonl"
paths = {{ user = "{state}/out.jsonl" }}
"""
    )
    proc = UnitDaemon(tmp_path)
    proc.env.update(STATE_DIRECTORY=str(state), RUNTIME_DIRECTORY=str(run))
    procs.append(proc)
    proc.start(command=[*SLUICED, "run", "-c", str(etc / "config.toml")])
    wait_job(proc.client(), first_job(proc.client())["id"])
    assert proc.stop() == 0
    assert (state / "sluiced.sqlite3").is_file() and (state / "out.jsonl").is_file()
    # Nothing written next to the config (read-only under ProtectSystem=strict).
    assert sorted(p.name for p in etc.iterdir()) == ["config.toml", "people.jsonl"]


def _unit(name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, value)
    return out


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Running under systemd", 1)[1].split("\n## ", 1)[0]


def test_the_unit_runs_what_the_readme_installs() -> None:
    unit = _unit("sluiced.service")
    section = _readme_section()
    venv = re.search(r"python3 -m venv (\S+)", section)
    assert venv is not None, "the README installs into a virtual environment"
    assert unit["ExecStart"].startswith(f"{venv.group(1)}/bin/sluiced run ")
    # Reload runs as root ("+"): it may use the control socket whoever owns it.
    assert unit["ExecReload"].startswith(f"+{venv.group(1)}/bin/sluicectl ")
    assert "/run/sluiced/control.sock" in unit["ExecReload"]
    assert _unit("sluiced.socket")["ListenStream"] == "/run/sluiced/control.sock"
    assert unit["StateDirectory"] == "sluiced" and unit["RuntimeDirectory"] == "sluiced"
