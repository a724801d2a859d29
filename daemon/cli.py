"""``sluiced``: the daemon and its admin commands.

    sluiced run [-c CONFIG] [--once] [--fresh-store]
                                         run the daemon in the foreground
    sluiced check-config [FILE | -c CONFIG]
                                         validate; exit 2 with every problem listed
    sluiced config show [-c CONFIG]      the effective config as TOML, secrets redacted
    sluiced config example [NAME]        the documented config (or a systemd unit)
    sluiced plugins [-c CONFIG]          loaded plugins, versions, what each provides
    sluiced jobs [-c CONFIG] [--status S] [--integration ID] [--limit N] [--json]
    sluiced job [-c CONFIG] JOB_ID       one job with its log, as the API shows it
    sluiced mapping test SCHEMA SAMPLE   a schema over sample objects
    sluiced completion SHELL             a completion script for bash, zsh or fish

The config is ``-c``, else ``$SLUICED_CONFIG``, else ``/etc/sluiced/config.toml``; ``-c``
and ``--json`` go before or after the command. ``jobs`` and ``job`` read the store
directly and read-only, so they work whether or not the daemon runs (they never create
or change it). Exit status: 0 success, 1 a job or command
failed (or the store cannot be written now), 2 bad config or usage, 3 the store is
refused until an operator acts (damaged, lost, or too new: the message says what to do).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomli_w
import trio

from .api.server import SocketInUse
from .api.views import job_json
from .cliargs import (
    GlobalOption,
    HelpFormatter,
    add_global_options,
    add_version,
    silence_stdout,
    spread_global_options,
)
from .completion import SHELLS, completion_script
from .config import Config, load_config
from .configview import effective_config
from .definitions import resolve_integrations
from .errors import ConfigError
from .gcpolicy import daemon_gc
from .logs import configure_logging
from .models import JobStatus
from .offline import load_for_reading, with_store
from .pluginmanager import RegistryError, build_plugin_manager, build_registry
from .shipped import SHIPPED, shipped_text
from .store import (
    EXIT_STORE_REFUSED,
    Store,
    StoreRefused,
    StoreUnavailable,
)
from .supervisor import Daemon, StateDirInUse, checked_registry

__all__ = ["main"]

DEFAULT_CONFIG = "/etc/sluiced/config.toml"


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("SLUICED_CONFIG") or DEFAULT_CONFIG)


def _load(args: argparse.Namespace) -> Config:
    config = load_config(_config_path(args))
    registry = checked_registry(build_plugin_manager(disabled=config.daemon.disabled_plugins))
    resolve_integrations(config, registry)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    configure_logging(fmt=config.daemon.log_format, level=config.daemon.log_level)
    daemon = Daemon(config, fresh_store=args.fresh_store)
    try:
        with daemon_gc():
            return trio.run(lambda: daemon.run(once=args.once))
    except BaseExceptionGroup as group:  # raised inside the daemon's nursery
        leaf = _only(group)
        if isinstance(leaf, StoreUnavailable | StoreRefused | StateDirInUse):
            raise leaf from None
        raise


def _only(group: BaseExceptionGroup[Any]) -> BaseException:
    """The one exception in a (nested) group of one, else the group."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class UsageError(Exception):
    """A mistake on the command line: one line on stderr, exit 2."""


