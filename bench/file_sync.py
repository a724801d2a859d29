"""Benchmark: a file-to-file sync through the whole daemon stack, in one process.

For each size it writes a JSONL source, runs one full sync (source file -> engine ->
journalled JSONL target, with the SQLite store) and prints the wall time, objects per
second, the daemon's CPU time per object (user + system, every thread) and the peak
memory of the process (ru_maxrss, measured in a fresh child process per size so the
figures do not contaminate each other). Then it runs an incremental sync over the
unchanged file, and one over a file with 1% of the objects changed.

The provisioning log's cost: each size runs twice, with the log (the default) and
without it (``changes_retention = "0s"``); for the full sync and the 1%-changed run it
prints the daemon's CPU time per object of both, and the store's bytes per object each
run added (the SQLite file's size after a checkpoint), with and without the log.

The floor, measured in the same run: the same objects parsed, hashed, written to a
JSONL file and upserted as links into SQLite (one ``executemany`` per 1,000), directly
in this process with the codec the daemon uses. The ratio is the daemon's CPU per
object over the floor's.

    python bench/file_sync.py [SIZE ...]      (default: 10000 100000)
    python bench/file_sync.py 10000 100000 1000000    (the 1M run takes a few minutes)

``SLUICED_BENCH_PROFILE=DIR`` writes a cProfile of each full sync (see common.py).
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import floor_of, per_object_us, run_child, run_once

from sluiced.codec import encode_object, loads


def write_source(path: Path, count: int, changed_every: int = 0) -> None:
    with path.open("w") as f:
        for i in range(count):
            changed = changed_every and i % changed_every == 0
            f.write(
                json.dumps(
                    {
                        "id": f"P{i:07d}",
                        "name": f"person {i}",
                        "mail": f"p{i}@example.org",
                        "dept": ["eng", "ops", "sales"][i % 3],
                        "v": 2 if changed else 1,
                    }
                )
                + "\n"
            )


CONFIG = """
[daemon]
state_dir = "state"
log_format = "json"
log_level = "warning"
changes_retention = "{retention}"
[integrations.bench]
entity_types = ["user"]
interval = "1h"
jitter = "0s"
batch_size = 1000
[integrations.bench.deletion_threshold]
enabled = false
[integrations.bench.source]
connector = "jsonl"
paths = { user = "in.jsonl" }
[integrations.bench.target]
connector = "jsonl"
paths = { user = "out.jsonl" }
"""

LINKS = """
CREATE TABLE links (
    integration_id TEXT NOT NULL, entity_type TEXT NOT NULL, source_id TEXT NOT NULL,
    target_id TEXT NOT NULL, hash TEXT NOT NULL, seen_pass TEXT, data TEXT,
    disabled_at TEXT, PRIMARY KEY (integration_id, entity_type, source_id)
) WITHOUT ROWID
"""


def floor(source: Path, root: Path) -> None:
    """The least any sync of *source* must do: parse each line, encode and hash the
    object once (as the daemon does), write it to a JSONL file, upsert its link (with
    the object) into SQLite; 1,000 a batch."""
    db = sqlite3.connect(root / "floor.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(LINKS)
    with source.open("rb") as f, (root / "floor.jsonl").open("wb") as out:
        batch: list[tuple[str, ...]] = []
        for line in f:
            obj = loads(line)
            text, digest = encode_object(obj)  # the daemon's one encoding and hash
            out.write(text.encode() + b"\n")
            batch.append(("bench", "user", obj["id"], obj["id"], digest, "p", text))
            if len(batch) == 1000:
                db.execute("BEGIN")
                db.executemany("INSERT OR REPLACE INTO links VALUES (?,?,?,?,?,?,?,NULL)", batch)
                db.execute("COMMIT")
                batch = []
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO links VALUES (?,?,?,?,?,?,?,NULL)", batch)
        db.execute("COMMIT")
        out.flush()
        os.fsync(out.fileno())
    db.close()


def store_bytes(root: Path) -> int:
    """The store's size on disk once its write-ahead log is checkpointed into it."""
    path = root / "state" / "sluiced.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def child(count: int, log: bool = True) -> None:
    """Run in a fresh process: one size (with the provisioning log or without it),
    printing one JSON line of figures."""
    from sluiced.logs import configure_logging

    configure_logging(fmt="json", level="warning", stream=sys.stderr)
    retention = "30d" if log else "0s"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.toml").write_text(CONFIG.replace("{retention}", retention))
        write_source(root / "in.jsonl", count)
        base = floor_of(lambda: floor(root / "in.jsonl", root), f"floor-{count}")
        full = run_once(root / "config.toml", f"full-{count}")
        rss_full = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        after_full = store_bytes(root)
        unchanged = run_once(root / "config.toml")
        before_one = store_bytes(root)
        write_source(root / "in.jsonl", count, changed_every=100)
        one_percent = run_once(root / "config.toml", f"one-percent-{count}")
        after_one = store_bytes(root)
        lines = sum(1 for _ in (root / "out.jsonl").open())
        assert lines == count, f"target has {lines} objects, expected {count}"
    print(
        json.dumps(
            {
                "count": count,
                "full_s": full.wall,
                "full_cpu_s": full.cpu,
                "floor_cpu_s": base.cpu,
                "rss_mib": rss_full / 1024,
                "unchanged_s": unchanged.wall,
                "one_percent_s": one_percent.wall,
                "one_percent_cpu_s": one_percent.cpu,
                "store_full_bytes": after_full,
                "store_one_percent_bytes": after_one - before_one,
            }
        )
    )


def main(sizes: list[int]) -> None:
    print(
        f"{'objects':>9} {'full sync':>10} {'objects/s':>10} {'CPU µs/obj':>11} {'floor µs':>9} "
        f"{'ratio':>6} {'peak RSS':>10} {'no change':>10} {'1% changed':>11} {'1% CPU µs/obj':>14}"
    )
    logs: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    for count in sizes:
        r = run_child(__file__, "--child", str(count))
        cpu = per_object_us(r["full_cpu_s"], count)
        base = per_object_us(r["floor_cpu_s"], count)
        print(
            f"{count:>9} {r['full_s']:>9.2f}s {count / r['full_s']:>10.0f} {cpu:>11.1f} "
            f"{base:>9.1f} {cpu / base:>5.1f}x {r['rss_mib']:>8.1f}MiB "
            f"{r['unchanged_s']:>9.2f}s {r['one_percent_s']:>10.2f}s "
            f"{per_object_us(r['one_percent_cpu_s'], count):>14.1f}",
            flush=True,
        )
        logs.append((count, r, run_child(__file__, "--child", str(count), "--no-log")))
    print("\nthe provisioning log: daemon CPU µs/object and store bytes/object, with / without")
    print(f"{'objects':>9} {'full CPU':>15} {'full bytes':>15} {'1% CPU':>15} {'1% bytes':>15}")
    for count, on, off in logs:

        def pair(key: str, fmt: str, on: Any = on, off: Any = off, count: int = count) -> str:
            scale = 1e6 if key.endswith("_s") else 1
            return (
                f"{format(scale * on[key] / count, fmt)} / {format(scale * off[key] / count, fmt)}"
            )

        print(
            f"{count:>9} {pair('full_cpu_s', '.1f'):>15} {pair('store_full_bytes', '.0f'):>15} "
            f"{pair('one_percent_cpu_s', '.2f'):>15} {pair('store_one_percent_bytes', '.1f'):>15}",
            flush=True,
        )


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), log="--no-log" not in sys.argv[3:])
    else:
        main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
