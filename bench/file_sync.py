"""Benchmark: a file-to-file sync through the whole daemon stack, in one process.

For each size it writes a JSONL source, runs one full sync (source file -> engine ->
journalled JSONL target, with the SQLite store) and prints objects per second, the
wall time, and the peak memory of the process (ru_maxrss, measured in a fresh child
process per size so the figures do not contaminate each other). Then it runs an
incremental sync over the unchanged file, and one over a file with 1% of the objects
changed.

    python bench/file_sync.py [SIZE ...]      (default: 10000 100000)
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path

from common import run_child, run_once


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


def child(count: int) -> None:
    """Run in a fresh process: one size, printing one JSON line of figures."""
    from sluiced.logs import configure_logging

    configure_logging(fmt="json", level="warning", stream=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.toml").write_text(CONFIG)
        write_source(root / "in.jsonl", count)
        full = run_once(root / "config.toml")
        rss_full = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        unchanged = run_once(root / "config.toml")
        write_source(root / "in.jsonl", count, changed_every=100)
        one_percent = run_once(root / "config.toml")
        lines = sum(1 for _ in (root / "out.jsonl").open())
        assert lines == count, f"target has {lines} objects, expected {count}"
    print(
        json.dumps(
            {
                "count": count,
                "full_s": full,
                "rss_mib": rss_full / 1024,
                "unchanged_s": unchanged,
                "one_percent_s": one_percent,
            }
        )
    )


def main(sizes: list[int]) -> None:
    print(
        f"{'objects':>9} {'full sync':>10} {'objects/s':>10} {'peak RSS':>10} "
        f"{'no change':>10} {'1% changed':>11}"
    )
    for count in sizes:
        r = run_child(__file__, "--child", str(count))
        print(
            f"{count:>9} {r['full_s']:>9.2f}s {count / r['full_s']:>10.0f} {r['rss_mib']:>8.1f}MiB "
            f"{r['unchanged_s']:>9.2f}s {r['one_percent_s']:>10.2f}s"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
    else:
        main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
