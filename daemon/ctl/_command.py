"""What a plugin adds to ``sluicectl`` (hook ``sluiced_ctl_commands``): a
:class:`Command`, which declares its arguments and runs with a :class:`Session`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._client import Client, UsageError
from ._output import created, follow, show

__all__ = ["FOLLOW_HELP", "Command", "Session"]

#: The help of ``--follow``, as every command that creates a job words it.
FOLLOW_HELP = "show live progress and the log until the job ends"


class Session:
    """One run of a command: the daemon to talk to and the parsed command line
    (``args``; the global options ``--json``, ``--socket``, ... included)."""

    def __init__(self, client: Client, args: argparse.Namespace) -> None:
        self._client = client
        self.args = args

    def request(self, method: str, path: str, body: Any = None, params: Any = None) -> Any:
        """The daemon's answer to one request (JSON decoded, or the text).

        Raises (each ends ``sluicectl`` with its exit status and message):
            Refused: the daemon answered an error (exit 1).
            Unreachable: the daemon could not be reached (exit 3).
        """
        return self._client.request(method, path, body, params)

    def created(self, job_id: str, answer: Any) -> int:
        """After a job was created: follow it if the command line says ``--follow``
        (exit 0 only if it completed), else print *answer*; returns the exit status."""
        return created(self._client, self.args, job_id, answer)

    def follow(self, job_id: str) -> int:
        """Show the job's progress and log until it ends; exit 0 only if it completed."""
        return follow(self._client, self.args, job_id)

    def show(self, data: Any, human: Callable[[Any], str] | None = None) -> None:
        """Print *data*: as JSON with ``--json`` (or without *human*), else as *human*
        writes it."""
        show(self.args, data, human)

    @staticmethod
    def usage(message: str) -> UsageError:
        """The error to raise for a mistake on the command line: ``sluicectl:
        MESSAGE`` on stderr, exit 2."""
        return UsageError(message)


@dataclass(frozen=True, kw_only=True)
class Command:
    """A ``sluicectl`` subcommand: ``name``, one line of ``help``, ``arguments`` to
    declare its arguments on its parser (argparse), and ``run`` to do it, returning the
    exit status (0 success, 1 refused, 2 usage)."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Session, argparse.Namespace], int]
