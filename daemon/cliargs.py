"""What ``sluiced`` and ``sluicectl`` share on their command lines.

Global options are accepted before *and* after the command (``sluicectl status --json``,
``sluiced -c FILE jobs``): each is added to the top-level parser with its default and to
every command's parser with ``argparse.SUPPRESS`` as its default, so a command's parser
only sets what was written after the command and never resets what came before it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import __version__

__all__ = [
    "GlobalOption",
    "HelpFormatter",
    "add_global_options",
    "add_version",
    "commands",
    "silence_stdout",
    "spread_global_options",
]


@dataclass(frozen=True)
class GlobalOption:
    """One option accepted anywhere on the command line (``add_argument``'s arguments)."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout (exit codes, environment) as written."""


def add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"{parser.prog} {__version__}")


def add_global_options(
    parser: argparse.ArgumentParser, options: Sequence[GlobalOption], *, top: bool
) -> None:
    """Add *options* to *parser*: with their defaults at the top, suppressed below it."""
    group = parser.add_argument_group("global options (before or after the command)")
    for option in options:
        kwargs = dict(option.kwargs)
        if not top:
            kwargs["default"] = argparse.SUPPRESS
        group.add_argument(*option.flags, **kwargs)


def commands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command parser below *parser*, nested ones (``config show``) as ``config show``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for nested, subsub in commands(sub):
                    yield f"{name} {nested}", subsub


def spread_global_options(parser: argparse.ArgumentParser, options: Sequence[GlobalOption]) -> None:
    """Add *options* to every command parser below *parser* (see the module docstring)."""
    for _, sub in commands(parser):
        add_global_options(sub, options, top=False)


def silence_stdout() -> None:
    """After a ``BrokenPipeError`` (``sluicectl jobs | head -1``): end quietly.

    Python would print a second traceback when it flushes stdout at exit; stdout is
    pointed at ``/dev/null`` so that this flush succeeds.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
