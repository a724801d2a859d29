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
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from .cliargs import (
    GlobalOption,
    HelpFormatter,
    add_global_options,
    add_version,
    silence_stdout,
    spread_global_options,
)
from .completion import SHELLS, completion_script
from .durations import format_iso8601
from .models import RESET_SCOPES
from .progress import Follow, stats_text, use_colour

__all__ = ["main"]

DEFAULT_SOCKET = "/run/sluiced/control.sock"
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
#: How often in a row a followed job's event stream is opened again when it drops.
RECONNECTS = 5


class Unreachable(Exception):
    pass


class UsageError(Exception):
    """A mistake on the command line (a file that cannot be read...): exit 2, one line."""


def read_file(path: str, what: str) -> str:
    """The text of *path*, or a ``UsageError`` naming *what* it is for and why not."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read {what} {path}: {reason}") from None


def read_json(path: str, what: str) -> Any:
    try:
        return json.loads(read_file(path, what))
    except ValueError as exc:
        raise UsageError(f"{what} {path} is not JSON: {exc}") from None


class Refused(Exception):
    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"{status} {error.get('code', '')}: {error.get('message', body)}")
        self.status = status


def _socket_path(args: argparse.Namespace) -> str:
    if args.socket:
        return str(args.socket)
    if os.environ.get("SLUICED_SOCKET"):
        return os.environ["SLUICED_SOCKET"]
    config = args.config or os.environ.get("SLUICED_CONFIG") or "/etc/sluiced/config.toml"
    if Path(config).exists():
        from .config import load_config
        from .errors import ConfigError

        try:
            return str(load_config(config).daemon.control_socket)
        except ConfigError:
            pass
    return DEFAULT_SOCKET


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        headers = {}
        if args.url:
            self.where = args.url
            transport = httpx.HTTPTransport()
            base = args.url
            if args.token_file:
                token = read_file(args.token_file, "the --token-file").strip()
                headers["Authorization"] = f"Bearer {token}"
        else:
            self.where = _socket_path(args)
            transport = httpx.HTTPTransport(uds=self.where)
            base = "http://sluiced"
        self.http = httpx.Client(transport=transport, base_url=base, headers=headers, timeout=30)

    def request(self, method: str, path: str, body: Any = None, params: Any = None) -> Any:
        try:
            response = self.http.request(method, path, json=body, params=params)
        except (
            httpx.ConnectError,
            httpx.RemoteProtocolError,
            FileNotFoundError,
            PermissionError,
        ) as exc:
            raise Unreachable(self._unreachable(exc)) from None
        data = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else response.text
        )
        if response.status_code >= 400:
            raise Refused(response.status_code, data)
        return data

    def _unreachable(self, exc: Exception) -> str:
        if self.where.startswith("http"):
            return f"sluicectl: cannot reach the daemon at {self.where} ({exc}); is it running with tcp_listen set?"
        return (
            f"sluicectl: cannot reach the daemon at {self.where} ({exc}); is sluiced running "
            "(systemctl status sluiced), and may you open the socket (group of the socket)?"
        )

    def events(self, job_id: str) -> Iterator[tuple[str, Any]]:
        """The job's server-sent events until ``end``; a connection that drops is
        opened again (up to :data:`RECONNECTS` times in a row) with ``Last-Event-ID``,
        so no log line is lost or repeated."""
        last_id: str | None = None
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_id} if last_id is not None else {}
            try:
                with self.http.stream(
                    "GET", f"/api/sync/jobs/{job_id}/events", timeout=None, headers=headers
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise Refused(response.status_code, response.json())
                    event = ""
                    for line in response.iter_lines():
                        if line.startswith("id: "):
                            last_id = line[4:]
                        elif line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: "):
                            failures = 0
                            yield event, json.loads(line[6:])
                            if event == "end":
                                return
                    return  # closed without an end: the daemon is stopping
            except (httpx.ConnectError, FileNotFoundError) as exc:
                if last_id is None or failures >= RECONNECTS:
                    raise Unreachable(self._unreachable(exc)) from None
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if failures >= RECONNECTS:
                    raise Unreachable(self._unreachable(exc)) from None
            failures += 1
            time.sleep(min(2.0, 0.2 * 2**failures))


# -- output ------------------------------------------------------------------------------
def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def short_time(stamp: str | None) -> str | None:
    return stamp[:19].replace("T", " ") if stamp else None


def show(args: argparse.Namespace, data: Any, human: Callable[[Any], str] | None = None) -> None:
    if args.json or human is None:
        print(json.dumps(data, indent=2))
    else:
        print(human(data))


def status_text(job: dict[str, Any]) -> str:
    """A job's status; ``completed with errors`` when objects of it did not sync."""
    return str(job["status"]) + (" with errors" if job.get("completedWithErrors") else "")


