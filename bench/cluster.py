"""Benchmark: several daemon nodes (real ``sluiced run`` processes) on one PostgreSQL.

It starts a PostgreSQL server of its own (``tests/pgserver.py``: a temporary data
directory, a Unix socket, no fsync), writes one JSONL source per integration and, for
each node count (each run on a database and target files of its own):

- starts that many daemons sharing the database, every integration due at once
  (files -> files, each integration its own target file; ``max_concurrent_jobs`` as
  large as the integrations, so a node runs everything it holds at once);
- measures the total throughput: the objects of every integration over the time from
  the first job's start to the last job's end (the jobs' own times, as the store
  records them), the daemons' CPU time per object (user + system of every node's
  process, all its threads, summed over the nodes, from the moment each answered its
  control socket) and the PostgreSQL server's CPU time per object (its processes);
- checks that every target file holds every object once.

Then, with 3 nodes (or the largest count given), it kills one node (``kill -9``) in the
middle of its jobs and measures, for each integration it held and had not finished,
the time until another node resumed it (holds its lease, and its job committed a batch
there or completed), against the lease's TTL plus a heartbeat.

And it measures, in the same run, the store operations per second of the ``Store``
contract on PostgreSQL against SQLite, in this process: ``commit_batch`` with 500 links
(new ones, then the same ones changed) and ``save_job``; on PostgreSQL also fenced, as a
node of a cluster writes (each write first checks the lease).

The floor of the daemon's CPU per object, measured in the same run: the same objects
parsed, encoded and hashed once (the daemon's codec), written to a JSONL file and their
links upserted into PostgreSQL (COPY into a staging table, then one upsert; 500 a
transaction), directly in this process.

The machine's cores are shared by every node and the server: with more nodes than cores
the runs measure what coordination costs, not how the cluster scales.

    python bench/cluster.py                  (1, 2 and 3 nodes; 30 integrations x 10,000)
    python bench/cluster.py --quick          (6 integrations x 2,000; leases of 6 s)
    python bench/cluster.py --nodes 1 3 --integrations 10 --objects 5000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio
from common import floor_of, per_object_us
from file_sync import write_source

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sluiced.codec import encode_object, loads  # noqa: E402
from sluiced.models import Job, JobStatus, Link  # noqa: E402
from sluiced.store import BatchCommit, SqliteStore, Store  # noqa: E402
from tests.daemonproc import DaemonProc  # noqa: E402
from tests.pgserver import PgServer, skip_reason  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
BATCH = 500
LINK_COLUMNS = (
    "integration_id",
    "entity_type",
    "source_id",
    "target_id",
    "hash",
    "seen_pass",
    "data",
    "disabled_at",
)


# -- CPU time of other processes --------------------------------------------------


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (field 3 first)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rpartition(")")[2].split()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process *pid* so far (all its threads)."""
    f = _stat(pid)
    return (int(f[11]) + int(f[12])) / TICKS


