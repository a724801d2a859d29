"""Benchmark: Stash into the mirror, against the fake Stash (its own process).

For each library size it prints:

* a full sync: entities per second, wall time and the syncing process's peak memory;
* an incremental sync with nothing changed: requests sent, bytes answered and time
  (the goal is a constant number of requests per entity type: detecting deletions,
  merges and deleted markers costs no request when nothing changed);
* an incremental sync with 1% of the scenes changed;
* an incremental sync after each change that leaves no trace in ``updated_at``: a
  scene, a performer, a marker deleted, two tags merged (what detection then costs);
* the two limits, measured in the same run: only fetching every page from the fake
  (no writes), and only writing every row into a mirror (no fetching). The sync should
  come close to the larger of the two, not their sum;
* the daemon's CPU time per entity of the full sync (user + system of the syncing
  process: the fake runs in its own), against a floor measured in the same run: the
  CPU time of parsing the same responses (``json.loads`` of their bytes) and writing
  every row into a mirror; and their ratio.

    python bench/stash_sync.py                   # 10k and 100k scenes (100k takes minutes)
    python bench/stash_sync.py 2000 20000        # other sizes (scenes; other types scale)
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import httpx

CONFIG = """
[daemon]
state_dir = "state"
log_format = "json"
log_level = "warning"
[integrations.stash]
entity_types = ["performer", "tag", "studio", "scene"]
interval = "1h"
jitter = "0s"
state = "Paused"   # the benchmark starts each job itself
[integrations.stash.source]
connector = "stash"
url = "{url}"
timeout = "600s"
[integrations.stash.target]
connector = "stash-mirror"
path = "mirror.sqlite3"
page_size = 250
"""


def sizes_for(scenes: int) -> dict[str, int]:
    """The issue's proportions: 100k scenes, 20k performers, 5k tags, 2k studios."""
    return {
        "scenes": scenes,
        "performers": scenes // 5,
        "tags": scenes // 20,
        "studios": scenes // 50,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_sync(root: str, job_type: str) -> None:
    """In a fresh process: one sync through the daemon's code; prints time and peak RSS."""
    import trio

    from sluiced.config import load_config
    from sluiced.logs import configure_logging
    from sluiced.models import JobStatus
    from sluiced.runner import new_job
    from sluiced.supervisor import Daemon

    configure_logging(fmt="json", level="warning", stream=sys.stderr)
    daemon = Daemon(load_config(Path(root) / "config.toml"))

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: daemon.run(api=False, task_status=task_status))
            start = time.perf_counter()
            job = await daemon.runner.submit(new_job("stash", job_type, daemon.clock.now()))
            await daemon.runner.wait_idle()
            elapsed = time.perf_counter() - start
            done = await daemon.store.get_job(job.id)
            assert done is not None and done.status is JobStatus.COMPLETED, done
            nursery.cancel_scope.cancel()
        return elapsed

    with common.measured(f"stash-{job_type}") as m:
        elapsed = trio.run(main)
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "cpu_s": m.cpu,
                "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


async def fetch_everything(url: str) -> dict[str, list[list[dict[str, object]]]]:
    """Every page a full sync asks for (performers, tags, studios at once; scenes by id)."""
    from sluiced.plugins.stash.client import StashClient
    from sluiced.plugins.stash.queries import ENTITY_QUERIES, SCENES_PAGE

    data: dict[str, list[list[dict[str, object]]]] = {}
    async with StashClient(url, timeout=600) as c:
        for kind in ("performer", "tag", "studio"):
            q = ENTITY_QUERIES[kind]
            records = (await c.execute(q.matching, {}))["find" + q.field.capitalize()][q.field]
            data[kind] = [records[n : n + 250] for n in range(0, len(records), 250)]
        after, pages = 0, []
        while True:
            variables = {
                "filter": {"id": {"value": after, "modifier": "GREATER_THAN"}},
                "per_page": 250,
            }
            page = (await c.execute(SCENES_PAGE, variables))["findScenes"]["scenes"]
            if not page:
                break
            pages.append(page)
            after = int(page[-1]["id"])  # type: ignore[call-overload]
        data["scene"] = pages
    return data


def child_fetch_only(url: str) -> None:
    """Only fetch every page (the same requests as a full sync), writing nothing."""
    import trio

    async def main() -> float:
        start = time.perf_counter()
        await fetch_everything(url)
        return time.perf_counter() - start

    print(json.dumps({"seconds": trio.run(main)}))


def child_write_only(url: str, root: str) -> None:
    """Only write: fetch everything first (untimed), then time writing it to a mirror;
    the floor: the CPU time of parsing the responses' bytes and writing their rows."""
    import trio

    from sluiced.plugins.stash.entities import BUILTIN_ENTITY_TYPES
    from sluiced.plugins.stash.mirror import Mirror

    async def main() -> tuple[float, float]:
        data = await fetch_everything(url)
        answers = {
            kind: [json.dumps({"data": page}).encode() for page in kind_pages]
            for kind, kind_pages in data.items()
        }
        del data
        mirror = Mirror(Path(root) / "write-only.sqlite3", BUILTIN_ENTITY_TYPES)
        start, cpu = time.perf_counter(), common.cpu_seconds()
        for kind, kind_answers in answers.items():
            for answer in kind_answers:
                page = json.loads(answer)["data"]
                await mirror.apply(kind, page, {"job:x": "{}"})
        elapsed, cpu = time.perf_counter() - start, common.cpu_seconds() - cpu
        await mirror.aclose()
        return elapsed, cpu

    elapsed, cpu = trio.run(main)
    print(json.dumps({"seconds": elapsed, "cpu_s": cpu}))


