"""Benchmark: an OpenLDAP directory read into a JSONL file, and a JSONL export provisioned
into one, through the whole daemon (LDAP connector, engine, file connector, SQLite store).

For each size, in a fresh process, against real slapd servers (tests/slapd.py: back-mdb
with ``dbnosync``, syncprov with a session log) started by the benchmark, over ldapi
and bound as the service account (as the daemon is):

1. the limits, measured in the same run with python-ldap on one connection: slapd's
   raw add rate (``add_s`` of every entry, one after another, into an empty
   ``ou=people``), and its raw paged search rate (pages of 500, ``*`` and
   ``entryUUID``, each entry written as a JSON line): the floors of the two directions;
2. LDAP → JSONL: a full sync of the entries the raw adds made; then a run with nothing
   changed and one with 1% of the entries modified (incremental: RFC 4533 syncrepl);
3. JSONL → LDAP: a full sync of the same people from a JSONL export into a second,
   empty slapd (uid as the RDN and the matching attribute); then a run over the
   unchanged export and one with 1% of the people changed;
4. for every daemon run, the operations slapd performed (its back-monitor's counts by
   operation, read before and after on a connection of the benchmark's own, whose
   reading search is left out) per entry; the daemon's CPU time per entry in the full
   syncs (user + system of the syncing process, every thread; slapd runs in its own)
   against the floor's (the client of step 1), and their ratio; the process's peak
   memory after each direction's full sync.

    python bench/ldap_sync.py [--sizes SIZE ...] [--limits-only]   (default: 10000 100000)

``--limits-only`` measures step 1 alone. ``SLUICED_BENCH_PROFILE=DIR`` writes a cProfile
of each full sync (see common.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import cost_line, floor_of, per_object_us, run_child, run_once

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.slapd import SERVICE_PASSWORD, Slapd  # noqa: E402

DEPARTMENTS = ("Engineering", "Research", "Sales", "Support")
PAGE_SIZE = 500
OPERATIONS = ("Bind", "Unbind", "Search", "Compare", "Modify", "Modrdn", "Add", "Delete")
OPERATIONS += ("Abandon", "Extended")


class MonitoredSlapd(Slapd):
    """A slapd that also serves back-monitor (``cn=Monitor``): its operation counts."""

    def _config(self) -> str:
        return super()._config() + "database monitor\n"


class Operations:
    """The operations a slapd performed, read from ``cn=Operations,cn=Monitor`` on one
    root connection kept open (so only its own reading search is counted in between)."""

    def __init__(self, server: Slapd) -> None:
        self.conn = server.connect()

    def counts(self) -> Counter[str]:
        import ldap

        found = self.conn.search_s(
            "cn=Operations,cn=Monitor",
            ldap.SCOPE_ONELEVEL,
            "(objectClass=*)",
            ["monitorOpInitiated"],
        )
        return Counter(
            {
                dn.split(",")[0].removeprefix("cn="): int(attrs["monitorOpInitiated"][0])
                for dn, attrs in found
            }
        )

    def since(self, before: Counter[str]) -> dict[str, int]:
        """What was performed since *before* (another reading), this reading left out."""
        after = self.counts()
        after["Search"] -= 1
        return {op: after[op] - before[op] for op in OPERATIONS if after[op] - before[op]}

    def close(self) -> None:
        self.conn.unbind_s()


def person(i: int, changed: bool = False) -> dict[str, str]:
    """One person of the export (a JSONL line)."""
    return {
        "id": f"p{i:07d}",
        "givenName": f"Given{i}",
        "familyName": f"Family{i}" + ("-Changed" if changed else ""),
        "mail": f"person.{i}@example.org",
        "department": DEPARTMENTS[i % len(DEPARTMENTS)],
    }


def entry(server: Slapd, p: dict[str, str]) -> tuple[str, dict[str, list[bytes]]]:
    """The entry the schema below makes of *p*: ``(dn, attributes)``."""
    attrs = {
        "objectClass": ["inetOrgPerson"],
        "uid": [p["id"]],
        "cn": [f"{p['givenName']} {p['familyName']}"],
        "sn": [p["familyName"]],
        "givenName": [p["givenName"]],
        "mail": [p["mail"]],
        "departmentNumber": [p["department"]],
    }
    return (
        f"uid={p['id']},ou=people,{server.suffix}",
        {k: [v.encode() for v in vs] for k, vs in attrs.items()},
    )


def write_people(path: Path, count: int, changed_every: int = 0) -> None:
    with path.open("w") as f:
        for i in range(count):
            changed = bool(changed_every) and i % changed_every == 0
            f.write(json.dumps(person(i, changed)) + "\n")


SCHEMA = {
    "objectMappings": [
        {
            "name": "HR export to LDAP people",
            "sourceObjectName": "user",
            "targetObjectName": "user",
            "flowTypes": ["Add", "Update", "Delete"],
            "attributeMappings": [
                {
                    "targetAttributeName": "uid",
                    "source": {"type": "Direct", "name": "id"},
                    "matchingPriority": 1,
                },
                {
                    "targetAttributeName": "cn",
                    "source": {
                        "type": "Expression",
                        "expression": 'Join(" ", [givenName], [familyName])',
                    },
                },
                {"targetAttributeName": "sn", "source": {"type": "Direct", "name": "familyName"}},
                {
                    "targetAttributeName": "givenName",
                    "source": {"type": "Direct", "name": "givenName"},
                },
                {"targetAttributeName": "mail", "source": {"type": "Direct", "name": "mail"}},
                {
                    "targetAttributeName": "departmentNumber",
                    "source": {"type": "Direct", "name": "department"},
                },
            ],
        }
    ]
}


def ldap_table(server: Slapd) -> str:
    """The connector's settings for *server*, as the README documents them."""
    return f"""connector = "ldap"
url = "{server.ldapi_url}"
bind_dn = "{server.service_dn}"
password_file = "password"
page_size = {PAGE_SIZE}
"""


