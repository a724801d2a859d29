"""Stash into the mirror, end to end: the fake Stash on 127.0.0.1, the daemon as a
subprocess on its socket, the mirror compared with the library after each change."""

from __future__ import annotations

import atexit
import functools
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluiced.plugins.stash.fake import FakeStash, Library, generate

from .daemonproc import DaemonProc, daemons, first_job, wait_job
from .mirrordb import Backend

pytestmark = pytest.mark.e2e
procs = pytest.fixture(daemons)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def config(fake: FakeStash, root: Path) -> str:
    (root / "key").write_text("stash-key\n")
    return f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
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
api_key_file = "key"
timeout = "2s"
[integrations.stash.target]
connector = "stash-mirror"
path = "mirror.sqlite3"
page_size = 40
"""


def library_view(lib: Library) -> dict[str, Any]:
    t = lib.tables
    return {
        "performers": {int(i): p["name"] for i, p in t["performer"].items()},
        "tags": {
            int(i): (tg["name"], sorted(int(x) for x in tg["parents"] if x in t["tag"]))
            for i, tg in t["tag"].items()
        },
        "studios": {
            int(i): (s["name"], int(s["parent_studio"]) if s["parent_studio"] else None)
            for i, s in t["studio"].items()
        },
        "scenes": {
            int(i): (
                s["title"],
                int(s["studio"]) if s["studio"] else None,
                sorted(map(int, s["performers"])),
                sorted(map(int, s["tags"])),
                sorted(f["basename"] for f in s["files"]),
                sorted((m["title"], int(m["primary_tag"])) for m in s["scene_markers"]),
            )
            for i, s in t["scene"].items()
        },
    }


def mirror_view(path: Path, backend: Backend | None = None) -> dict[str, Any]:
    """The mirror at *path*, or, in PostgreSQL, the one *backend* keeps for its folder."""
    if backend is not None and backend.postgres:
        return _view(Rows(backend, path.parent))
    with sqlite3.connect(path) as c:
        return _view(c)


def _view(c: Any) -> dict[str, Any]:
    """The mirror's performers, tags, studios and scenes, as :func:`library_view`."""

    def links(sql: str) -> dict[int, list[Any]]:
        out: dict[int, list[Any]] = {}
        for owner, value in c.execute(sql):
            out.setdefault(owner, []).append(value)
        return {k: sorted(v) for k, v in out.items()}

    parents = links("SELECT tag_id, parent_id FROM tag_parents")
    performers = links("SELECT scene_id, performer_id FROM scene_performers")
    tags = links("SELECT scene_id, tag_id FROM scene_tags")
    files = links("SELECT scene_id, basename FROM files")
    markers = links("SELECT scene_id, title || '|' || primary_tag_id FROM markers")
    return {
        "performers": dict(c.execute("SELECT id, name FROM performers")),
        "tags": {i: (n, parents.get(i, [])) for i, n in c.execute("SELECT id, name FROM tags")},
        "studios": {i: (n, p) for i, n, p in c.execute("SELECT id, name, parent_id FROM studios")},
        "scenes": {
            i: (
                title,
                studio,
                performers.get(i, []),
                tags.get(i, []),
                files.get(i, []),
                sorted((m.split("|")[0], int(m.split("|")[1])) for m in markers.get(i, [])),
            )
            for i, title, studio in c.execute("SELECT id, title, studio_id FROM scenes")
        },
    }


class Rows:
    """``execute(sql)`` of the PostgreSQL mirror of *folder*, as sqlite3's."""

    def __init__(self, backend: Backend, folder: Path) -> None:
        self.backend, self.folder = backend, folder

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        return self.backend.query(self.folder, sql)


@pytest.fixture(params=["-08:00", "UTC"])
def stash(request: pytest.FixtureRequest) -> Iterator[FakeStash]:
    with FakeStash(
        generate(performers=30, tags=25, studios=8, scenes=150, tz=request.param, now=NOW),
        api_key="stash-key",
    ) as fake:
        yield fake


@functools.cache
def fake_http() -> httpx.Client:
    """One client for the fake's own endpoints (``/fake/...``) in this process: a new
    client per request costs tens of milliseconds (its TLS context), and tests send
    hundreds of mutations."""
    client = httpx.Client(timeout=10)
    atexit.register(client.close)
    return client


def mutate(fake: FakeStash, **body: Any) -> Any:
    return fake_http().post(f"{fake.url}/fake/mutate", json=body).json()["result"]


