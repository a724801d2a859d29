"""sluicectl's commands on integrations and on the daemon itself."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from ..durations import format_iso8601
from ._client import Client, read_json
from ._output import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    done,
    follow,
    short_time,
    show,
    table,
)

__all__ = [
    "cmd_create",
    "cmd_delete",
    "cmd_escrow",
    "cmd_escrows",
    "cmd_health",
    "cmd_integration",
    "cmd_integrations",
    "cmd_metrics",
    "cmd_pause",
    "cmd_reload",
    "cmd_restart",
    "cmd_schema",
    "cmd_start",
    "cmd_status",
    "cmd_stop",
    "cmd_validate",
]


def cmd_status(c: Client, args: argparse.Namespace) -> int:
    data = c.request("GET", "/api/sync/integrations/status")
    show(args, data, _status_text)
    return EXIT_OK


def _status_text(d: Any) -> str:
    """The integrations, each with the node that runs it, then the nodes."""
    integrations = table(
        [
            (
                i["integrationId"],
                i["status"],
                i.get("node"),
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
            "node",
            "last result",
            "interval",
            "last sync",
            "next sync",
            "current job",
            "jobs",
            "success",
        ],
    )
    nodes = table(
        [
            (
                n["nodeId"],
                "live" if n["live"] else "gone",
                n["leases"],
                short_time(n["heartbeatAt"]),
                short_time(n["leftAt"]),
                f"{n['host']}:{n['pid']}",
            )
            for n in d.get("nodes", [])
        ],
        ["node", "state", "leases", "last heartbeat", "left", "process"],
    )
    return f"{integrations}\n\n{nodes}"


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


def cmd_start(c: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"scheduleImmediate": not args.no_run}
    if args.full:
        body["syncType"] = "full"
    data = c.request("POST", f"/api/sync/integrations/{args.id}/start", body)
    if args.follow and data.get("jobId"):
        return follow(c, args, data["jobId"])
    return done(args, data)


def cmd_pause(c: Client, args: argparse.Namespace) -> int:
    return done(args, c.request("POST", f"/api/sync/integrations/{args.id}/pause"))


def cmd_stop(c: Client, args: argparse.Namespace) -> int:
    return done(args, c.request("POST", f"/api/sync/integrations/{args.id}/stop"))


def cmd_restart(c: Client, args: argparse.Namespace) -> int:
    data = c.request(
        "POST",
        f"/api/sync/integrations/{args.id}/restart",
        {"criteria": {"resetScope": args.scope or []}},
    )
    if args.follow:
        return follow(c, args, data["jobId"])
    return done(args, data)


def cmd_create(c: Client, args: argparse.Namespace) -> int:
    body = read_json(args.file, "the integration file")
    show(
        args,
        c.request("POST", "/api/sync/integrations", body),
        lambda d: f"created integration {d['id']} ({d['status']['code']})",
    )
    return EXIT_OK


def cmd_delete(c: Client, args: argparse.Namespace) -> int:
    return done(
        args, c.request("DELETE", f"/api/sync/integrations/{args.id}") | {"message": "deleted"}
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
