"""sluicectl's command line without a daemon: options, help, mistakes, completion."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sluiced
from sluiced.ctl import build_parser, main

CTL = [sys.executable, "-c", "import sys; from sluiced.ctl import main; sys.exit(main())"]


def ctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CTL, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_global_options_after_the_command(tmp_path: Path) -> None:
    """`sluicectl status --json` was a usage error (exit 2); now it tries the socket."""
    gone = str(tmp_path / "nothing.sock")
    for argv in (["status", "--json", "--socket", gone], ["--json", "status", "--socket", gone]):
        result = ctl(*argv, cwd=tmp_path)
        assert result.returncode == 3 and gone in result.stderr, result.stderr
    args = build_parser().parse_args(["--socket", "a", "jobs", "--json", "--url", "http://x"])
    assert (args.socket, args.json, args.url, args.config) == ("a", True, "http://x", None)
    args = build_parser().parse_args(["--socket", "a", "jobs", "--socket", "b"])
    assert args.socket == "b"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"sluicectl {sluiced.__version__}\n"


def test_restart_takes_several_scopes_after_one_flag() -> None:
    args = build_parser().parse_args(["restart", "hr", "--scope", "Watermark", "Escrows"])
    assert args.scope == ["Watermark", "Escrows"] and args.id == "hr"
    args = build_parser().parse_args(["restart", "hr", "--scope", "Full", "--scope", "Escrows"])
    assert args.scope == ["Full", "Escrows"]


def test_help_shows_exit_codes_environment_and_positionals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["interval", "--help"])
    out = capsys.readouterr().out
    assert "usage: sluicectl interval" in out and "JOB INTERVAL" in out
    assert "a job's id" in out and '"1h 30m"' in out
    assert "  3  the daemon could not be reached" in out
    assert "SLUICED_SOCKET" in out and "SLUICED_CONFIG" in out and "NO_COLOR" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--url", "http://127.0.0.1:9", "--token-file", "no-token", "status"],
            "the --token-file no-token",
        ),
        (["create-integration", "no-such.json"], "cannot read the integration file no-such.json"),
        (["schema", "put", "hr", "no-such.json"], "cannot read the schema no-such.json"),
        (["completion"], "the following arguments are required: SHELL"),
        (["completion", "tcsh"], "invalid choice: 'tcsh'"),
        (["interval", "job-1", "inf"], "inf is not a finite duration"),
        (["interval", "job-1", "1e300"], "too long for a duration"),
        (["interval", "job-1", "99999999999d"], "too long for a duration"),
        (["interval", "job-1", "P1M"], "years and months are not durations"),
        (["restart", "hr", "--scope", "Everything"], "invalid choice: 'Everything'"),
    ],
)
def test_ordinary_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], expected: str
) -> None:
    result = ctl("--socket", str(tmp_path / "none.sock"), *argv, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("sluicectl")]) == 1


# -- completion, in the real shells --------------------------------------------------------
def _script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


@pytest.mark.skipif(not shutil.which("bash"), reason="no bash")
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("sluicectl rest", ["restart"]),
        ("sluicectl restart hr --scope W", ["Watermark"]),
        ("sluicectl restart hr --scope Watermark E", ["Escrows"]),
        ("sluicectl restart hr --scope Watermark --f", ["--follow"]),
        ("sluicectl --json restart hr --f", ["--follow"]),
        ("sluicectl schema ", ["get", "put"]),
        ("sluicectl completion ", ["bash", "zsh", "fish"]),
        ("sluicectl status --j", ["--json"]),
    ],
)
def test_bash_completion(
    line: str, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script("bash", capsys)
    words = line.split(" ")
    probe = (
        script
        + "COMP_WORDS=("
        + " ".join(f"'{w}'" for w in words)
        + f"); COMP_CWORD={len(words) - 1}; _sluicectl; printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert set(expected) <= set(out.stdout.split()), out.stdout


@pytest.mark.skipif(not shutil.which("zsh"), reason="no zsh")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["sluicectl", ""], {"restart", "status", "--json"}),
        (["sluicectl", "restart", "hr", "--scope", ""], {"Watermark", "Escrows", "Full"}),
        (["sluicectl", "restart", "hr", "--scope", "Full", ""], {"Watermark", "Escrows"}),
        (["sluicectl", "-c", "x.toml", "schema", ""], {"get", "put"}),
    ],
)
def test_zsh_completion(
    words: list[str], expected: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The script's function in a real zsh, with compsys's builtins stubbed to print."""
    script = _script("zsh", capsys)
    assert script.startswith("#compdef sluicectl")
    stubs = 'compdef() { :; }\ncompadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }\n'
    stubs += "_files() { print -- FILES; }\n"
    call = f"words=({' '.join(repr(w) for w in words)}); CURRENT={len(words)}; _sluicectl\n"
    out = subprocess.run(
        ["zsh", "-f", "-c", stubs + script + call], capture_output=True, text=True, check=True
    )
    assert expected <= set(out.stdout.split()), out.stdout


@pytest.mark.skipif(not shutil.which("fish"), reason="no fish")
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("sluicectl rest", {"restart"}),
        ("sluicectl restart hr --scope ", {"Watermark", "Escrows", "Full"}),
        ("sluicectl restart hr --scope Full ", {"Watermark", "Escrows"}),
        ("sluicectl schema ", {"get", "put"}),
        ("sluicectl status --j", {"--json"}),
    ],
)
def test_fish_completion(
    line: str, expected: set[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    script = tmp_path / "sluicectl.fish"
    script.write_text(_script("fish", capsys))
    out = subprocess.run(
        ["fish", "--no-config", "-c", f"source {script}; complete -C '{line}'"],
        capture_output=True,
        text=True,
        check=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    found = {row.split("\t")[0] for row in out.stdout.splitlines()}
    assert expected <= found, out.stdout
