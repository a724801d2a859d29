"""Stash's plugin hooks, end to end: the plugin script (``stash-plugin/sluiced``) run as
Stash runs it (a subprocess, its JSON input on stdin, ``server_connection`` pointing at
the fake Stash, whose GraphQL answers the plugin's settings), against the daemon as a
subprocess listening on TCP behind a token."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluiced.plugins.stash.fake import FakeStash, generate

from .daemonproc import DaemonProc, daemons, first_job, wait_for, wait_job
from .test_stash_e2e import config, library_view, mirror_view, mutate

pytestmark = pytest.mark.e2e
procs = pytest.fixture(daemons)

PLUGIN = Path(__file__).resolve().parent.parent / "stash-plugin" / "sluiced"
SCRIPT = PLUGIN / "sluiced.py"
TOKEN = "hook-s3cret-token"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def stash() -> Any:
    with FakeStash(
        generate(performers=30, tags=25, studios=8, scenes=150, tz="-08:00", now=NOW),
        api_key="stash-key",
    ) as fake:
        yield fake


def start(stash: FakeStash, root: Path, procs: list[DaemonProc]) -> tuple[DaemonProc, str]:
    """The daemon, its first sync done, and the plugin's settings saved in Stash;
    returns the daemon and its TCP address."""
    port = free_port()
    (root / "token").write_text(TOKEN + "\n")
    text = config(stash, root).replace(
        'log_format = "json"\n',
        f'log_format = "json"\ntcp_listen = "127.0.0.1:{port}"\napi_token_file = "token"\n',
    )
    (root / "config.toml").write_text(text)
    d = DaemonProc(root)
    procs.append(d)
    d.start()
    job = wait_job(d.client(), first_job(d.client(), "stash")["id"])
    assert job["status"] == "completed", job
    url = f"http://127.0.0.1:{port}"
    stash.plugins["sluiced"] = {"url": url, "token": TOKEN}
    return d, url


def hook(
    stash: FakeStash, hook_type: str, ident: int, given: Any = None
) -> subprocess.CompletedProcess[str]:
    """Run the plugin's script for one hook, as Stash runs it."""
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        input=json.dumps(stash.plugin_input(hook_type, ident, given, plugin_dir=str(PLUGIN))),
        capture_output=True,
        text=True,
        timeout=30,
    )


def reported(out: subprocess.CompletedProcess[str]) -> bool:
    return out.returncode == 0 and out.stderr == "" and "reported" in out.stdout


def hook_jobs(d: DaemonProc) -> list[dict[str, Any]]:
    jobs = d.client().get("/api/sync/jobs", params={"limit": 1000}).json()["jobs"]
    return [j for j in jobs if j["parameters"].get("trigger") == "stash-hooks"]


def settled(d: DaemonProc) -> None:
    """Wait until no job is queued or running, and none is about to start."""
    time.sleep(1.5)  # a window still open
    wait_for(
        lambda: (
            not d.client().get("/api/sync/jobs", params={"status": "queued,running"}).json()["jobs"]
        )
    )


def mirrored(root: Path, sql: str, *args: Any) -> Any:
    with sqlite3.connect(root / "mirror.sqlite3") as c:
        row = c.execute(sql, args).fetchone()
    return row[0] if row else None