def server_cpu(server: PgServer) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster, the children it
    reaped and those still running (backends, checkpointer, WAL writer...)."""
    pid = int((server.data / "postmaster.pid").read_text().split()[0])
    f = _stat(pid)
    total = sum(int(x) for x in f[11:15])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                child = _stat(int(entry.name))
            except OSError:
                continue
            if int(child[1]) == pid:
                total += int(child[11]) + int(child[12])
    return total / TICKS


# -- the floor ---------------------------------------------------------------------


def floor(sources: Sequence[Path], url: str, out: Path) -> None:
    """The least a sync of *sources* into a PostgreSQL store must do in the daemon's
    process: parse each line, encode and hash the object once, write it to a JSONL
    file, upsert its link into PostgreSQL; 500 a transaction."""
    import psycopg

    from sluiced.store.postgres_base import upsert

    with psycopg.connect(url, autocommit=True) as c:
        c.execute(
            "CREATE TABLE links (integration_id text, entity_type text, source_id text,"
            " target_id text NOT NULL, hash text NOT NULL, seen_pass text, data text,"
            " disabled_at text, PRIMARY KEY (integration_id, entity_type, source_id))"
        )

        def flush(rows: list[tuple[Any, ...]]) -> None:
            with c.transaction():
                upsert(c, "links", LINK_COLUMNS, 3, rows)

        for source in sources:
            with source.open("rb") as f, (out / source.name).open("wb") as w:
                rows: list[tuple[Any, ...]] = []
                for line in f:
                    obj = loads(line)
                    text, digest = encode_object(obj)
                    w.write(text.encode() + b"\n")
                    rows.append(
                        (source.stem, "user", obj["id"], obj["id"], digest, "p", text, None)
                    )
                    if len(rows) == BATCH:
                        flush(rows)
                        rows = []
                flush(rows)
                w.flush()
                os.fsync(w.fileno())


# -- store operations ----------------------------------------------------------------


def batches_of(count: int, changed: bool, prefix: str = "P") -> list[list[Link]]:
    """*count* batches of 500 links, each with its object (encoded once, as the engine
    gives them); *changed*: the same ids, other contents."""
    out = []
    for b in range(count):
        links = []
        for k in range(BATCH):
            oid = f"{prefix}{b * BATCH + k:07d}"
            obj = {"id": oid, "name": f"person {oid}", "v": 2 if changed else 1}
            text, digest = encode_object(obj)
            links.append(
                Link(
                    source_id=oid, target_id=oid, hash=digest, seen_pass="p", data=obj, encoded=text
                )
            )
        out.append(links)
    return out


async def store_ops(store: Store, batches: int, saves: int) -> dict[str, float]:
    """Operations per second of *store*: commit_batch of new links, of changed links,
    and save_job."""
    job = Job(
        id="bench-job",
        integration_id="bench",
        type="full_sync",
        status=JobStatus.RUNNING,
        created_at=datetime.now(UTC),
        started_at=datetime.now(UTC),
    )
    await store.save_job(job)
    for links in batches_of(2, False, prefix="W"):  # warm up: connection, staging table
        await store.commit_batch(BatchCommit(job=job, entity_type="user", upsert_links=links))
    out = {}
    for name, changed in (("new", False), ("changed", True)):
        work = batches_of(batches, changed)
        t = time.perf_counter()
        for n, links in enumerate(work):
            await store.commit_batch(
                BatchCommit(
                    job=replace(job, progress=100 * n / batches),
                    entity_type="user",
                    upsert_links=links,
                    seen_pass="p",
                )
            )
        out[f"commit_{name}"] = batches / (time.perf_counter() - t)
    t = time.perf_counter()
    for n in range(saves):
        await store.save_job(replace(job, progress=100 * n / saves))
    out["save_job"] = saves / (time.perf_counter() - t)
    return out


def measure_stores(
    server: PgServer, root: Path, batches: int, saves: int
) -> dict[str, dict[str, float]]:
    """Store operations per second on SQLite, PostgreSQL, and PostgreSQL fenced."""
    from sluiced.cluster.postgres import PostgresCoordinator
    from sluiced.store.postgres import PostgresStore

    async def sqlite() -> dict[str, float]:
        store = SqliteStore(root / "ops.sqlite3")
        try:
            return await store_ops(store, batches, saves)
        finally:
            await store.aclose()

    async def postgres(fenced: bool) -> dict[str, float]:
        store = PostgresStore(server.new_database(), node_id="bench")
        coordinator = None
        try:
            if fenced:
                coordinator = PostgresCoordinator(store, ttl=600, heartbeat=60)
                await coordinator.join()
                assert await coordinator.claim(["bench"]), "no lease for the benchmark"
            return await store_ops(store, batches, saves)
        finally:
            if coordinator is not None:
                await coordinator.aclose()
            await store.aclose()

    return {
        "SQLite": trio.run(sqlite),
        "PostgreSQL": trio.run(postgres, False),
        "PostgreSQL, fenced": trio.run(postgres, True),
    }


# -- the nodes ----------------------------------------------------------------------


def node_config(
    url: str, node: str, sources: Sequence[Path], out: Path, ttl: float, heartbeat: float
) -> str:
    text = f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
log_level = "warning"
shutdown_grace = "20s"
max_concurrent_jobs = {len(sources)}
store = "{url}"
node_id = "{node}"
lease_ttl = "{ttl}s"
heartbeat = "{heartbeat}s"
"""
    for source in sources:
        ident = source.stem
        text += f"""
[integrations.{ident}]
entity_types = ["user"]
interval = "1h"
jitter = "0s"
batch_size = {BATCH}
[integrations.{ident}.deletion_threshold]
enabled = false
[integrations.{ident}.source]
connector = "jsonl"
paths = {{ user = "{source}" }}
[integrations.{ident}.target]
connector = "jsonl"
paths = {{ user = "{out / source.name}" }}
"""
    return text


