"""``sluicectl``: the client of the control socket.

Every API operation is a command; tables for people, ``--json`` for scripts.

Exit status: 0 success; 1 the daemon refused the request (the error is printed), or a
followed job did not complete; 2 usage (a bad option or value, a file that cannot be
read: one line on stderr); 3 the daemon could not be reached.

The global options (``--socket``, ``-c``, ``--url``, ``--token-file``, ``--json``) go
before or after the command. The socket is ``--socket``, else ``$SLUICED_SOCKET``, else the ``control_socket`` of
the config (``-c``, ``$SLUICED_CONFIG``, ``/etc/sluiced/config.toml``), else
``/run/sluiced/control.sock``. ``--url`` (with ``--token-file``) talks TCP instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..cliargs import (
    GlobalOption,
    HelpFormatter,
    add_global_options,
    add_version,
    commands,
    silence_stdout,
    spread_global_options,
)
from ..completion import SHELLS, completion_script
from ..models import RESET_SCOPES
from ._changes import add_arguments as add_change_arguments
from ._changes import cmd_changes
from ._client import DEFAULT_SOCKET, Client, Refused, Unreachable, UsageError
from ._command import FOLLOW_HELP, Command, Session
from ._integrations import (
    cmd_create,
    cmd_delete,
    cmd_escrow,
    cmd_escrows,
    cmd_health,
    cmd_integration,
    cmd_integrations,
    cmd_metrics,
    cmd_pause,
    cmd_reload,
    cmd_restart,
    cmd_schema,
    cmd_start,
    cmd_status,
    cmd_stop,
    cmd_validate,
)
from ._jobs import (
    cmd_delete_job,
    cmd_interval,
    cmd_job,
    cmd_jobs,
    cmd_plan,
    cmd_provision,
    cmd_resume,
    cmd_run,
    cmd_stop_all,
    cmd_stop_job,
)
from ._output import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE

__all__ = ["build_parser", "main", "plugin_commands"]

EPILOG = """exit status:
  0  success
  1  the daemon refused the request (the error is printed), or a followed job
     did not complete
  2  usage: a bad option or value, or a file that cannot be read
  3  the daemon could not be reached

environment:
  SLUICED_SOCKET  the control socket, when --socket is not given
  SLUICED_CONFIG  the daemon's config (to find its control_socket), when -c is
                  not given; else /etc/sluiced/config.toml
  NO_COLOR        when set, --follow prints no colours (they are used only on a
                  terminal anyway)