def test_an_edit_reaches_the_mirror_within_two_seconds(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d, _ = start(stash, tmp_path, procs)
    mutate(stash, op="clock", now="2025-06-02T12:00:00+00:00")
    mutate(stash, op="update", kind="scene", id="3", title="edited in Stash")
    began = time.monotonic()
    out = hook(stash, "Scene.Update.Post", 3, {"id": "3", "title": "edited in Stash"})
    assert reported(out), out
    wait_for(
        lambda: mirrored(tmp_path, "SELECT title FROM scenes WHERE id = 3") == "edited in Stash",
        timeout=10,
    )
    took = time.monotonic() - began
    print(f"\nan edit reached the mirror {took:.2f} s after its hook")
    assert took < 2.0

    # A performer's edit, a new marker (its scene named) and a tag's: as fast.
    mutate(stash, op="update", kind="performer", id="4", name="renamed in Stash")
    marker = mutate(
        stash, op="set_marker", scene_id="9", title="new marker", seconds=5.0, primary_tag="2"
    )
    began = time.monotonic()
    assert reported(hook(stash, "Performer.Update.Post", 4, {"id": "4"}))
    assert reported(hook(stash, "SceneMarker.Create.Post", int(marker), {"scene_id": "9"}))
    wait_for(
        lambda: (
            mirrored(tmp_path, "SELECT name FROM performers WHERE id = 4") == "renamed in Stash"
            and mirrored(tmp_path, "SELECT title FROM markers WHERE id = ?", int(marker))
            == "new marker"
        ),
        timeout=10,
    )
    print(f"a performer's edit and a marker reached the mirror in {time.monotonic() - began:.2f} s")
    settled(d)
    assert mirror_view(tmp_path / "mirror.sqlite3") == library_view(stash.library)


def test_a_stopped_integration_runs_no_job_for_a_hook(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d, _ = start(stash, tmp_path, procs)
    c = d.client()
    assert c.post("/api/sync/integrations/stash/stop").status_code == 200
    mutate(stash, op="clock", now="2025-06-02T12:00:00+00:00")
    mutate(stash, op="update", kind="scene", id="3", title="edited while stopped")
    assert reported(hook(stash, "Scene.Update.Post", 3, {"id": "3"}))
    time.sleep(2.5)  # the window closed, and nothing ran
    assert hook_jobs(d) == []
    assert mirrored(tmp_path, "SELECT title FROM scenes WHERE id = 3") != "edited while stopped"
    # Started again, its run reads what changed meanwhile.
    r = c.post("/api/sync/integrations/stash/start", json={"syncType": "incremental"})
    assert r.status_code == 202, r.text
    wait_for(
        lambda: (
            mirrored(tmp_path, "SELECT title FROM scenes WHERE id = 3") == "edited while stopped"
        ),
        timeout=20,
    )


@pytest.mark.parametrize("state", ["Paused", "Disabled"])
def test_an_integration_the_config_pauses_or_disables_runs_no_job_for_a_hook(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc], state: str
) -> None:
    d, _ = start(stash, tmp_path, procs)
    path = tmp_path / "config.toml"
    text = path.read_text().replace(
        "[integrations.stash]\n", f'[integrations.stash]\nstate = "{state}"\n'
    )
    path.write_text(text)
    d.signal(signal.SIGHUP)
    wait_for(
        lambda: d.client().get("/api/sync/integrations/stash").json()["schedule"]["state"] == state,
        timeout=20,
    )
    mutate(stash, op="clock", now="2025-06-02T12:00:00+00:00")
    mutate(stash, op="update", kind="scene", id="3", title="edited while held")
    assert reported(hook(stash, "Scene.Update.Post", 3, {"id": "3"}))
    time.sleep(2.5)  # the window closed, and nothing ran
    assert hook_jobs(d) == []
    assert mirrored(tmp_path, "SELECT title FROM scenes WHERE id = 3") != "edited while held"


def test_a_burst_of_a_thousand_hooks_makes_a_handful_of_jobs(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d, _ = start(stash, tmp_path, procs)
    mutate(stash, op="clock", now="2025-06-02T12:00:00+00:00")
    calls: list[tuple[str, int]] = []
    lib = stash.library  # edited in place: nothing reads it meanwhile
    for n in range(1000):  # each scene edited several times, and some performers and tags
        if n % 10 == 8:
            ident = n % 30 + 1
            lib.update("performer", str(ident), name=f"performer {n}")
            calls.append(("Performer.Update.Post", ident))
        elif n % 10 == 9:
            ident = n % 25 + 1
            lib.update("tag", str(ident), name=f"tag {n}")
            calls.append(("Tag.Update.Post", ident))
        else:
            ident = n % 150 + 1
            lib.update("scene", str(ident), title=f"burst {n}")
            calls.append(("Scene.Update.Post", ident))
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        outs = list(pool.map(lambda call: hook(stash, *call), calls))
    burst = time.monotonic() - began
    assert all(reported(o) for o in outs), next(o for o in outs if not reported(o))
    wait_for(lambda: mirror_view(tmp_path / "mirror.sqlite3") == library_view(lib), timeout=120)
    print(f"\nthe mirror equals Stash {time.monotonic() - began - burst:.1f} s after the burst")
    settled(d)
    jobs = hook_jobs(d)
    sizes = [sum(map(len, j["parameters"]["ids"].values())) for j in jobs]
    print(f"1000 hook calls in {burst:.1f} s made {len(jobs)} jobs, of {sizes} objects")
    # A window closes after 1 s of quiet or 1 min at most: a burst stretched by a loaded
    # machine may take a job more each half minute, never one a call.
    most = max(8, 3 + int(burst // 30))
    assert 1 <= len(jobs) <= most, [(j["createdAt"], j["type"], j["parameters"]) for j in jobs]
    assert all(j["type"] == "sync_changes" for j in jobs)
    assert all(j["status"] == "completed" and j["result"]["errors"] == 0 for j in jobs), jobs
    assert mirror_view(tmp_path / "mirror.sqlite3") == library_view(stash.library)


def test_destroys_and_merges_leave_the_mirror_once_confirmed(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d, _ = start(stash, tmp_path, procs)
    assert mirrored(tmp_path, "SELECT count(*) FROM scenes WHERE id = 11") == 1
    mutate(stash, op="delete", kind="scene", id="11")
    mutate(stash, op="delete", kind="performer", id="2")
    mutate(stash, op="merge_tags", sources=["5", "6"], destination="1")
    assert reported(hook(stash, "Scene.Destroy.Post", 11, {"id": "11"}))
    assert reported(hook(stash, "Performer.Destroy.Post", 2, {"id": "2"}))
    assert reported(hook(stash, "Tag.Merge.Post", 1, {"source": ["5", "6"], "destination": "1"}))
    wait_for(lambda: mirrored(tmp_path, "SELECT count(*) FROM scenes WHERE id = 11") == 0, 10)
    settled(d)
    assert mirrored(tmp_path, "SELECT count(*) FROM performers WHERE id = 2") == 0
    assert mirrored(tmp_path, "SELECT count(*) FROM tags WHERE id IN (5, 6)") == 0
    assert mirror_view(tmp_path / "mirror.sqlite3") == library_view(stash.library)
    # A hook for an object that is still there removes nothing (Stash is asked first).
    assert reported(hook(stash, "Scene.Destroy.Post", 12, {"id": "12"}))
    settled(d)
    assert mirrored(tmp_path, "SELECT count(*) FROM scenes WHERE id = 12") == 1
    jobs = hook_jobs(d)
    assert jobs and all(j["status"] == "completed" for j in jobs), jobs


def test_the_script_never_holds_stash_up(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    # sluiced down: nothing listens at the address.
    stash.plugins["sluiced"] = {"url": f"http://127.0.0.1:{free_port()}", "token": TOKEN}
    began = time.monotonic()
    out = hook(stash, "Scene.Update.Post", 3)
    took = time.monotonic() - began
    print(f"\nwith sluiced down the script returned in {took:.2f} s: {out.stderr.strip()!r}")
    assert out.returncode == 0 and took < 2.5
    assert len(out.stderr.splitlines()) == 1 and "did not answer" in out.stderr
    assert TOKEN not in out.stderr + out.stdout

    # sluiced accepting the connection but never answering: the timeout ends it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        stash.plugins["sluiced"]["url"] = f"http://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        out = hook(stash, "Scene.Update.Post", 3)
        took = time.monotonic() - began
    assert out.returncode == 0 and took < 3.0 and "did not answer" in out.stderr, out

    # sluiced answering a byte at a time (each read within the socket timeout): the
    # script's bound is for the whole request.
    with socket.socket() as trickling:
        trickling.bind(("127.0.0.1", 0))
        trickling.listen(8)
        stop = threading.Event()

        def trickle() -> None:
            conn, _ = trickling.accept()
            with conn:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}":
                    if stop.wait(0.5):
                        return
                    conn.sendall(bytes([byte]))

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        stash.plugins["sluiced"]["url"] = f"http://127.0.0.1:{trickling.getsockname()[1]}"
        began = time.monotonic()
        out = hook(stash, "Scene.Update.Post", 3)
        took = time.monotonic() - began
        stop.set()
    assert out.returncode == 0 and took < 3.0 and "did not answer" in out.stderr, (took, out)

    # No settings saved in Stash yet.
    stash.plugins.clear()
    out = hook(stash, "Scene.Update.Post", 3)
    assert out.returncode == 0 and "Settings > Plugins" in out.stderr


def test_a_wrong_token_is_said_without_showing_it(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    _, url = start(stash, tmp_path, procs)
    stash.plugins["sluiced"] = {"url": url, "token": "not-the-token"}
    out = hook(stash, "Scene.Update.Post", 3)
    assert out.returncode == 0 and len(out.stderr.splitlines()) == 1
    assert "refused the API token (401)" in out.stderr
    assert "not-the-token" not in out.stderr + out.stdout and TOKEN not in out.stderr


def test_the_route_checks_each_change(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d, url = start(stash, tmp_path, procs)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as c:

        def field(body: Any) -> Any:
            r = c.post("/api/stash/hooks", json=body)
            assert r.status_code == 422, r.text
            return r.json()["error"]["field"]

        ok = {"type": "Scene.Update.Post", "id": 3}
        assert field({"changes": [ok, {"type": "Scene.Renamed.Post", "id": 3}]}) == (
            "changes[1].type"
        )
        assert field({"changes": [{"type": "Tag.Update.Post", "id": "tag7"}]}) == "changes[0].id"
        assert field({"changes": [{"type": "Tag.Update.Post", "id": 0}]}) == "changes[0].id"
        assert field({"changes": [{"type": "Tag.Update.Post", "id": "9" * 19}]}) == (
            "changes[0].id"
        )
        assert field({"changes": []}) == "changes"
        r = c.post(
            "/api/stash/hooks",
            json={
                "changes": [ok, {"type": "Image.Update.Post", "id": 4}],
                "integrationId": "stash",
            },
        )
        assert r.status_code == 202 and r.json() == {
            "integrationId": "stash",
            "accepted": 1,
            "ignored": 1,
        }
        assert (
            c.post("/api/stash/hooks", json={"changes": [ok], "integrationId": "nope"}).status_code
            == 404
        )
    document = d.client().get("/api/openapi.json").json()
    body = document["paths"]["/api/stash/hooks"]["post"]["requestBody"]
    change = body["content"]["application/json"]["schema"]["properties"]["changes"]["items"]
    assert "Tag.Merge.Post" in change["properties"]["type"]["enum"]


def test_the_settings_query_validates_against_stashs_schema() -> None:
    graphql = pytest.importorskip("graphql")
    from graphql.validation import NoDeprecatedCustomRule

    from .test_stash_queries import load_stash_schema

    script = SCRIPT.read_text()
    query = script.split('SETTINGS = "', 1)[1].split('"\n', 1)[0]
    errors = graphql.validate(
        load_stash_schema(),
        graphql.parse(query),
        [*graphql.specified_rules, NoDeprecatedCustomRule],
    )
    assert errors == []