def config(name: str, source: str, target: str, schema: str = "") -> str:
    return f"""
[daemon]
state_dir = "state-{name}"
log_format = "json"
log_level = "warning"
[integrations.{name}]
entity_types = ["user"]
interval = "1h"
jitter = "0s"
batch_size = 500
{schema}
[integrations.{name}.deletion_threshold]
enabled = false
[integrations.{name}.source]
{source}
[integrations.{name}.target]
{target}
"""


def read_config(server: Slapd) -> str:
    source = ldap_table(server) + (
        f"[integrations.read.source.entities.user]\n"
        f'base = "ou=people,{server.suffix}"\n'
        f'filter = "(objectClass=inetOrgPerson)"\n'
    )
    target = 'connector = "jsonl"\npaths = { user = "from-ldap.jsonl" }\n'
    return config("read", source, target)


def write_config(server: Slapd) -> str:
    source = 'connector = "jsonl"\npaths = { user = "people.jsonl" }\n'
    target = ldap_table(server) + (
        f"[integrations.write.target.entities.user]\n"
        f'base = "ou=people,{server.suffix}"\n'
        f'rdn_attribute = "uid"\n'
        f'object_classes = ["inetOrgPerson"]\n'
    )
    return config("write", source, target, schema='schema = "schema.json"')


def service_connection(server: Slapd) -> Any:
    import ldap

    conn = ldap.initialize(server.ldapi_url)
    conn.protocol_version = 3
    conn.simple_bind_s(server.service_dn, SERVICE_PASSWORD)
    return conn


def raw_adds(server: Slapd, count: int) -> None:
    """Add *count* people one ``add_s`` after another on one connection."""
    import ldap.modlist

    conn = service_connection(server)
    try:
        for i in range(count):
            dn, attrs = entry(server, person(i))
            conn.add_s(dn, ldap.modlist.addModlist(attrs))
    finally:
        conn.unbind_s()


def paged(conn: Any, base: str, filterstr: str) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
    """Every entry of a paged search (RFC 2696, pages of PAGE_SIZE)."""
    import ldap
    from ldap.controls import SimplePagedResultsControl

    control = SimplePagedResultsControl(True, size=PAGE_SIZE, cookie="")
    while True:
        msgid = conn.search_ext(
            base, ldap.SCOPE_SUBTREE, filterstr, ["*", "entryUUID"], serverctrls=[control]
        )
        _, found, _, controls = conn.result3(msgid)
        yield from found
        (answer,) = [c for c in controls if c.controlType == control.controlType]
        if not answer.cookie:
            return
        control.cookie = answer.cookie


