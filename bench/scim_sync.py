"""Benchmark: an HR export (JSONL) provisioned into a local SCIM server (scim2-server).

For each size, in a fresh process:

1. the limit: the server's own create rate, creating the same number of users straight
   from a client with the same concurrency (4 requests in flight) into an empty server,
   one POST each, and again in bulk requests of 100;
2. a full sync through the whole daemon (file source, engine, SCIM target, SQLite
   store) with examples/hr-scim-schema.json's mapping and matching: objects per second,
   requests per object (counted in the server's own request log), peak memory of the
   syncing process;
3. a run over the unchanged export: requests sent (the goal is none);
4. a run with 1% of the people changed: requests sent;
5. the daemon's CPU time per user in the full sync (user + system of the syncing
   process: the server runs in its own), against a floor measured in the same run:
   the CPU time of the client of step 1 encoding and sending the users in bulk
   requests of 100; and their ratio.

    python bench/scim_sync.py [SIZE ...]      (default: 10000 100000)
"""

from __future__ import annotations

import json
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import trio
from common import cost_line, measured, run_child, run_once

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.scimserver import ScimServer  # noqa: E402

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
DEPARTMENTS = ("Engineering", "Research", "Sales", "Support")
REQUEST_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) ')


def write_people(path: Path, count: int, changed_every: int = 0) -> None:
    with path.open("w") as f:
        for i in range(count):
            changed = changed_every and i % changed_every == 0
            person = {
                "id": f"E{i:07d}",
                "givenName": f"Given{i}",
                "familyName": f"Family{i}" + ("-Changed" if changed else ""),
                "mail": f"person.{i}@example.org",
                "department": DEPARTMENTS[i % len(DEPARTMENTS)],
                "status": "active",
            }
            f.write(json.dumps(person) + "\n")


def config(url: str) -> str:
    return f"""
[daemon]
state_dir = "state"
log_format = "json"
log_level = "warning"
[integrations.bench]
entity_types = ["user"]
interval = "1h"
jitter = "0s"
batch_size = 500
schema = "{ROOT / "examples" / "hr-scim-schema.json"}"
[integrations.bench.deletion_threshold]
enabled = false
[integrations.bench.source]
connector = "jsonl"
paths = {{ user = "people.jsonl" }}
[integrations.bench.target]
connector = "scim"
url = "{url}"
token_file = "token"
concurrency = 4
"""


def requests_logged(server: ScimServer) -> Counter[str]:
    """The requests in the server's log, once it has written every line (it writes a
    request's line after answering it: the count stays the same for 0.3 s)."""
    log = server.root / f"scim-{server.port}.log"
    seen: Counter[str] | None = None
    while True:
        now = Counter(m.group(1) for m in REQUEST_LINE.finditer(log.read_text()))
        if now == seen:
            return now
        seen = now
        time.sleep(0.3)


async def raw_creates(
    url: str, token: str, count: int, bulk: int = 0, concurrency: int = 4
) -> float:
    """Create *count* users with *concurrency* requests in flight, one POST each or
    (*bulk*) that many per bulk request; seconds taken."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        start = time.perf_counter()

        def user(i: int) -> dict[str, object]:
            return {"schemas": [CORE_USER], "userName": f"raw.{i}.{bulk}@example.org"}

        async def worker(first: int) -> None:
            step = max(bulk, 1)
            for i in range(first * step, count, concurrency * step):
                if not bulk:
                    r = await client.post("/Users", json=user(i))
                    assert r.status_code == 201, r.text
                    continue
                ops = [
                    {"method": "POST", "path": "/Users", "bulkId": f"b{n}", "data": user(n)}
                    for n in range(i, min(i + bulk, count))
                ]
                r = await client.post("/Bulk", json={"schemas": [BULK], "Operations": ops})
                assert r.status_code == 200, r.text

        async with trio.open_nursery() as nursery:
            for w in range(concurrency):
                nursery.start_soon(worker, w)
        return time.perf_counter() - start


def child(count: int) -> None:
    from sluiced.logs import configure_logging

    configure_logging(fmt="json", level="warning", stream=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw_server = ScimServer(root).start()
        try:
            raw_s = trio.run(raw_creates, raw_server.url, raw_server.token, count)
        finally:
            raw_server.stop()
        raw_server = ScimServer(root).start()
        try:
            with measured() as floor:
                raw_bulk_s = trio.run(raw_creates, raw_server.url, raw_server.token, count, 100)
        finally:
            raw_server.stop()
        server = ScimServer(root).start()
        try:
            (root / "token").write_text(server.token)
            (root / "config.toml").write_text(config(server.url))
            write_people(root / "people.jsonl", count)
            before = requests_logged(server)
            full_run = run_once(root / "config.toml", f"scim-full-{count}")
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            full = requests_logged(server) - before
            with server.client() as c:
                total = c.get("/Users", params={"count": 0}).json()["totalResults"]
            assert total == count, f"the server holds {total} users, expected {count}"
            before = requests_logged(server)
            unchanged_s = run_once(root / "config.toml").wall
            unchanged = requests_logged(server) - before
            write_people(root / "people.jsonl", count, changed_every=100)
            before = requests_logged(server)
            changed_s = run_once(root / "config.toml").wall
            changed = requests_logged(server) - before
        finally:
            server.stop()
    print(
        json.dumps(
            {
                "count": count,
                "raw_s": raw_s,
                "raw_bulk_s": raw_bulk_s,
                "full_s": full_run.wall,
                "full_cpu_s": full_run.cpu,
                "floor_cpu_s": floor.cpu,
                "full_requests": dict(full),
                "rss_mib": rss,
                "unchanged_s": unchanged_s,
                "unchanged_requests": dict(unchanged),
                "changed_s": changed_s,
                "changed_requests": dict(changed),
            }
        )
    )


def main(sizes: list[int]) -> None:
    print(
        f"{'users':>8} {'raw POST/s':>11} {'raw bulk/s':>11} {'sync':>9} {'users/s':>8} {'req/user':>9} "
        f"{'peak RSS':>9}  {'no change':>18}  {'1% changed':>24}"
    )
    for count in sizes:
        r = run_child(__file__, "--child", str(count))

        def text(requests: dict[str, int]) -> str:
            return ", ".join(f"{n} {m}" for m, n in sorted(requests.items())) or "0 requests"

        print(
            f"{count:>8} {count / r['raw_s']:>11.0f} {count / r['raw_bulk_s']:>11.0f} "
            f"{r['full_s']:>8.1f}s "
            f"{count / r['full_s']:>8.0f} {sum(r['full_requests'].values()) / count:>9.2f} "
            f"{r['rss_mib']:>7.1f}MiB  {r['unchanged_s']:>5.2f}s {text(r['unchanged_requests']):>11}"
            f"  {r['changed_s']:>5.2f}s {text(r['changed_requests']):>17}"
        )
        print(f"{'':>8} full sync requests: {text(r['full_requests'])}")
        print(
            f"{'':>8} "
            + cost_line("full sync", count, r["full_cpu_s"], r["floor_cpu_s"]).replace(
                "object", "user"
            )
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
    else:
        main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