# -- commands ---------------------------------------------------------------------------------
def cmd_status(c: Client, args: argparse.Namespace) -> int:
    data = c.request("GET", "/api/sync/integrations/status")
    show(
        args,
        data,
        lambda d: table(
            [
                (
                    i["integrationId"],
                    i["status"],
                    i.get("lastResult"),
                    format_iso8601(timedelta(seconds=i["syncInterval"])),
                    short_time(i["lastSync"]),
                    short_time(i["nextSync"]),
                    f"{i['currentJob']['id']} {i['currentJob']['progress']}%"
                    if i["currentJob"]
                    else None,
                    i["stats"]["totalJobs"],
                    i["stats"]["successRate"],
                )
                for i in d["integrations"]
            ],
            [
                "integration",
                "status",
                "last result",
                "interval",
                "last sync",
                "next sync",
                "current job",
                "jobs",
                "success",
            ],
        ),
    )
    return EXIT_OK


def cmd_integrations(c: Client, args: argparse.Namespace) -> int:
    data = c.request("GET", "/api/sync/integrations")

    def human(d: Any) -> str:
        rows = []
        for i in d["value"]:
            q = i["status"]["quarantine"]
            note = f"{q['reason']}, next attempt {short_time(q['nextAttempt'])}" if q else None
            rows.append(
                (
                    i["id"],
                    i["status"]["code"],
                    i["schedule"]["state"],
                    i["schedule"]["interval"],
                    short_time(i["nextRun"]),
                    i["origin"],
                    note,
                )
            )
        return table(
            rows, ["id", "status", "schedule", "interval", "next run", "origin", "quarantine"]
        )

    show(args, data, human)
    return EXIT_OK


def cmd_integration(c: Client, args: argparse.Namespace) -> int:
    show(args, c.request("GET", f"/api/sync/integrations/{args.id}"))
    return EXIT_OK


def _done(args: argparse.Namespace, data: Any) -> int:
    show(
        args,
        data,
        lambda d: d.get("message", "ok") + (f" (job {d['jobId']})" if d.get("jobId") else ""),
    )
    return EXIT_OK


def cmd_start(c: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"scheduleImmediate": not args.no_run}
    if args.full:
        body["syncType"] = "full"
    data = c.request("POST", f"/api/sync/integrations/{args.id}/start", body)
    if args.follow and data.get("jobId"):
        return follow(c, args, data["jobId"])
    return _done(args, data)


def cmd_pause(c: Client, args: argparse.Namespace) -> int:
    return _done(args, c.request("POST", f"/api/sync/integrations/{args.id}/pause"))


def cmd_stop(c: Client, args: argparse.Namespace) -> int:
    return _done(args, c.request("POST", f"/api/sync/integrations/{args.id}/stop"))


def cmd_restart(c: Client, args: argparse.Namespace) -> int:
    data = c.request(
        "POST",
        f"/api/sync/integrations/{args.id}/restart",
        {"criteria": {"resetScope": args.scope or []}},
    )
    if args.follow:
        return follow(c, args, data["jobId"])
    return _done(args, data)


def cmd_create(c: Client, args: argparse.Namespace) -> int:
    body = read_json(args.file, "the integration file")
    show(
        args,
        c.request("POST", "/api/sync/integrations", body),
        lambda d: f"created integration {d['id']} ({d['status']['code']})",
    )
    return EXIT_OK


def cmd_delete(c: Client, args: argparse.Namespace) -> int:
    return _done(
        args, c.request("DELETE", f"/api/sync/integrations/{args.id}") | {"message": "deleted"}
    )