def run_sync(d: DaemonProc, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = d.client().post("/api/sync", json=body or {})
    assert r.status_code == 202, r.text
    assert (
        r.json()["status"] == "pending" and r.json()["type"] == "sync" and r.json()["progress"] == 0
    )
    return wait_job(d.client(), r.json()["id"])


def test_full_then_incremental_then_full(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc], mirror_db: Backend
) -> None:
    d = start_daemon(stash, tmp_path, procs, backend=mirror_db)
    job = wait_job(d.client(), first_job(d.client(), "stash")["id"])
    assert job["status"] == "completed", job
    assert mirror_view(tmp_path / "mirror.sqlite3", mirror_db) == library_view(stash.library)
    stages = [m["message"] for m in job["logs"]]
    order = [m.split(":")[0] for m in stages if m.endswith("pass started")]
    assert order == ["performer", "tag", "studio", "scene"]

    # Edits that bump, and changes that do not: a file rename, a new marker.
    mutate(stash, op="clock", now="2025-06-02T12:00:00+00:00")
    mutate(stash, op="update", kind="scene", id="3", title="retitled")
    mutate(stash, op="update", kind="performer", id="4", name="renamed performer")
    mutate(stash, op="rename_file", scene_id="7", basename="moved.mp4")
    mutate(
        stash, op="set_marker", scene_id="9", title="added", seconds=5.0, primary_tag="2", tags=[]
    )
    mutate(stash, op="add", kind="tag", name="brand new", parents=["1", "2"])
    job = run_sync(d)
    assert job["status"] == "completed" and job["type"] == "sync"
    assert any(m["message"] == "scene: incremental pass started" for m in job["logs"])
    assert job["stats"]["processed"] < 50  # only what changed, not the library
    assert mirror_view(tmp_path / "mirror.sqlite3", mirror_db) == library_view(stash.library)

    # Tag merges and deletions leave no trace: a full pass finds them.
    mutate(stash, op="merge_tags", sources=["5", "6"], destination="1")
    mutate(stash, op="delete", kind="scene", id="11")
    mutate(stash, op="delete", kind="performer", id="2")
    job = run_sync(d, {"force": True})
    assert job["status"] == "completed" and job["stats"]["deleted"] >= 4
    assert mirror_view(tmp_path / "mirror.sqlite3", mirror_db) == library_view(stash.library)