Global options go before or after the command: sluicectl status --json."""

GLOBAL_OPTIONS = (
    GlobalOption(
        ("--socket",),
        {"help": f"control socket (default: from the config, or {DEFAULT_SOCKET})"},
    ),
    GlobalOption(("-c", "--config"), {"help": "the daemon's config, to find its socket"}),
    GlobalOption(("--url",), {"help": "talk TCP instead, e.g. http://127.0.0.1:8765"}),
    GlobalOption(("--token-file",), {"help": "a file holding the bearer token for --url"}),
    GlobalOption(("--json",), {"action": "store_true", "help": "print JSON for scripts"}),
)

#: Positionals by name: (metavar, help).
POSITIONALS = {
    "id": ("INTEGRATION", "an integration's id (sluicectl integrations lists them)"),
    "job": ("JOB", "a job's id (sluicectl jobs lists them)"),
    "file": ("FILE", "the integration as JSON (the shape of GET /api/sync/integrations/ID)"),
    "interval": ("INTERVAL", 'the new interval: "40m", "1h 30m", "PT40M" or seconds'),
    "object_id": ("OBJECT", "the source object's id"),
}


def plugin_commands(config: str | None = None) -> Mapping[str, Command]:
    """The commands of the plugins, loaded as the daemon loads them: every entry point
    of group ``sluiced`` but the config's ``disabled_plugins`` (the config is *config*,
    else ``$SLUICED_CONFIG``, else ``/etc/sluiced/config.toml``, if it can be read).

    Raises:
        RegistryError: two plugins add one command.
    """
    from ..config import load_config
    from ..errors import ConfigError
    from ..pluginmanager import build_plugin_manager, ctl_commands

    path = config or os.environ.get("SLUICED_CONFIG") or "/etc/sluiced/config.toml"
    disabled: tuple[str, ...] = ()
    if Path(path).is_file():
        # An invalid config: the daemon refuses it too; sluicectl offers every command.
        with contextlib.suppress(ConfigError, OSError):
            disabled = tuple(load_config(path).daemon.disabled_plugins)
    return ctl_commands(build_plugin_manager(disabled=disabled))


def _plugin_run(command: Command) -> Callable[[Client, argparse.Namespace], int]:
    def run(client: Client, args: argparse.Namespace) -> int:
        return command.run(Session(client, args), args)

    return run


def _config_of(argv: Sequence[str]) -> str | None:
    """The ``-c``/``--config`` of a command line, before it is parsed (the plugins it
    disables add no commands)."""
    for i, arg in enumerate(argv):
        if arg in ("-c", "--config") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def build_parser(commands: Mapping[str, Command] | None = None) -> argparse.ArgumentParser:
    """sluicectl's command line, with *commands* of plugins (default: those of
    :func:`plugin_commands`).

    Raises:
        ValueError: a plugin's command has the name of one of sluicectl's own.
    """
    parser = argparse.ArgumentParser(
        prog="sluicectl",
        description="Control a running sluiced.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    add_version(parser)
    add_global_options(parser, GLOBAL_OPTIONS, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, fn: Callable[[Client, argparse.Namespace], int], help_text: str, *args: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=HelpFormatter,
        )
        for a in args:
            metavar, what = POSITIONALS[a]
            p.add_argument("id" if a == "job" else a, metavar=metavar, help=what)
        p.set_defaults(fn=fn)
        return p

    follow_help = FOLLOW_HELP
    add("status", cmd_status, "sync status of every integration")
    add("integrations", cmd_integrations, "list integrations")
    add("integration", cmd_integration, "one integration as JSON", "id")
    p = add("start", cmd_start, "resume a paused integration, lift quarantine, run now", "id")
    p.add_argument("--full", action="store_true", help="run a full sync")
    p.add_argument("--no-run", action="store_true", help="only resume the schedule")
    p.add_argument("--follow", action="store_true", help=follow_help)
    add("pause", cmd_pause, "pause an integration (checkpoint kept)", "id")
    add("stop", cmd_stop, "stop an integration's jobs and schedule", "id")
    p = add("restart", cmd_restart, "reset state and sync from scratch", "id")
    p.add_argument(
        "--scope",
        action="extend",
        nargs="+",
        choices=RESET_SCOPES,
        metavar="SCOPE",
        help=f"what to reset, one or more of {', '.join(RESET_SCOPES)} "
        "(default QuarantineState, Watermark, Escrows)",
    )
    p.add_argument("--follow", action="store_true", help=follow_help)
    add("create-integration", cmd_create, "create an integration from a JSON file", "file")
    add("delete-integration", cmd_delete, "stop an integration and delete all its state", "id")
    p = add("jobs", cmd_jobs, "list jobs")
    p.add_argument("--status", action="append", help="only jobs with this status (repeatable)")
    p.add_argument("--integration", metavar="INTEGRATION", help="only this integration's jobs")
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    p = add("job", cmd_job, "one job with its log", "job")
    p.add_argument("--follow", action="store_true", help=follow_help)
    p = add("run", cmd_run, "create a job", "id")
    p.add_argument(
        "--type",
        default="incremental_sync",
        choices=["full_sync", "incremental_sync", "selective_sync"],
    )
    p.add_argument("--entity-types", nargs="+", metavar="TYPE")
    p.add_argument("--force", action="store_true", help="queue even if a job is active")
    p.add_argument("--follow", action="store_true", help=follow_help)
    for command in (commands if commands is not None else plugin_commands()).values():
        if command.name in sub.choices:
            raise ValueError(f"a plugin's command {command.name!r} is sluicectl's own")
        p = add(command.name, _plugin_run(command), command.help)
        command.arguments(p)
    p = add("resume", cmd_resume, "resume a paused or failed job", "job")
    p.add_argument("--follow", action="store_true", help=follow_help)
    p = add("stop-job", cmd_stop_job, "stop a job (gracefully, or now with --force)", "job")
    p.add_argument("--force", action="store_true")
    p = add("stop-all", cmd_stop_all, "stop every running job, on every node")
    p.add_argument("--integration", help="only this integration's jobs")
    add("interval", cmd_interval, "change the interval of a job's integration", "job", "interval")
    p = add("delete-job", cmd_delete_job, "delete a finished job", "job")
    p.add_argument("--delete-logs", action="store_true")
    p = add("schema", cmd_schema, "get or replace an integration's schema")
    p.add_argument("action", choices=["get", "put"], help="get prints it; put replaces it")
    p.add_argument("id", metavar="INTEGRATION", help=POSITIONALS["id"][1])
    p.add_argument("file", nargs="?", metavar="FILE", help="for put: the schema as JSON")
    add(
        "escrows",
        cmd_escrows,
        "an integration's escrowed objects: reason, attempts, next retry",
        "id",
    )
    p = add(
        "changes",
        cmd_changes,
        "an integration's provisioning log: what each run changed, newest first",
        "id",
    )
    add_change_arguments(p)
    p = add("escrow", cmd_escrow, "retry one escrowed object now, or drop it")
    p.add_argument("action", choices=["retry", "drop"])
    p.add_argument("id", metavar="INTEGRATION", help=POSITIONALS["id"][1])
    p.add_argument("entity_type", metavar="ENTITY_TYPE", help="the object's entity type")
    p.add_argument("object_id", metavar="OBJECT", help="the escrowed object's source id")
    add(
        "validate",
        cmd_validate,
        "check an integration's source and target (credentials, paths)",
        "id",
    )
    p = add("plan", cmd_plan, "what a run would change, applying nothing (a dry run)", "id")
    p.add_argument("--incremental", action="store_true", help="plan an incremental run")
    p.add_argument("--limit", type=int, default=100, help="changes to print (default 100)")
    p = add(
        "provision",
        cmd_provision,
        "sync one source object now, with a trace of each step",
        "id",
        "object_id",
    )
    p.add_argument("--entity-type", help="the object's entity type (default: the first)")
    p.add_argument("--dry-run", action="store_true", help="trace only; write nothing")
    add("reload", cmd_reload, "re-read the daemon's config")
    add("health", cmd_health, "is the daemon up?")
    add("metrics", cmd_metrics, "Prometheus metrics")
    p = sub.add_parser(
        "completion",
        help="print a completion script: "
        'eval "$(sluicectl completion bash)", or zsh, or fish (| source)',
    )
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    spread_global_options(parser, GLOBAL_OPTIONS)
    return parser


def _command_of(words: Sequence[str]) -> str | None:
    """The command a command line names, before it is parsed (None: none yet)."""
    with_value = {
        flag
        for option in GLOBAL_OPTIONS
        if option.kwargs.get("action") != "store_true"
        for flag in option.flags
    }
    after_flag = False
    for word in words:
        if after_flag:
            after_flag = False
        elif word in with_value:
            after_flag = True
        elif not word.startswith("-"):
            return word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser({})
    own = {name for name, _ in commands(parser)} - {"completion"}
    if _command_of(words) not in own:  # a plugin's command, help or completion
        try:
            parser = build_parser(plugin_commands(_config_of(words)))
        except Exception as exc:  # a broken or clashing plugin: the own commands still work
            print(f"sluicectl: plugins: {type(exc).__name__}: {exc}", file=sys.stderr)
    args = parser.parse_args(words)
    try:
        if args.command == "completion":
            print(completion_script(parser, args.shell), end="")
            return EXIT_OK
        client = Client(args)
        try:
            return int(args.fn(client, args))
        finally:
            client.close()
    except UsageError as exc:
        print(f"sluicectl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unreachable as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNREACHABLE
    except Refused as exc:
        print(f"sluicectl: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sluicectl jobs | head -1`: the reader has what it wanted
        silence_stdout()
        return EXIT_OK