def run_child(*args: str) -> dict[str, float]:
    return common.run_child(__file__, *args)


def traceless(http: httpx.Client, scenes: int) -> dict[str, list[dict[str, object]]]:
    """Changes Stash makes without bumping any ``updated_at``, one kind at a time."""
    query = 'query { findSceneMarkers(filter: {per_page: 1, sort: "id", direction: DESC}) { scene_markers { id scene { id } } } }'
    marker = http.post("/graphql", json={"query": query}).json()["data"]["findSceneMarkers"][
        "scene_markers"
    ][0]
    return {
        "a scene deleted": [{"op": "delete", "kind": "scene", "id": str(scenes // 2)}],
        "a performer deleted": [{"op": "delete", "kind": "performer", "id": "7"}],
        "a marker deleted": [
            {"op": "delete_marker", "scene_id": marker["scene"]["id"], "marker_id": marker["id"]}
        ],
        "2 tags merged": [{"op": "merge_tags", "sources": ["10", "12"], "destination": "11"}],
    }


def bench(scenes: int) -> None:
    sizes = sizes_for(scenes)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    fake = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sluiced.plugins.stash.fake",
            "--port",
            str(port),
            *(a for k, v in sizes.items() for a in (f"--{k}", str(v))),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert fake.stdout is not None
        fake.stdout.readline()  # "fake Stash on ...": the library is generated
        with tempfile.TemporaryDirectory() as tmp, httpx.Client(base_url=url, timeout=600) as http:
            (Path(tmp) / "config.toml").write_text(CONFIG.format(url=url))
            entities = sum(sizes.values())
            http.post("/fake/stats/reset")
            full = run_child("--sync", tmp, "full_sync")
            full_requests = http.get("/fake/stats").json()["requests"]
            http.post("/fake/stats/reset")
            unchanged = run_child("--sync", tmp, "incremental_sync")
            stats = http.get("/fake/stats").json()
            changed_ids = list(range(1, scenes + 1, 100))
            http.post("/fake/mutate", json={"op": "clock", "now": "2030-01-01T00:00:00+00:00"})
            for i in changed_ids:
                http.post(
                    "/fake/mutate",
                    json={"op": "update", "kind": "scene", "id": str(i), "title": f"changed {i}"},
                )
            http.post("/fake/stats/reset")
            one_percent = run_child("--sync", tmp, "incremental_sync")
            one_requests = http.get("/fake/stats").json()["requests"]
            http.post("/fake/stats/reset")
            baseline = run_child("--sync", tmp, "incremental_sync")
            detected = {"nothing (the baseline)": (baseline, http.get("/fake/stats").json())}
            for name, ops in traceless(http, scenes).items():
                for op in ops:
                    assert http.post("/fake/mutate", json=op).status_code == 200, op
                http.post("/fake/stats/reset")
                took = run_child("--sync", tmp, "incremental_sync")
                detected[name] = (took, http.get("/fake/stats").json())
            fetch = run_child("--fetch-only", url)
            write = run_child("--write-only", url, tmp)
        print(
            f"{scenes:>7} scenes, {entities:>7} entities: full sync {full['seconds']:7.1f}s "
            f"({entities / full['seconds']:6.0f} entities/s, {full_requests} requests), peak RSS "
            f"{full['rss_mib']:6.1f} MiB"
        )
        print(
            f"{'':>7}   no change: {unchanged['seconds']:6.2f}s, {stats['requests']} requests, "
            f"{stats['bytes'] / 1024:.1f} KiB "
            f"({', '.join(f'{k} {v}' for k, v in sorted(stats['byOperation'].items()))})"
        )
        print(
            f"{'':>7}   1% changed ({len(changed_ids)} scenes): {one_percent['seconds']:6.2f}s, "
            f"{one_requests} requests"
        )
        print(f"{'':>7}   then, changed without a trace (more than the baseline):")
        base = detected["nothing (the baseline)"][1]
        for name, (took, st) in detected.items():
            more = {
                k: v - base["byOperation"].get(k, 0)
                for k, v in sorted(st["byOperation"].items())
                if v != base["byOperation"].get(k, 0)
            }
            print(
                f"{'':>9} {name}: {took['seconds']:6.2f}s, {st['requests']} requests, "
                f"{st['bytes'] / 1024:.1f} KiB (+{st['requests'] - base['requests']} requests, "
                f"+{(st['bytes'] - base['bytes']) / 1024:.1f} KiB: "
                f"{', '.join(f'{k} {v:+d}' for k, v in more.items())})"
            )
        print(
            f"{'':>7}   limits: fetch only {fetch['seconds']:6.1f}s, write only {write['seconds']:6.1f}s "
            f"(the sync took {full['seconds']:.1f}s)"
        )
        print(
            f"{'':>7}   "
            + common.cost_line("full sync", entities, full["cpu_s"], write["cpu_s"]).replace(
                "object", "entity"
            )
        )
    finally:
        fake.terminate()
        fake.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sync"]:
        child_sync(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["--fetch-only"]:
        child_fetch_only(sys.argv[2])
    elif sys.argv[1:2] == ["--write-only"]:
        child_write_only(sys.argv[2], sys.argv[3])
    else:
        for n in [int(a) for a in sys.argv[1:]] or [10_000, 100_000]:
            bench(n)