def cmd_jobs(c: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = ",".join(args.status)
    if args.integration:
        params["integrationId"] = args.integration
    data = c.request("GET", "/api/sync/jobs", params=params)
    show(
        args,
        data,
        lambda d: (
            table(
                [
                    (
                        j["id"],
                        j["integrationId"],
                        j["type"],
                        status_text(j),
                        f"{j['progress']}%",
                        short_time(j["createdAt"]),
                        j["duration"],
                        stats_text(j["result"]),
                    )
                    for j in d["jobs"]
                ],
                ["job", "integration", "type", "status", "progress", "created", "ms", "result"],
            )
            + f"\n({len(d['jobs'])} of {d['total']})"
        ),
    )
    return EXIT_OK


def cmd_job(c: Client, args: argparse.Namespace) -> int:
    if args.follow:
        return follow(c, args, args.id)
    data = c.request("GET", f"/api/sync/jobs/{args.id}")

    def human(j: Any) -> str:
        head = [
            f"{j['id']}  {j['integrationId']}  {j['type']}  {status_text(j)}  {j['progress']}%"
            + (f"  stage {j['stage']}" if j["stage"] else ""),
            f"created {short_time(j['createdAt'])}  started {short_time(j['startedAt'])}  "
            f"completed {short_time(j['completedAt'])}",
            stats_text(j["stats"]),
        ]
        if j["error"]:
            head.append(f"error: {j['error']}")
        return "\n".join(
            head
            + [f"  {short_time(e['timestamp'])} {e['level']:7} {e['message']}" for e in j["logs"]]
        )

    show(args, data, human)
    return EXIT_OK


def _created(c: Client, args: argparse.Namespace, job_id: str, data: Any) -> int:
    """After a job was created: follow it (``--follow``) or print what the daemon said."""
    if args.follow:
        return follow(c, args, job_id)
    show(args, data, lambda d: f"{job_id} {d.get('type', '')} {d['status']}".replace("  ", " "))
    return EXIT_OK


def cmd_run(c: Client, args: argparse.Namespace) -> int:
    options: dict[str, Any] = {"force": args.force}
    if args.entity_types:
        options["entityTypes"] = args.entity_types
    data = c.request(
        "POST", "/api/sync/jobs", {"integrationId": args.id, "type": args.type, "options": options}
    )
    return _created(c, args, data["jobId"], data)


def cmd_sync(c: Client, args: argparse.Namespace) -> int:
    """Seed 000's sync job of the Stash integration."""
    body: dict[str, Any] = {"full_resync": args.full}
    if args.only:
        chosen = {t.strip().rstrip("s") for t in args.only.split(",") if t.strip()}
        unknown = chosen - {"performer", "tag", "studio", "scene"}
        if unknown:
            print(
                f"sluicectl: --only takes performers, tags, studios, scenes (not {', '.join(sorted(unknown))})",
                file=sys.stderr,
            )
            return EXIT_USAGE
        body |= {f"include_{t}s": t in chosen for t in ("performer", "tag", "studio", "scene")}
    if args.integration:
        body["integrationId"] = args.integration
    data = c.request("POST", "/api/sync", body)
    return _created(c, args, data["id"], data)


def cmd_sync_scenes(c: Client, args: argparse.Namespace) -> int:
    """Seed 001's sync_scenes job: the given scenes, fully."""
    body: dict[str, Any] = {"scene_ids": args.scene_ids}
    if args.integration:
        body["integrationId"] = args.integration
    data = c.request("POST", "/api/sync/scenes", body)
    return _created(c, args, data["id"], data)


def cmd_resume(c: Client, args: argparse.Namespace) -> int:
    data = c.request("POST", f"/api/sync/jobs/{args.id}/resume")
    if args.follow:
        return follow(c, args, args.id)
    return _done(args, data)


def cmd_stop_job(c: Client, args: argparse.Namespace) -> int:
    return _done(
        args, c.request("POST", f"/api/sync/jobs/{args.id}/stop", {"graceful": not args.force})
    )


def cmd_stop_all(c: Client, args: argparse.Namespace) -> int:
    body = {"integrationId": args.integration} if args.integration else {}
    data = c.request("POST", "/api/sync/jobs/stop-all", body)
    show(
        args,
        data,
        lambda d: f"stopping {d['stoppedJobs']} jobs" + "".join(f"\n  {j}" for j in d["jobs"]),
    )
    return EXIT_OK


def cmd_interval(c: Client, args: argparse.Namespace) -> int:
    from .durations import DurationError, parse_duration

    try:
        try:
            value: object = float(args.interval)  # a bare number is seconds
        except ValueError:
            value = args.interval
        seconds = parse_duration(value).total_seconds()
    except DurationError as exc:
        print(f"sluicectl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    data = c.request("PUT", f"/api/sync/jobs/{args.id}/interval", {"interval": seconds})
    show(
        args,
        data,
        lambda d: (
            f"interval {format_iso8601(timedelta(seconds=d['oldInterval']))} -> "
            f"{format_iso8601(timedelta(seconds=d['newInterval']))}; next run {d['nextRun']}"
        ),
    )
    return EXIT_OK


def cmd_delete_job(c: Client, args: argparse.Namespace) -> int:
    return _done(
        args,
        c.request("DELETE", f"/api/sync/jobs/{args.id}", {"deleteLogs": args.delete_logs})
        | {"message": "deleted"},
    )


def cmd_schema(c: Client, args: argparse.Namespace) -> int:
    path = f"/api/sync/integrations/{args.id}/schema"
    if args.action == "get":
        print(json.dumps(c.request("GET", path), indent=2))
        return EXIT_OK
    if not args.file:
        print("sluicectl: schema put needs a FILE (JSON)", file=sys.stderr)
        return EXIT_USAGE
    c.request("PUT", path, read_json(args.file, "the schema"))
    if not args.json:
        print(f"schema of {args.id} replaced; the next run is a full pass")
    return EXIT_OK


def cmd_escrows(c: Client, args: argparse.Namespace) -> int:
    data = c.request("GET", f"/api/sync/integrations/{args.id}/escrows")
    show(
        args,
        data,
        lambda d: (
            table(
                [
                    (
                        e["entityType"],
                        e["objectId"],
                        e["kind"],
                        e["attempts"],
                        short_time(e["nextRetry"]),
                        e["reason"],
                    )
                    for e in d["escrows"]
                ],
                ["type", "object", "kind", "attempts", "next retry", "reason"],
            )
            + f"\n({d['total']} escrowed)"
        ),
    )
    return EXIT_OK


def cmd_escrow(c: Client, args: argparse.Namespace) -> int:
    body = {"entityType": args.entity_type, "objectId": args.object_id}
    data = c.request("POST", f"/api/sync/integrations/{args.id}/escrows/{args.action}", body)
    show(args, data, lambda d: d.get("message") or f"dropped {d['dropped']}")
    return EXIT_OK


def cmd_validate(c: Client, args: argparse.Namespace) -> int:
    data = c.request("POST", f"/api/sync/integrations/{args.id}/validate-credentials")

    def human(d: Any) -> str:
        return "\n".join(
            f"{end:6}  {'ok  ' if d[end]['ok'] else 'FAIL'}  {d[end]['message']}"
            for end in ("source", "target")
        )

    show(args, data, human)
    return EXIT_OK if data["ok"] else EXIT_REFUSED


def _change_text(entry: dict[str, Any]) -> str:
    if entry["action"] == "create":
        return ", ".join(f"{k}={v!r}" for k, v in entry.get("attributes", {}).items())
    if entry["action"] == "update":
        changes = ", ".join(
            f"{k}: {c['from']!r} -> {c['to']!r}" for k, c in entry.get("changes", {}).items()
        )
        return ("(matched) " if entry.get("matched") else "") + changes
    return str(entry.get("message", ""))


def cmd_plan(c: Client, args: argparse.Namespace) -> int:
    """A dry run: what a run would create, update, disable and delete, applying nothing."""
    options = {"dryRun": True}
    kind = "incremental_sync" if args.incremental else "full_sync"
    created = c.request(
        "POST", "/api/sync/jobs", {"integrationId": args.id, "type": kind, "options": options}
    )
    job_id = created["jobId"]
    status = "unknown"
    for event, data in c.events(job_id):
        if event == "end":
            status = data["status"]
    if status != "completed":
        job = c.request("GET", f"/api/sync/jobs/{job_id}")
        print(f"the dry run {job_id} {status}: {job.get('error') or ''}", file=sys.stderr)
        return EXIT_REFUSED
    plan = c.request("GET", f"/api/sync/jobs/{job_id}/plan", params={"limit": args.limit})

    def human(d: Any) -> str:
        counts = ", ".join(f"{n} {a}" for a, n in d["summary"].items()) or "no changes"
        rows = [
            (
                e["action"],
                e.get("entityType", ""),
                e.get("sourceId", ""),
                e.get("targetId", ""),
                _change_text(e),
            )
            for e in d["entries"]
        ]
        out = [f"plan {job_id}: {counts}"]
        if rows:
            out.append(table(rows, ["ACTION", "TYPE", "SOURCE", "TARGET", "CHANGES"]))
        if d["total"] > len(d["entries"]):
            out.append(f"... {d['total'] - len(d['entries'])} more (--limit, or --json)")
        return "\n".join(out)

    show(args, plan, human)
    return EXIT_OK


def cmd_provision(c: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"objectId": args.object_id, "dryRun": args.dry_run}
    if args.entity_type:
        body["entityType"] = args.entity_type
    data = c.request("POST", f"/api/sync/integrations/{args.id}/provision-on-demand", body)

    def human(d: Any) -> str:
        lines = []
        for st in d["steps"]:
            lines.append(f"{st['step']:9} {st['status']:11} {st['detail']}")
            if st["step"] == "action" and st.get("plan"):
                text = _change_text(st["plan"])
                if text:
                    lines.append(f"{'':21} {text}")
        if d["dryRun"]:
            lines.append("(dry run: nothing was written)")
        return "\n".join(lines)

    show(args, data, human)
    failed = any(st["status"] in ("failed", "escrow", "ambiguous") for st in data["steps"])
    return EXIT_REFUSED if failed else EXIT_OK


def cmd_reload(c: Client, args: argparse.Namespace) -> int:
    data = c.request("POST", "/api/sync/initialize")
    show(args, data, lambda d: f"{d['message']} ({d['integrationsFound']} integrations)")
    return EXIT_OK if data.get("success") else EXIT_REFUSED


def _health_text(d: dict[str, Any]) -> str:
    text = f"{d['status']}: {d['integrations']} integrations, {d['activeJobs']} active jobs"
    for part in ("store", "scheduler"):
        if not d.get(part, {}).get("ok", True):
            text += f"\n{part}: {d[part].get('error') or 'not ok'}"
    return text


def cmd_health(c: Client, args: argparse.Namespace) -> int:
    """Exit 1 when the store or the scheduler does not work."""
    data = c.request("GET", "/healthz")
    show(args, data, _health_text)
    return EXIT_OK if data.get("ok", True) else EXIT_REFUSED


def cmd_metrics(c: Client, args: argparse.Namespace) -> int:
    print(c.request("GET", "/metrics"), end="")
    return EXIT_OK


def follow(c: Client, args: argparse.Namespace, job_id: str) -> int:
    """Show the job's progress and log until it ends; exit 0 only if it completed."""
    if args.json:
        status = "unknown"
        for event, data in c.events(job_id):
            print(json.dumps({"event": event, "data": data}), flush=True)
            if event == "end":
                status = data["status"]
        return EXIT_OK if status == "completed" else EXIT_REFUSED
    shown = Follow(sys.stdout, tty=sys.stdout.isatty(), colour=use_colour(sys.stdout))
    shown.run(c.events(job_id))
    status = shown.status
    errors = shown.job.get("result", {}).get("errors", 0) if status == "completed" else 0
    done = f"{status} with errors: {errors} objects not synced" if errors else status
    print(f"job {job_id}: {done}")
    return EXIT_OK if status == "completed" else EXIT_REFUSED


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


def build_parser() -> argparse.ArgumentParser:
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

    follow_help = "show live progress and the log until the job ends"
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
    p = add("sync", cmd_sync, "Stash: sync performers, tags, studios and scenes into the mirror")
    p.add_argument("--full", action="store_true", help="a full resync (ignore timestamps)")
    p.add_argument("--only", help="comma-separated entity types, e.g. performers,tags")
    p.add_argument("--integration", help="the Stash integration, if there are several")
    p.add_argument("--follow", action="store_true", help=follow_help)
    p = add("sync-scenes", cmd_sync_scenes, "Stash: sync the given scenes fully")
    p.add_argument("scene_ids", nargs="+", metavar="SCENE", help="Stash scene ids")
    p.add_argument("--integration", help="the Stash integration, if there are several")
    p.add_argument("--follow", action="store_true", help=follow_help)
    p = add("resume", cmd_resume, "resume a paused or failed job", "job")
    p.add_argument("--follow", action="store_true", help=follow_help)
    p = add("stop-job", cmd_stop_job, "stop a job (gracefully, or now with --force)", "job")
    p.add_argument("--force", action="store_true")
    p = add("stop-all", cmd_stop_all, "stop every running job")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "completion":
            print(completion_script(parser, args.shell), end="")
            return EXIT_OK
        client = Client(args)
        return int(args.fn(client, args))
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


if __name__ == "__main__":
    sys.exit(main())