def cmd_check(args: argparse.Namespace) -> int:
    if args.file:  # `sluiced check-config FILE`, as people type it
        if args.config and args.config != args.file:
            raise UsageError(f"two configs given: {args.file} and -c {args.config}")
        args.config = args.file
    config = _load(args)
    print(f"{config.path}: ok ({len(config.integrations)} integrations)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    sys.stdout.write(tomli_w.dumps(effective_config(_load(args))))
    return 0


def cmd_example(args: argparse.Namespace) -> int:
    sys.stdout.write(shipped_text(args.name))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    disabled: Sequence[str] = ()
    if args.config or os.environ.get("SLUICED_CONFIG") or Path(DEFAULT_CONFIG).exists():
        disabled = load_config(_config_path(args)).daemon.disabled_plugins
    registry = build_registry(build_plugin_manager(disabled=disabled))
    for info in registry.plugins:
        print(f"{info.name} {info.version or '(no version)'}")
        for item in info.provides:
            print(f"  {item}")
    for name in disabled:
        print(f"{name} (disabled by the config)")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    config = load_for_reading(_config_path(args))
    statuses = {JobStatus(s) for s in args.status} if args.status else None

    async def query(store: Store) -> Any:
        return await store.list_jobs(
            statuses=statuses, integration_id=args.integration, limit=args.limit
        )

    jobs, total = trio.run(with_store, config, query)
    if args.json:
        print(json.dumps({"jobs": [job_json(j) for j in jobs], "total": total}, indent=2))
        return 0
    print(
        f"{'JOB':18} {'INTEGRATION':16} {'TYPE':17} {'STATUS':10} {'PROGRESS':>8}  "
        f"{'CREATED':25} NODE"
    )
    for j in jobs:
        print(
            f"{j.id:18} {j.integration_id:16} {j.type:17} {j.status.value:10} {j.progress:7.1f}%  "
            f"{j.created_at.isoformat(timespec='seconds'):25} {j.node or '-'}"
        )
    print(f"({len(jobs)} of {total})")
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    config = load_for_reading(_config_path(args))

    async def query(store: Store) -> Any:
        return await store.get_job(args.job_id), await store.get_logs(args.job_id)

    job, logs = trio.run(with_store, config, query)
    if job is None:
        print(f"sluiced: no job {args.job_id!r}", file=sys.stderr)
        return 1
    print(json.dumps(job_json(job, logs=logs, detail=True), indent=2))
    return 0


def cmd_mapping_test(args: argparse.Namespace) -> int:
    """Run a schema over sample objects (JSON lines) and show what each would become."""
    from .mapping import ExpressionError, SchemaError, functions_from, map_object, parse_schema
    from .mapping.evaluation import in_scope

    disabled: Sequence[str] = ()
    if args.config:
        disabled = load_config(args.config).daemon.disabled_plugins
    functions = functions_from(build_registry(build_plugin_manager(disabled=disabled)).functions)
    try:
        schema = parse_schema(json.loads(Path(args.schema).read_text()), functions)
    except (OSError, ValueError) as exc:
        message = str(exc) if isinstance(exc, SchemaError) else f"cannot read {args.schema}: {exc}"
        print(f"sluiced: {message}", file=sys.stderr)
        return 2
    mapping = (
        schema.for_source(args.entity_type)
        if args.entity_type
        else (schema.object_mappings[0] if schema.object_mappings else None)
    )
    if mapping is None:
        print(f"sluiced: the schema maps no {args.entity_type or 'object type'}", file=sys.stderr)
        return 2
    failures = 0
    try:
        lines = Path(args.sample).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read the sample {args.sample}: {reason}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        result: dict[str, Any] = {"line": number}
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            if not in_scope(mapping, obj):
                result["action"] = "out of scope"
            else:
                result["action"] = "create"
                result["object"] = map_object(mapping, obj, creating=True)
        except (ValueError, ExpressionError) as exc:
            failures += 1
            result["action"] = "escrow"
            result["error"] = str(exc)
        print(json.dumps(result, ensure_ascii=False, default=str))
    return 1 if failures else 0


EPILOG = f"""exit status:
  0  success
  1  a job or command failed, or the store cannot be written now
  2  bad config or usage (every problem is listed, one per line)
  3  the store is refused until an operator acts (damaged, lost, or too new:
     the message says what to do)

environment:
  SLUICED_CONFIG  the config, when -c is not given (else {DEFAULT_CONFIG})

-c and --json go before or after the command: sluiced -c FILE jobs."""

GLOBAL_OPTIONS = (
    GlobalOption(
        ("-c", "--config"), {"help": f"config file (default $SLUICED_CONFIG or {DEFAULT_CONFIG})"}
    ),
    GlobalOption(("--json",), {"action": "store_true", "help": "print JSON (jobs)"}),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluiced",
        description="The sluiced sync daemon.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    add_version(parser)
    add_global_options(parser, GLOBAL_OPTIONS, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Any, help_text: str, into: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = into.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=HelpFormatter,
        )
        p.set_defaults(fn=fn)
        return p

    run = add("run", cmd_run, "run the daemon in the foreground")
    run.add_argument(
        "--once",
        action="store_true",
        help="run one job per integration, then exit (1 if any failed); on a shared "
        "PostgreSQL store, of those no other live node holds",
    )
    run.add_argument(
        "--fresh-store",
        action="store_true",
        help="begin with an empty store where it is missing, empty or damaged (a damaged "
        "one is renamed aside); without it such a store is refused (exit 3); on a "
        "PostgreSQL store, refused while other nodes are live on it",
    )
    check = add("check-config", cmd_check, "validate the config")
    check.add_argument("file", nargs="?", metavar="FILE", help="the config (same as -c FILE)")
    config = sub.add_parser("config", help="config commands: show, example").add_subparsers(
        dest="config_command", required=True, metavar="COMMAND"
    )
    add("show", cmd_show, "print the effective config as TOML, secrets redacted", config)
    example = add(
        "example",
        cmd_example,
        "print the documented example config, or one of the systemd units",
        config,
    )
    example.add_argument(
        "name",
        nargs="?",
        default="config.toml",
        choices=list(SHIPPED),
        metavar="NAME",
        help=f"one of {', '.join(SHIPPED)} (default config.toml)",
    )
    add("plugins", cmd_plugins, "list loaded plugins and what they provide")
    jobs = add("jobs", cmd_jobs, "list jobs from the store")
    jobs.add_argument("--status", action="append", choices=[s.value for s in JobStatus])
    jobs.add_argument("--integration", metavar="INTEGRATION", help="only this integration's")
    jobs.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    job = add("job", cmd_job, "show one job and its log (JSON, as the API answers)")
    job.add_argument("job_id", metavar="JOB", help="a job's id (sluiced jobs lists them)")
    mapping = sub.add_parser("mapping", help="schema mapping tools").add_subparsers(
        dest="mapping_command", required=True, metavar="COMMAND"
    )
    test = add(
        "test",
        cmd_mapping_test,
        "run a schema over sample objects, with no directory involved",
        mapping,
    )
    test.add_argument("schema", metavar="SCHEMA", help="the schema, as JSON (GET .../schema)")
    test.add_argument("sample", metavar="SAMPLE", help="sample objects, one JSON object a line")
    test.add_argument("--entity-type", help="the object mapping to use (default: the first)")
    comp = sub.add_parser(
        "completion",
        help='print a completion script: eval "$(sluiced completion bash)", or zsh, or fish',
    )
    comp.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    spread_global_options(parser, GLOBAL_OPTIONS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "completion":
            sys.stdout.write(completion_script(parser, args.shell))
            return 0
        return int(args.fn(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"sluiced: {problem}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"sluiced: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"sluiced: plugins: {exc}", file=sys.stderr)
        return 2
    except (StateDirInUse, SocketInUse, StoreUnavailable) as exc:
        print(f"sluiced: {exc}", file=sys.stderr)
        return 1
    except StoreRefused as exc:
        print(f"sluiced: {exc}", file=sys.stderr)
        return EXIT_STORE_REFUSED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sluiced ... | head`
        silence_stdout()
        return 0


if __name__ == "__main__":
    sys.exit(main())
