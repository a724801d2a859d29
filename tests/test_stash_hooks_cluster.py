"""Stash's plugin hooks on a cluster: two daemons on one PostgreSQL database (the mirror
in it too), the plugin pointed at the node that does not hold the Stash integration. An
edit reaches the mirror within seconds; a burst of a thousand hook calls is gathered on
the node it reached and sent to the holder in a few commands, which make a handful of
jobs there; once the holder is killed (kill -9), the hooks sent to the survivor work as
soon as it took the integration over (those it got meanwhile too)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sluiced.plugins.stash.fake import FakeStash

from .daemonproc import DaemonProc, daemons, wait_for
from .mirrordb import Backend
from .test_cluster_e2e import HEARTBEAT, TTL, holders, statuses
from .test_stash_e2e import library_view, mirror_view, mutate
from .test_stash_hooks import TOKEN, free_port, hook, reported, stash

pytestmark = pytest.mark.e2e
procs = pytest.fixture(daemons)
__all__ = ["stash"]  # the fixture, imported to be used here


def node_config(fake: FakeStash, shared: Path, pg_url: str, node: str, port: int) -> str:
    (shared / "key").write_text("stash-key\n")
    (shared / "token").write_text(TOKEN + "\n")
    return f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
shutdown_grace = "20s"
store = "{pg_url}"
store_password_env = "SLUICED_TEST_PG_PASSWORD"
node_id = "{node}"
lease_ttl = "{TTL}s"
heartbeat = "{HEARTBEAT}s"
tcp_listen = "127.0.0.1:{port}"
api_token_file = "{shared / "token"}"
[integrations.stash]
entity_types = ["performer", "tag", "studio", "scene"]
interval = "1h"
jitter = "0s"
[integrations.stash.retry]
attempts = 6
base = "50ms"
cap = "1s"
[integrations.stash.source]
connector = "stash"
url = "{fake.url}"
api_key_file = "{shared / "key"}"
timeout = "2s"
[integrations.stash.target]
connector = "stash-mirror"
{Backend(pg_url).target_keys(shared)}
page_size = 40
"""


def commands(pg_url: str) -> int:
    """How many hook requests were sent to another node through the store."""
    import psycopg

    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sluiced.commands WHERE kind = 'POST /api/stash/hooks'"
        ).fetchone()
    return int(row[0]) if row else 0


def hook_jobs(d: DaemonProc) -> list[dict[str, Any]]:
    """The jobs hooks started, oldest first (the store's records, as *d* answers them)."""
    jobs = d.client().get("/api/sync/jobs", params={"limit": 1000}).json()["jobs"]
    return sorted(
        (j for j in jobs if j["parameters"].get("trigger") == "stash-hooks"),
        key=lambda j: j["createdAt"],
    )