def test_sync_scenes_and_selected_types(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    (tmp_path / "config.toml").write_text(config(stash, tmp_path).replace('state = "Active"', ""))
    d = DaemonProc(tmp_path)
    procs.append(d)
    d.start()
    wait_job(d.client(), first_job(d.client(), "stash")["id"])
    c = d.client()
    assert c.post("/api/sync/scenes", json={}).json()["error"]["field"] == "scene_ids"
    assert c.post("/api/sync/scenes", json={"scene_ids": []}).status_code == 422
    mutate(stash, op="clock", now="2025-06-03T00:00:00+00:00")
    mutate(stash, op="update", kind="scene", id="12", title="fresh")
    mutate(stash, op="delete", kind="scene", id="13")
    # Seed 001's own example ids are not Stash's, and a repeated id: Stash would refuse
    # the whole call for either; they are errors of their own, the rest syncs.
    given = ["scene123", "12", "13", "9999", "12", "012"]
    r = c.post("/api/sync/scenes", json={"scene_ids": given})
    assert r.status_code == 202 and r.json()["parameters"] == {"scene_ids": given}
    job = wait_job(c, r.json()["id"])
    assert job["status"] == "completed" and job["progress"] == 100
    assert job["stats"] == {  # every distinct id processed, three of them in error
        "processed": 4,
        "created": 0,
        "updated": 1,
        "deleted": 1,
        "disabled": 0,
        "skipped": 0,
        "errors": 3,
    }
    errors = [m["message"] for m in job["logs"] if m["level"] == "error"]
    assert errors == [
        'scene id "scene123" is not a Stash scene id (a positive integer)',
        "scene 13 does not exist in Stash",
        "scene 9999 does not exist in Stash",
    ]
    warnings = [m["message"] for m in job["logs"] if m["level"] == "warning"]
    assert any(m.startswith("completed with errors: 3 of 4 objects") for m in warnings), warnings
    with sqlite3.connect(tmp_path / "mirror.sqlite3") as conn:
        assert conn.execute("SELECT title FROM scenes WHERE id=12").fetchone() == ("fresh",)
        assert conn.execute("SELECT count(*) FROM scenes WHERE id=13").fetchone() == (0,)
    # seed 000's job body and the legacy job types
    r = c.post("/api/sync/jobs", json={"job_type": "sync_tags", "metadata": {}})
    job = wait_job(c, r.json()["id"])
    started = [m["message"] for m in job["logs"] if m["message"].endswith("pass started")]
    assert started == ["tag: incremental pass started"]
    r = c.post(
        "/api/sync/jobs",
        json={
            "integrationId": "stash",
            "type": "selective_sync",
            "options": {"entityTypes": ["studio"]},
        },
    )
    job = wait_job(c, r.json()["jobId"])
    started = [m["message"] for m in job["logs"] if m["message"].endswith("pass started")]
    assert started == ["studio: full pass started"]
    r = c.post(
        "/api/sync/jobs", json={"job_type": "sync_scenes", "metadata": {"scene_ids": ["14"]}}
    )
    assert wait_job(c, r.json()["id"])["status"] == "completed"
    bad = c.post(
        "/api/sync/jobs", json={"job_type": "sync", "metadata": {"include_everything": True}}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "metadata.include_everything"


def start_daemon(
    fake: FakeStash,
    root: Path,
    procs: list[DaemonProc],
    backend: Backend | None = None,
    **target: str,
) -> DaemonProc:
    """A daemon over *fake*, with settings of the target given as keys (``overlap``
    goes to the source), its mirror in *backend* (default: the SQLite file)."""
    text = config(fake, root)
    if backend is not None and backend.postgres:
        text = text.replace('path = "mirror.sqlite3"', backend.target_keys(root))
    for key, value in target.items():
        if f"\n{key} = " in text:
            text = re.sub(rf"\n{key} = .*", f"\n{key} = {value}", text)
        elif key == "overlap":
            text = text.replace('timeout = "2s"', f'timeout = "2s"\n{key} = {value}')
        else:
            text = text.replace("page_size = 40", f"page_size = 40\n{key} = {value}")
    (root / "config.toml").write_text(text)
    d = DaemonProc(root)
    procs.append(d)
    d.start()
    return d


def test_validate_credentials_names_a_wrong_key(tmp_path: Path, procs: list[DaemonProc]) -> None:
    with FakeStash(generate(scenes=3, now=NOW), api_key="another-key") as fake:
        d = start_daemon(fake, tmp_path, procs)
        checks = d.client().post("/api/sync/integrations/stash/validate-credentials").json()
        assert not checks["ok"] and checks["source"]["code"] == "CredentialsRejected"
        assert "refused the API key (401)" in checks["source"][
            "message"
        ] and "stash-key" not in str(checks)
        job = wait_job(d.client(), first_job(d.client(), "stash")["id"])
        assert job["status"] == "failed" and job["errorCode"] == "CredentialsRejected"
        state = d.client().get("/api/sync/integrations/stash").json()["status"]
        assert (
            state["code"] == "Quarantine" and state["quarantine"]["reason"] == "CredentialsRejected"
        )


def test_same_second_edits_are_caught_without_any_overlap(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    with FakeStash(generate(scenes=30, tz="-08:00", now=NOW), api_key="stash-key") as fake:
        d = start_daemon(fake, tmp_path, procs, overlap='"0s"')
        wait_job(d.client(), first_job(d.client(), "stash")["id"])
        mutate(fake, op="clock", now="2025-06-02T12:00:00+00:00")
        mutate(fake, op="update", kind="scene", id="1", title="first edit")
        run_sync(d)  # the watermark is now 04:00:00-08:00, this very second
        mutate(fake, op="update", kind="scene", id="2", title="same second, after the sync")
        run_sync(d)
        assert mirror_view(tmp_path / "mirror.sqlite3") == library_view(fake.library)


def test_a_dst_fall_back_hour(tmp_path: Path, procs: list[DaemonProc]) -> None:
    before = datetime(2025, 11, 2, 8, 30, tzinfo=UTC)  # 01:30 PDT (-07:00)
    with FakeStash(
        generate(scenes=30, tz="America/Los_Angeles", now=before), api_key="stash-key"
    ) as fake:
        d = start_daemon(fake, tmp_path, procs)
        wait_job(d.client(), first_job(d.client(), "stash")["id"])
        # An hour later the clocks went back: 01:10 PST (-08:00) sorts before 01:30-07:00 as text.
        mutate(fake, op="clock", now="2025-11-02T09:10:00+00:00")
        mutate(fake, op="update", kind="scene", id="5", title="edited in the repeated hour")
        assert fake.library.tables["scene"]["5"]["updated_at"] == "2025-11-02T01:10:00-08:00"
        run_sync(d)
        assert mirror_view(tmp_path / "mirror.sqlite3") == library_view(fake.library)


def test_ten_percent_faults_still_converge(tmp_path: Path, procs: list[DaemonProc]) -> None:
    with FakeStash(
        generate(performers=30, tags=20, studios=6, scenes=200, now=NOW), api_key="stash-key"
    ) as fake:
        mutate(fake, op="faults", rate=0.1, kinds=["500", "429", "truncate", "timeout"], delay=2.5)
        d = start_daemon(fake, tmp_path, procs)
        job = wait_job(d.client(), first_job(d.client(), "stash")["id"], timeout=120)
        assert job["status"] == "completed", job["error"]
        assert any("retry" in m["message"] for m in job["logs"])
        assert mirror_view(tmp_path / "mirror.sqlite3") == library_view(fake.library)
        assert fake_http().get(f"{fake.url}/fake/stats").json()["faults"] > 0


def test_kill_9_during_a_paged_scene_full_sync(
    tmp_path: Path, procs: list[DaemonProc], mirror_db: Backend
) -> None:
    """Killed -9 in the middle of the scene pass, the resumed job goes on from the last
    page it committed. The scale is the smallest that keeps the kill well inside the pass:
    20 pages of 100 scenes, killed once 5 are in the mirror, so 15 pages (seconds of work)
    separate the moment seen from the end of the pass, against a poll of 10 ms."""
    import os
    import signal
    import time

    scenes, page, seen = 2000, 100, 500
    with FakeStash(
        generate(performers=100, tags=50, studios=15, scenes=scenes, now=NOW), api_key="stash-key"
    ) as fake:
        d = start_daemon(fake, tmp_path, procs, mirror_db, page_size=str(page))
        job = first_job(d.client(), "stash")
        mirror = tmp_path / "mirror.sqlite3"
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, d.log.read_text()[-2000:]
            if scene_count(mirror_db, tmp_path) >= seen:
                break
            time.sleep(0.01)
        assert d.proc is not None
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        d.close_client()
        held = scene_count(mirror_db, tmp_path)
        assert seen <= held < scenes
        d.start()
        done = wait_job(d.client(), job["id"], timeout=300)
        assert done["status"] == "completed", done["error"]
        messages = [m["message"] for m in done["logs"]]
        resumed = [m for m in messages if m.startswith("scene: resuming the pass after id ")]
        assert (
            resumed and int(resumed[0].rsplit(" ", 1)[1]) >= seen
        )  # from the checkpoint, not from scratch
        view = mirror_view(mirror, mirror_db)
        assert len(view["scenes"]) == scenes and view == library_view(fake.library)


def scene_count(backend: Backend, root: Path) -> int:
    """How many scenes the mirror of *root* holds (0: none yet, or no mirror yet)."""
    try:
        return int(backend.query(root, "SELECT count(*) FROM scenes")[0][0])
    except Exception:  # not created yet: sqlite3's or psycopg's error
        return 0


def _positions(root: Path, job_id: str, backend: Backend) -> tuple[Any, Any]:
    """The job's position in the mirror (without its counts) and its checkpoint in the
    store, read while the daemon is stopped."""
    import json

    def read(path: Path, sql: str) -> Any:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                row = conn.execute(sql, (job_id,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return json.loads(row[0]) if row else None

    if backend.postgres:
        key = f"job:{job_id}"
        rows = backend.query(root, "SELECT value FROM sync_state WHERE key=?", key)
        mirror = json.loads(rows[0][0]) if rows else None
    else:
        mirror = read(root / "mirror.sqlite3", "SELECT value FROM sync_state WHERE key='job:'||?")
    body = read(root / "state" / "sluiced.sqlite3", "SELECT body FROM jobs WHERE id=?")
    if isinstance(mirror, dict):
        mirror.pop("stats", None)
    return mirror, (body or {}).get("checkpoint")


def _outbox(root: Path, job_id: str, backend: Backend) -> int:
    """How many rows of the job's changes the mirror's outbox holds (read while the
    daemon is stopped)."""
    try:
        rows = backend.query(
            root, "SELECT count(*) FROM change_outbox WHERE key LIKE ?", f"{job_id}/%"
        )
    except Exception:  # not created yet: sqlite3's or psycopg's error
        return 0
    return int(rows[0][0])


def kill_9_between_the_mirror_and_the_store(
    d: DaemonProc, root: Path, job_id: str, backend: Backend, *, after: bool = False
) -> int:
    """SIGKILL the daemon at a moment the mirror has committed a position the store has
    not heard of yet (found by freezing the process with SIGSTOP and looking); *after*:
    at a moment the store has committed the mirror's position while the mirror's outbox
    still holds changes of the job. Returns how many looks it took."""
    import os
    import signal
    import time

    assert d.proc is not None
    deadline = time.monotonic() + 120
    for looks in range(1, 1_000_000):
        assert time.monotonic() < deadline and d.proc.poll() is None, "no gap found"
        os.kill(d.proc.pid, signal.SIGSTOP)
        mirror, store = _positions(root, job_id, backend)
        if after:
            found = mirror is not None and mirror == store and _outbox(root, job_id, backend) > 0
        else:
            found = mirror is not None and mirror != store
        if found:
            os.kill(d.proc.pid, signal.SIGKILL)
            d.proc.wait()
            d.close_client()
            return looks
        os.kill(d.proc.pid, signal.SIGCONT)
        time.sleep(0.002)
    raise AssertionError("unreachable")


def logged(root: Path, job_id: str) -> list[tuple[str, str, str]]:
    """The job's changes in the provisioning log of the store: (action, type, id)."""
    with sqlite3.connect(root / "state" / "sluiced.sqlite3") as conn:
        return conn.execute(
            "SELECT action, entity_type, source_id FROM changes WHERE job_id=? ORDER BY id",
            (job_id,),
        ).fetchall()


def assert_logged_once(root: Path, job_id: str, lib: Library, job_type: str) -> None:
    """Each change the job made is in the log exactly once: none lost, none twice."""
    from collections import Counter

    rows = Counter(logged(root, job_id))
    twice = [r for r, n in rows.items() if n > 1]
    assert not twice, twice[:5]
    if job_type == "sync":  # into an empty mirror: every object created once
        created = {(t, i) for a, t, i in rows if a == "create"}
        objects = {(t, i) for t in ("performer", "tag", "studio", "scene") for i in lib.tables[t]}
        assert created == objects, (len(created), len(objects))
        assert {a for a, _, _ in rows} <= {"create", "update"}
        assert {(t, i) for a, t, i in rows if a == "update"} <= created
    else:  # the scenes given, each written again once
        assert set(rows) == {("update", "scene", str(i)) for i in range(1, 3001)}


@pytest.mark.parametrize(
    ("job_type", "after"), [("sync", False), ("sync_scenes", False), ("sync", True)]
)
def test_kill_9_between_the_mirror_and_the_store_keeps_the_counts(
    tmp_path: Path, procs: list[DaemonProc], job_type: str, after: bool, mirror_db: Backend
) -> None:
    """Counts are what was written, whatever moment the process died: the mirror's rows,
    its position and the job's counts commit together, and a resumed job takes them.
    The provisioning log too: each change is logged once (the mirror's outbox holds the
    changes of its commits until the store has them; *after*: killed once the store has
    them, before the mirror removed them from its outbox)."""
    with FakeStash(
        generate(performers=100, tags=50, studios=10, scenes=6000, now=NOW), api_key="stash-key"
    ) as fake:
        d = start_daemon(fake, tmp_path, procs, mirror_db, page_size="100")
        c = d.client()
        first = first_job(c, "stash")["id"]
        if job_type == "sync":  # the first, full sync the scheduler starts
            job_id, total = first, 100 + 50 + 10 + 6000
        else:
            assert wait_job(c, first, timeout=120)["status"] == "completed"
            r = c.post("/api/sync/scenes", json={"scene_ids": [str(i) for i in range(1, 3001)]})
            job_id, total = r.json()["id"], 3000
        looks = kill_9_between_the_mirror_and_the_store(d, tmp_path, job_id, mirror_db, after=after)
        d.start()
        done = wait_job(d.client(), job_id, timeout=300)
        assert done["status"] == "completed", (done["error"], looks)
        stats = done["stats"]
        assert (stats["processed"], stats["created"] + stats["updated"]) == (total, total), looks
        assert stats["errors"] == stats["deleted"] == 0
        assert mirror_view(tmp_path / "mirror.sqlite3", mirror_db) == library_view(fake.library)
        assert_logged_once(tmp_path, job_id, fake.library, job_type)