def raw_search(server: Slapd, out: Path) -> int:
    """Read every person with a paged search, each written as a JSON line; how many."""
    conn = service_connection(server)
    n = 0
    try:
        with out.open("w") as f:
            for dn, attrs in paged(
                conn, f"ou=people,{server.suffix}", "(objectClass=inetOrgPerson)"
            ):
                data = {k: [v.decode() for v in vs] for k, vs in attrs.items()}
                f.write(json.dumps({"dn": dn, **data}) + "\n")
                n += 1
    finally:
        conn.unbind_s()
    return n


def change_entries(server: Slapd, count: int, every: int) -> None:
    """Modify the surname of every *every*-th person (the benchmark's own writes)."""
    import ldap

    conn = server.connect()
    try:
        for i in range(0, count, every):
            dn, _ = entry(server, person(i))
            conn.modify_s(dn, [(ldap.MOD_REPLACE, "sn", [f"Family{i}-Changed".encode()])])
    finally:
        conn.unbind_s()


def people_in(server: Slapd, filterstr: str = "(objectClass=inetOrgPerson)") -> int:
    """How many entries under ``ou=people`` match *filterstr* (read as the root DN)."""
    conn = server.connect()
    try:
        return sum(1 for _ in paged(conn, f"ou=people,{server.suffix}", filterstr))
    finally:
        conn.unbind_s()