class Cluster:
    """*count* daemon nodes on one new database of *server*, their files under *root*."""

    def __init__(
        self,
        server: PgServer,
        root: Path,
        count: int,
        sources: Sequence[Path],
        ttl: float,
        heartbeat: float,
    ) -> None:
        import psycopg

        self.server = server
        self.url = server.new_database()
        self.sources = sources
        self.out = root / "out"
        self.out.mkdir(parents=True)
        self.nodes: dict[str, DaemonProc] = {}
        for n in range(1, count + 1):
            name = f"n{n}"
            (root / name).mkdir()
            (root / name / "config.toml").write_text(
                node_config(self.url, name, sources, self.out, ttl, heartbeat)
            )
            self.nodes[name] = DaemonProc(root / name)
        self.db = psycopg.connect(self.url, autocommit=True)
        self.cpu_at_start: dict[str, float] = {}
        self.server_cpu_at_start = 0.0

    def start(self) -> None:
        self.server_cpu_at_start = server_cpu(self.server)
        for d in self.nodes.values():
            d.start(wait=False)
        for name, d in self.nodes.items():
            d.wait_ready(timeout=60)
            assert d.proc is not None
            self.cpu_at_start[name] = process_cpu(d.proc.pid)

    def cpu(self) -> dict[str, float]:
        """CPU seconds of each live node since it was ready."""
        out = {}
        for name, d in self.nodes.items():
            if d.proc is not None and d.proc.poll() is None:
                out[name] = process_cpu(d.proc.pid) - self.cpu_at_start[name]
        return out

    def jobs(self) -> dict[str, dict[str, Any]]:
        """The latest job of each integration (its body), by integration."""
        rows = self.db.execute(
            "SELECT integration_id, body FROM sluiced.jobs ORDER BY created_at"
        ).fetchall()
        return {str(r[0]): json.loads(r[1]) for r in rows}

    def holders(self) -> dict[str, str]:
        """The node holding each integration's unexpired lease."""
        rows = self.db.execute(
            "SELECT integration_id, node_id FROM sluiced.leases"
            " WHERE node_id IS NOT NULL AND expires_at > now()"
        ).fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    def wait(self, predicate: Callable[[], bool], timeout: float, every: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            for name, d in self.nodes.items():
                if d.proc is not None and d.proc.returncode is None and d.proc.poll() is not None:
                    raise SystemExit(f"node {name} exited:\n{d.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out; jobs: {self.statuses()}")
            time.sleep(every)

    def statuses(self) -> dict[str, str]:
        return {i: j["status"] for i, j in self.jobs().items()}

    def complete(self) -> bool:
        jobs = self.jobs()
        failed = [i for i, j in jobs.items() if j["status"] == "failed"]
        if failed:
            raise SystemExit(f"jobs failed: {[(i, jobs[i].get('error')) for i in failed]}")
        return len(jobs) == len(self.sources) and all(
            j["status"] == "completed" for j in jobs.values()
        )

    def span(self) -> float:
        """Seconds from the first job's start to the last job's end (every job)."""
        rows = self.db.execute("SELECT body FROM sluiced.jobs").fetchall()
        jobs = [json.loads(r[0]) for r in rows]
        first = min(datetime.fromisoformat(j["started_at"]) for j in jobs if j["started_at"])
        last = max(datetime.fromisoformat(j["completed_at"]) for j in jobs if j["completed_at"])
        return (last - first).total_seconds()

    def check_targets(self, objects: int) -> None:
        for source in self.sources:
            lines = (self.out / source.name).read_bytes().count(b"\n")
            ids = {loads(line)["id"] for line in (self.out / source.name).open("rb")}
            assert lines == len(ids) == objects, f"{source.stem}: {lines} lines, {len(ids)} ids"

    def stop(self) -> None:
        self.db.close()
        for d in self.nodes.values():
            if d.proc is not None and d.proc.poll() is None:
                d.stop(timeout=60)
            d.kill()


def throughput(
    server: PgServer,
    root: Path,
    count: int,
    sources: Sequence[Path],
    objects: int,
    ttl: float,
    heartbeat: float,
) -> dict[str, float]:
    """One run of *count* nodes until every integration's job completed."""
    cluster = Cluster(server, root, count, sources, ttl, heartbeat)
    try:
        cluster.start()
        cluster.wait(cluster.complete, timeout=3600, every=0.25)
        cpu = sum(cluster.cpu().values())
        pg_cpu = server_cpu(server) - cluster.server_cpu_at_start
        span = cluster.span()
        cluster.check_targets(objects)
    finally:
        cluster.stop()
    total = objects * len(sources)
    return {"span": span, "rate": total / span, "cpu": cpu, "pg_cpu": pg_cpu, "total": total}


def recovery(
    server: PgServer,
    root: Path,
    count: int,
    sources: Sequence[Path],
    objects: int,
    ttl: float,
    heartbeat: float,
) -> dict[str, Any]:
    """*count* nodes; kill -9 one in the middle of its jobs; the seconds until another
    node resumed each integration it held and had not finished."""
    cluster = Cluster(server, root, count, sources, ttl, heartbeat)
    total = objects * len(sources)
    try:
        cluster.start()

        def processed(job: dict[str, Any]) -> int:
            return int(job.get("stats", {}).get("processed", 0))

        def midway() -> bool:
            jobs, held = cluster.jobs(), cluster.holders()
            if len(jobs) == len(sources) and all(j["status"] == "completed" for j in jobs.values()):
                raise SystemExit("every job completed before the kill: give more --objects")
            done = sum(processed(j) for j in jobs.values())
            busy = {
                held.get(i) for i, j in jobs.items() if j["status"] == "running" and processed(j)
            }
            return done >= total // 4 and bool(busy - {None})

        cluster.wait(midway, timeout=600, every=0.05)
        jobs, held = cluster.jobs(), cluster.holders()
        unfinished = {i for i in held if jobs.get(i, {}).get("status") != "completed"}
        running = {i for i in unfinished if jobs.get(i, {}).get("status") == "running"}
        victim = max(cluster.nodes, key=lambda n: sum(1 for i in running if held[i] == n))
        orphans = {i: jobs.get(i) for i in unfinished if held[i] == victim}
        cluster.nodes[victim].kill()
        killed = time.monotonic()
        resumed: dict[str, float] = {}

        def moved(iid: str, job: dict[str, Any] | None, holder: str | None) -> bool:
            before = orphans[iid]
            if holder in (None, victim) or job is None:
                return False
            return (
                before is None
                or job["id"] != before["id"]
                or processed(job) > processed(before)
                or job["status"] == "completed"
            )

        def all_resumed() -> bool:
            jobs, held = cluster.jobs(), cluster.holders()
            for iid in orphans:
                if iid not in resumed and moved(iid, jobs.get(iid), held.get(iid)):
                    resumed[iid] = time.monotonic() - killed
            return len(resumed) == len(orphans)

        cluster.wait(all_resumed, timeout=ttl * 4 + 120, every=0.1)
        cluster.wait(cluster.complete, timeout=3600, every=0.25)
        span = cluster.span()
        cluster.check_targets(objects)
    finally:
        cluster.stop()
    times = sorted(resumed.values())
    return {
        "victim": victim,
        "orphans": len(orphans),
        "first": times[0] if times else 0.0,
        "median": statistics.median(times) if times else 0.0,
        "last": times[-1] if times else 0.0,
        "span": span,
        "rate": total / span,
    }


# -- the run --------------------------------------------------------------------------


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the nodes and the server
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--integrations", type=int)
    parser.add_argument("--objects", type=int, help="objects per integration")
    parser.add_argument("--quick", action="store_true", help="small defaults, short leases")
    parser.add_argument("--lease-ttl", type=float, help="seconds (default 30; quick 6)")
    parser.add_argument("--heartbeat", type=float, help="seconds (default 10; quick 2)")
    parser.add_argument("--no-kill", action="store_true", help="skip the kill -9 run")
    args = parser.parse_args()
    integrations = args.integrations or (6 if args.quick else 30)
    objects = args.objects or (2_000 if args.quick else 10_000)
    ttl = args.lease_ttl or (6.0 if args.quick else 30.0)
    heartbeat = args.heartbeat or (2.0 if args.quick else 10.0)
    batches, saves = (20, 200) if args.quick else (100, 1000)
    reason = skip_reason()
    if reason is not None:
        raise SystemExit(reason)
    cores = os.cpu_count() or 1
    total = integrations * objects
    print(
        f"{integrations} integrations x {objects:,} objects (files -> files), leases of "
        f"{ttl:g} s renewed every {heartbeat:g} s, on {cores} cores",
        flush=True,
    )
    if max(args.nodes) > cores:
        print(
            f"{max(args.nodes)} nodes on {cores} cores (with the PostgreSQL server): the "
            "figures measure what coordination costs, not how the cluster scales",
            flush=True,
        )
    server = PgServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="sluiced-cluster-") as tmp:
            root = Path(tmp)
            (root / "src").mkdir()
            sources = [root / "src" / f"i{n:02d}.jsonl" for n in range(integrations)]
            for source in sources:
                write_source(source, objects)
            (root / "floor").mkdir()
            url = server.new_database()
            base = floor_of(lambda: floor(sources, url, root / "floor"))
            floor_us = per_object_us(base.cpu, total)

            print("\nStore operations per second, in this process (commit_batch: 500 links)")
            print(
                f"{'store':>20} {'commit new':>11} {'links/s':>9} {'changed':>9} {'links/s':>9} {'save_job':>9}"
            )
            for name, r in measure_stores(server, root, batches, saves).items():
                print(
                    f"{name:>20} {r['commit_new']:>11.1f} {r['commit_new'] * BATCH:>9.0f} "
                    f"{r['commit_changed']:>9.1f} {r['commit_changed'] * BATCH:>9.0f} "
                    f"{r['save_job']:>9.0f}",
                    flush=True,
                )

            print(f"\nThroughput, first job's start to last job's end ({total:,} objects)")
            print(
                f"{'nodes':>5} {'time':>8} {'objects/s':>10} {'daemons CPU µs/obj':>19} "
                f"{'floor µs':>9} {'ratio':>6} {'PostgreSQL CPU µs/obj':>22}"
            )
            for count in args.nodes:
                r = throughput(
                    server, root / f"run{count}", count, sources, objects, ttl, heartbeat
                )
                cpu = per_object_us(r["cpu"], total)
                print(
                    f"{count:>5} {r['span']:>7.2f}s {r['rate']:>10.0f} {cpu:>19.1f} "
                    f"{floor_us:>9.1f} {cpu / floor_us:>5.1f}x {per_object_us(r['pg_cpu'], total):>22.1f}",
                    flush=True,
                )

            if not args.no_kill and max(args.nodes) >= 2:
                count = max(args.nodes)
                r = recovery(server, root / "kill", count, sources, objects, ttl, heartbeat)
                print(
                    f"\nkill -9 of node {r['victim']} of {count}, a quarter of the objects in: "
                    f"its {r['orphans']} unfinished integrations resumed on another node after "
                    f"{r['first']:.1f} s (first), {r['median']:.1f} s (median), {r['last']:.1f} s "
                    f"(last); lease TTL + heartbeat = {ttl + heartbeat:g} s. The whole run took "
                    f"{r['span']:.1f} s ({r['rate']:.0f} objects/s); every target holds each "
                    "object once.",
                    flush=True,
                )
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
