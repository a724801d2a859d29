"""sluicectl's commands on jobs: listing, creating, following, stopping them, and a
dry run's plan or one object provisioned now."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from ..durations import DurationError, format_iso8601, parse_duration
from ..progress import stats_text
from ._client import Client
from ._output import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    created,
    done,
    follow,
    short_time,
    show,
    status_text,
    table,
)

__all__ = [
    "cmd_delete_job",
    "cmd_interval",
    "cmd_job",
    "cmd_jobs",
    "cmd_plan",
    "cmd_provision",
    "cmd_resume",
    "cmd_run",
    "cmd_stop_all",
    "cmd_stop_job",
]


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


def cmd_run(c: Client, args: argparse.Namespace) -> int:
    options: dict[str, Any] = {"force": args.force}
    if args.entity_types:
        options["entityTypes"] = args.entity_types
    data = c.request(
        "POST", "/api/sync/jobs", {"integrationId": args.id, "type": args.type, "options": options}
    )
    return created(c, args, data["jobId"], data)


def cmd_resume(c: Client, args: argparse.Namespace) -> int:
    data = c.request("POST", f"/api/sync/jobs/{args.id}/resume")
    if args.follow:
        return follow(c, args, args.id)
    return done(args, data)


def cmd_stop_job(c: Client, args: argparse.Namespace) -> int:
    return done(
        args, c.request("POST", f"/api/sync/jobs/{args.id}/stop", {"graceful": not args.force})
    )


def _stopping(d: Any) -> str:
    """The jobs stopped; on several nodes, also each node that did not answer."""
    out = f"stopping {d['stoppedJobs']} jobs" + "".join(f"\n  {j}" for j in d["jobs"])
    for node in d.get("nodes", ()):
        if node["error"] is not None:
            out += f"\nnode {node['nodeId']} did not answer: {node['error']}"
    return out


def cmd_stop_all(c: Client, args: argparse.Namespace) -> int:
    """Exits 1 if a node did not answer (its jobs may still run)."""
    body = {"integrationId": args.integration} if args.integration else {}
    data = c.request("POST", "/api/sync/jobs/stop-all", body)
    show(args, data, _stopping)
    return EXIT_OK if data.get("success", True) else EXIT_REFUSED


def cmd_interval(c: Client, args: argparse.Namespace) -> int:
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
    return done(
        args,
        c.request("DELETE", f"/api/sync/jobs/{args.id}", {"deleteLogs": args.delete_logs})
        | {"message": "deleted"},
    )


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