def test_hooks_sent_to_the_node_that_does_not_hold_the_integration(
    stash: FakeStash, tmp_path: Path, pg_url: str, procs: list[DaemonProc]
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    backend = Backend(pg_url)
    nodes: dict[str, DaemonProc] = {}
    ports: dict[str, int] = {}
    for name in ("n1", "n2"):
        root = tmp_path / name
        root.mkdir()
        ports[name] = free_port()
        (root / "config.toml").write_text(node_config(stash, shared, pg_url, name, ports[name]))
        d = DaemonProc(root)
        d.env.update(SLUICED_TEST_PG_PASSWORD="x")
        procs.append(d)
        nodes[name] = d.start(wait=False)
    for d in nodes.values():
        d.wait_ready()
    wait_for(lambda: "completed" in statuses(pg_url).get("stash", ()), timeout=60)
    owner = holders(pg_url)["stash"]
    [asked] = [n for n in nodes if n != owner]
    stash.plugins["sluiced"] = {"url": f"http://127.0.0.1:{ports[asked]}", "token": TOKEN}

    def mirrored(sql: str, *args: Any) -> Any:
        rows = backend.query(shared, sql, *args)
        return rows[0][0] if rows else None

    def view() -> dict[str, Any]:
        return mirror_view(shared / "mirror.sqlite3", backend)

    # One edit.
    mutate(stash, op="clock", now="2025-06-02T12:00:00+00:00")
    mutate(stash, op="update", kind="scene", id="3", title="edited in Stash")
    began = time.monotonic()
    out = hook(stash, "Scene.Update.Post", 3, {"id": "3", "title": "edited in Stash"})
    assert reported(out), out
    wait_for(lambda: mirrored("SELECT title FROM scenes WHERE id = 3") == "edited in Stash", 30)
    print(f"\nthrough {asked}: an edit reached the mirror {time.monotonic() - began:.2f} s later")
    wait_for(lambda: all(j["status"] == "completed" for j in hook_jobs(nodes[asked])), 30)
    assert [j["node"] for j in hook_jobs(nodes[asked])] == [owner]

    # A burst of a thousand.
    lib = stash.library
    sent_before, jobs_before = commands(pg_url), len(hook_jobs(nodes[asked]))
    calls: list[tuple[str, int]] = []
    for n in range(1000):
        if n % 10 == 9:
            ident = n % 30 + 1
            lib.update("performer", str(ident), name=f"performer {n}")
            calls.append(("Performer.Update.Post", ident))
        else:
            ident = n % 150 + 1
            lib.update("scene", str(ident), title=f"burst {n}")
            calls.append(("Scene.Update.Post", ident))
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        outs = list(pool.map(lambda call: hook(stash, *call), calls))
    burst = time.monotonic() - began
    assert all(reported(o) for o in outs), next(o for o in outs if not reported(o))
    wait_for(lambda: view() == library_view(lib), timeout=180)
    caught_up = time.monotonic() - began - burst
    wait_for(lambda: all(j["status"] == "completed" for j in hook_jobs(nodes[asked])), 60)
    jobs = hook_jobs(nodes[asked])[jobs_before:]
    sent = commands(pg_url) - sent_before
    print(
        f"1000 hook calls to {asked} in {burst:.1f} s: {sent} commands to {owner},"
        f" {len(jobs)} jobs; the mirror equals Stash {caught_up:.1f} s after the burst"
    )
    assert 1 <= len(jobs) <= 8, jobs
    assert all(j["node"] == owner and j["type"] == "sync_changes" for j in jobs), jobs
    # A batch at most every half second (half of hook_delay) while the burst lasts.
    assert 1 <= sent <= burst / 0.5 + 10, sent

    # The holder is killed: the survivor takes the integration over, and the hooks it
    # gets work (those sent before it held the integration too).
    nodes[owner].kill()
    mutate(stash, op="update", kind="scene", id="5", title="edited while the holder died")
    began = time.monotonic()
    assert reported(hook(stash, "Scene.Update.Post", 5, {"id": "5"}))
    wait_for(lambda: holders(pg_url).get("stash") == asked, timeout=60)
    took_over = time.monotonic() - began
    wait_for(
        lambda: mirrored("SELECT title FROM scenes WHERE id = 5") == "edited while the holder died",
        60,
    )
    print(
        f"the holder killed: {asked} took over in {took_over:.1f} s; the hook sent meanwhile"
        f" reached the mirror {time.monotonic() - began:.1f} s after it"
    )
    mutate(stash, op="update", kind="performer", id="4", name="renamed on the survivor")
    began = time.monotonic()
    assert reported(hook(stash, "Performer.Update.Post", 4, {"id": "4"}))
    wait_for(
        lambda: mirrored("SELECT name FROM performers WHERE id = 4") == "renamed on the survivor",
        30,
    )
    print(f"then an edit reached the mirror {time.monotonic() - began:.2f} s after its hook")
    wait_for(lambda: all(j["status"] == "completed" for j in hook_jobs(nodes[asked])), 60)
    assert hook_jobs(nodes[asked])[-1]["node"] == asked
    assert view() == library_view(stash.library)