def peak_rss_mib() -> float:
    """The peak memory of this process so far (ru_maxrss)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(count: int, limits_only: bool) -> None:
    from sluiced.logs import configure_logging

    configure_logging(fmt="json", level="warning", stream=sys.stderr)
    figures: dict[str, Any] = {"count": count}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "password").write_text(SERVICE_PASSWORD)
        source = MonitoredSlapd(root).start()
        target: Slapd | None = None
        try:
            add = floor_of(lambda: raw_adds(source, count), f"ldap-raw-add-{count}")
            found = 0

            def search() -> None:
                nonlocal found
                found = raw_search(source, root / "raw.jsonl")

            read = floor_of(search, f"ldap-raw-search-{count}")
            assert found == count, f"the raw search found {found} of {count}"
            figures |= {"add_s": add.wall, "add_cpu_s": add.cpu}
            figures |= {"search_s": read.wall, "search_cpu_s": read.cpu}
            if not limits_only:
                figures |= read_direction(root, source, count)
                target = MonitoredSlapd(root).start()
                figures |= write_direction(root, target, count)
        finally:
            source.stop()
            if target is not None:
                target.stop()
    print(json.dumps(figures))


def read_direction(root: Path, source: Slapd, count: int) -> dict[str, Any]:
    """LDAP → JSONL: a full sync, then one with no change and one with 1% changed."""
    (root / "read.toml").write_text(read_config(source))
    ops = Operations(source)
    try:
        before = ops.counts()
        full = run_once(root / "read.toml", f"ldap-read-{count}")
        full_ops = ops.since(before)
        rss = peak_rss_mib()
        lines = sum(1 for _ in (root / "from-ldap.jsonl").open())
        assert lines == count, f"the JSONL target has {lines} objects, expected {count}"
        before = ops.counts()
        unchanged = run_once(root / "read.toml")
        unchanged_ops = ops.since(before)
        change_entries(source, count, every=100)
        before = ops.counts()
        changed = run_once(root / "read.toml")
        changed_ops = ops.since(before)
        with (root / "from-ldap.jsonl").open() as f:
            seen = sum(1 for line in f if "-Changed" in line)
        assert seen == len(range(0, count, 100)), f"{seen} changes in the file"
    finally:
        ops.close()
    return {
        "read_s": full.wall,
        "read_rss_mib": rss,
        "read_cpu_s": full.cpu,
        "read_ops": full_ops,
        "read_unchanged_s": unchanged.wall,
        "read_unchanged_ops": unchanged_ops,
        "read_changed_s": changed.wall,
        "read_changed_ops": changed_ops,
    }


def write_direction(root: Path, target: Slapd, count: int) -> dict[str, Any]:
    """JSONL → LDAP: a full sync into an empty directory, then one with no change and
    one with 1% of the people changed."""
    (root / "schema.json").write_text(json.dumps(SCHEMA))
    (root / "write.toml").write_text(write_config(target))
    write_people(root / "people.jsonl", count)
    ops = Operations(target)
    try:
        before = ops.counts()
        full = run_once(root / "write.toml", f"ldap-write-{count}")
        full_ops = ops.since(before)
        rss = peak_rss_mib()
        held = people_in(target)
        assert held == count, f"the directory holds {held} people, expected {count}"
        before = ops.counts()
        unchanged = run_once(root / "write.toml")
        unchanged_ops = ops.since(before)
        write_people(root / "people.jsonl", count, changed_every=100)
        before = ops.counts()
        changed = run_once(root / "write.toml")
        changed_ops = ops.since(before)
        held = people_in(target, "(sn=*-Changed)")
        assert held == len(range(0, count, 100)), f"{held} changed people in the directory"
    finally:
        ops.close()
    return {
        "write_s": full.wall,
        "write_rss_mib": rss,
        "write_cpu_s": full.cpu,
        "write_ops": full_ops,
        "write_unchanged_s": unchanged.wall,
        "write_unchanged_ops": unchanged_ops,
        "write_changed_s": changed.wall,
        "write_changed_ops": changed_ops,
    }


def text(ops: dict[str, int]) -> str:
    """``12 Search, 1 Bind`` (most first), or ``none``."""
    return ", ".join(f"{n} {op}" for op, n in sorted(ops.items(), key=lambda x: -x[1])) or "none"


def per_entry(ops: dict[str, int], count: int) -> str:
    return f"{sum(ops.values()) / count:.4f} ops/entry ({text(ops)})"


def main(sizes: list[int], limits_only: bool) -> None:
    print(
        f"{'entries':>8} {'raw add/s':>10} {'raw search/s':>13}"
        + (
            ""
            if limits_only
            else f" {'LDAP→JSONL':>11} {'entries/s':>10} {'JSONL→LDAP':>11} {'entries/s':>10} {'peak RSS after each':>20}"
        )
    )
    for count in sizes:
        args = ["--child", str(count)] + (["--limits-only"] if limits_only else [])
        r = run_child(__file__, *args)
        line = f"{count:>8} {count / r['add_s']:>10.0f} {count / r['search_s']:>13.0f}"
        if limits_only:
            print(line)
            print(
                f"{'':>8} raw client CPU: add {per_object_us(r['add_cpu_s'], count):.1f} µs/entry, "
                f"search {per_object_us(r['search_cpu_s'], count):.1f} µs/entry",
                flush=True,
            )
            continue
        print(
            line
            + f" {r['read_s']:>10.2f}s {count / r['read_s']:>10.0f}"
            + f" {r['write_s']:>10.2f}s {count / r['write_s']:>10.0f}"
            + f" {r['read_rss_mib']:>7.1f}, {r['write_rss_mib']:>5.1f}MiB"
        )
        print(
            f"{'':>8} "
            + cost_line("LDAP→JSONL full sync", count, r["read_cpu_s"], r["search_cpu_s"]).replace(
                "object", "entry"
            )
            + " (floor: the raw paged search)"
        )
        print(
            f"{'':>8} "
            + cost_line("JSONL→LDAP full sync", count, r["write_cpu_s"], r["add_cpu_s"]).replace(
                "object", "entry"
            )
            + " (floor: the raw adds)"
        )
        for label, key in (("LDAP→JSONL", "read"), ("JSONL→LDAP", "write")):
            print(f"{'':>8} {label} full sync: {per_entry(r[f'{key}_ops'], count)}")
            print(
                f"{'':>8} {label} no change: {r[f'{key}_unchanged_s']:.2f}s, {per_entry(r[f'{key}_unchanged_ops'], count)}"
            )
            print(
                f"{'':>8} {label} 1% changed: {r[f'{key}_changed_s']:.2f}s, {per_entry(r[f'{key}_changed_ops'], count)}",
                flush=True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--limits-only", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.limits_only)
    else:
        main(args.sizes, args.limits_only)
