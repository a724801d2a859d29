"""Shell completion for ``sluiced`` and ``sluicectl``, generated from their parsers.

``completion_script(parser, shell)`` writes a bash, zsh or fish script that completes
the commands, every command's options, the values of options and positionals that have
a fixed set (``restart --scope``, ``schema get|put``), and file names where a file is
expected. The scripts are generated, so they cannot fall behind the parsers.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field

from .cliargs import commands

__all__ = ["SHELLS", "completion_script"]

SHELLS = ("bash", "zsh", "fish")


@dataclass
class _Command:
    name: str
    help: str
    flags: list[str] = field(default_factory=list)
    choices: dict[str, list[str]] = field(default_factory=dict)  # flag -> its values
    several: list[str] = field(default_factory=list)  # flags of choices taking several values
    words: list[str] = field(default_factory=list)  # positionals' fixed values, subcommands


@dataclass
class _Shape:
    prog: str
    globals: list[str]
    takes_value: list[str]  # global flags followed by a value
    files: list[str]  # global flags followed by a file name
    commands: list[_Command]

    @property
    def after(self) -> list[str]:
        """The global options that may follow a command (not ``--version``)."""
        return [g for g in self.globals if g != "--version"]


def _shape(parser: argparse.ArgumentParser) -> _Shape:
    top = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    takes = [f for a in top if a.nargs != 0 for f in a.option_strings]
    files = [f for a in top if a.nargs != 0 and a.dest != "url" for f in a.option_strings]
    globals_ = {f for a in top for f in a.option_strings}
    out = []
    helps = {
        c.dest: c.help or ""
        for a in parser._actions
        if isinstance(a, argparse._SubParsersAction)
        for c in a._choices_actions
    }
    for name, sub in commands(parser):
        if " " in name:
            continue
        cmd = _Command(name, helps.get(name, ""))
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                cmd.words += list(action.choices)
            elif not action.option_strings:
                cmd.words += [str(c) for c in action.choices or ()]
            elif action.dest != "help" and not set(action.option_strings) & globals_:
                cmd.flags += action.option_strings
                if action.choices:
                    for flag in action.option_strings:
                        cmd.choices[flag] = [str(c) for c in action.choices]
                        if action.nargs in ("+", "*"):
                            cmd.several.append(flag)
        out.append(cmd)
    return _Shape(parser.prog, sorted(globals_ | {"--help"}), takes, files, out)


def _words(values: list[str]) -> str:
    return shlex.quote(" ".join(values))


def _bash(s: _Shape) -> str:
    fn = "_" + s.prog
    lines = [
        f"{fn}() {{",
        '    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} i command=""',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        f"        case ${{COMP_WORDS[i]}} in {'|'.join(s.takes_value)}) ((i++));; -*) ;;"
        " *) command=${COMP_WORDS[i]}; break;; esac",
        "    done",
        '    case "$prev" in',
        f'        {"|".join(s.files)}) COMPREPLY=($(compgen -f -- "$cur")); return;;',
        "    esac",
        '    case "$command $prev" in',
    ]
    for c in s.commands:
        for flag, values in c.choices.items():
            lines.append(
                f'        "{c.name} {flag}") COMPREPLY=($(compgen -W {_words(values)} -- "$cur"));'
                " return;;"
            )
    several = [(c, f) for c in s.commands for f in c.several]
    if several:  # `restart ID --scope Watermark <TAB>`: more values of the last flag
        lines += [
            "    esac",
            "    for ((i = COMP_CWORD - 1; i > 0; i--)); do [[ ${COMP_WORDS[i]} == -* ]] && break; done",
            '    [[ $cur == -* ]] || case "$command ${COMP_WORDS[i]}" in',
        ]
        for c, flag in several:
            lines.append(
                f'        "{c.name} {flag}") COMPREPLY=($(compgen -W {_words(c.choices[flag])} -- "$cur"));'
                " return;;"
            )
    lines += [
        "    esac",
        '    if [ -z "$command" ]; then',
        f'        COMPREPLY=($(compgen -W {_words(s.globals + [c.name for c in s.commands])} -- "$cur"))',
        "        return",
        "    fi",
        "    case $command in",
    ]
    for c in s.commands:
        words = c.flags + c.words + s.after
        lines.append(f'        {c.name}) COMPREPLY=($(compgen -W {_words(words)} -- "$cur"));;')
    lines += ["    esac", "}", f"complete -o default -F {fn} {s.prog}", ""]
    return "\n".join(lines)


def _zsh(s: _Shape) -> str:
    fn = "_" + s.prog
    lines = [
        f"#compdef {s.prog}",
        f"{fn}() {{",
        '    local i command="" prev=${words[CURRENT-1]}',
        "    for ((i = 2; i < CURRENT; i++)); do",
        f"        case ${{words[i]}} in ({'|'.join(s.takes_value)}) ((i++));; (-*) ;;"
        " (*) command=${words[i]}; break;; esac",
        "    done",
        '    case "$prev" in',
        f"        ({'|'.join(s.files)}) _files; return;;",
        "    esac",
        '    case "$command $prev" in',
    ]
    for c in s.commands:
        for flag, values in c.choices.items():
            lines.append(f'        ("{c.name} {flag}") compadd -- {" ".join(values)}; return;;')
    several = [(c, f) for c in s.commands for f in c.several]
    if several:  # `restart ID --scope Watermark <TAB>`: more values of the last flag
        lines += [
            "    esac",
            "    for ((i = CURRENT - 1; i > 1; i--)); do [[ ${words[i]} == -* ]] && break; done",
            '    [[ ${words[CURRENT]} == -* ]] || case "$command ${words[i]}" in',
        ]
        for c, flag in several:
            lines.append(
                f'        ("{c.name} {flag}") compadd -- {" ".join(c.choices[flag])}; return;;'
            )
    lines += [
        "    esac",
        '    if [[ -z "$command" ]]; then',
        f"        compadd -- {' '.join(s.globals + [c.name for c in s.commands])}",
        "        return",
        "    fi",
        "    case $command in",
    ]
    for c in s.commands:
        lines.append(f"        ({c.name}) compadd -- {' '.join(c.flags + c.words + s.after)};;")
    lines += ["    esac", "    _files", "}", f"compdef {fn} {s.prog}", ""]
    return "\n".join(lines)


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_flag(flag: str) -> str:
    return f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"


def _fish(s: _Shape) -> str:
    p = s.prog
    lines = []
    names = " ".join(c.name for c in s.commands)
    for c in s.commands:
        lines.append(
            f"complete -c {p} -f -n 'not __fish_seen_subcommand_from {names}' "
            f"-a {c.name} -d {_fish_quote(c.help)}"
        )
    for flag in s.globals:
        if flag in ("--help", "-h"):
            continue
        value = " -r -F" if flag in s.files else (" -x" if flag in s.takes_value else "")
        lines.append(f"complete -c {p} {_fish_flag(flag)}{value}")
    for c in s.commands:
        when = f"-n '__fish_seen_subcommand_from {c.name}'"
        for flag in c.flags:
            values = c.choices.get(flag)
            extra = f" -x -a {_fish_quote(' '.join(values))}" if values else ""
            lines.append(f"complete -c {p} {when} {_fish_flag(flag)}{extra}")
        if c.words:
            lines.append(f"complete -c {p} {when} -f -a {_fish_quote(' '.join(c.words))}")
        for flag in c.several:  # more values after `--scope Watermark`
            seen = (
                f"__fish_seen_subcommand_from {c.name}; and __fish_seen_argument {_fish_flag(flag)}"
            )
            more = _fish_quote(" ".join(c.choices[flag]))
            lines.append(f"complete -c {p} -n {_fish_quote(seen)} -f -a {more}")
    return "\n".join(lines) + "\n"


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of *parser*'s program for *shell* (one of ``SHELLS``)."""
    shape = _shape(parser)
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](shape)
