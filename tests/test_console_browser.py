"""The web console in a real browser: Debian's Chromium driven by Playwright, against a
daemon (a subprocess, console on, on loopback TCP) that mirrors the fake Stash and keeps
a JSON Lines integration with one object in escrow.

One browser for the session, one daemon for the module (with a second Stash
integration whose API key Stash refuses: it is quarantined), a fresh browser context
(so a fresh login) for each test. With ``SLUICED_SCREENSHOTS=DIR`` the tests save screenshots
of the pages into DIR (the README shows those in docs/console/).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from sluiced.plugins.stash.fake import FakeStash, generate

from .daemonproc import DaemonProc, wait_for, wait_job, write_people

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "console-test-token-0123456789"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
#: The Stash queries of a sync's scene pass: held, the job waits in it.
SCENE_QUERIES = ["ScenesPage", "SceneIdsChanged", "SceneIdsPage"]


def skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"no {CHROMIUM} (apt-get install chromium; .ci/system-packages does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium for the whole session."""
    if (reason := skip_reason()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Console:
    """The daemon, its fake Stash, and what the tests reach them with."""

    def __init__(self, daemon: DaemonProc, stash: FakeStash, url: str) -> None:
        self.daemon, self.stash, self.url = daemon, stash, url
        self.api = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20
        )

    def hold(self, operations: list[str]) -> None:
        """Hold the fake Stash's answers to *operations* (none: release them)."""
        r = httpx.post(
            f"{self.stash.url}/fake/mutate", json={"op": "hold", "operations": operations}
        )
        r.raise_for_status()


def config(stash: FakeStash, port: int) -> str:
    return f"""
[daemon]
state_dir = "state"
control_socket = "state/ctl.sock"
log_format = "json"
console = true
tcp_listen = "127.0.0.1:{port}"
api_token_file = "token"

[integrations.stash]
entity_types = ["performer", "tag", "studio", "scene"]
interval = "1h"
jitter = "0s"
[integrations.stash.source]
connector = "stash"
url = "{stash.url}"
api_key_file = "key"
timeout = "60s"
[integrations.stash.target]
connector = "stash-mirror"
path = "mirror.sqlite3"

[integrations.locked]
entity_types = ["performer", "tag", "studio", "scene"]
interval = "1h"
jitter = "0s"
[integrations.locked.source]
connector = "stash"
url = "{stash.url}"
api_key_file = "wrong-key"
[integrations.locked.target]
connector = "stash-mirror"
path = "locked.sqlite3"

[integrations.people]
entity_types = ["user"]
interval = "1h"
jitter = "0s"
[integrations.people.source]
connector = "jsonl"
paths = {{ user = "people.jsonl" }}
[integrations.people.target]
connector = "jsonl"
paths = {{ user = "out/people.jsonl" }}
"""


@pytest.fixture(scope="module")
def console(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    with FakeStash(
        generate(performers=20, tags=15, studios=5, scenes=60, now=NOW), api_key="stash-key"
    ) as stash:
        port = free_port()
        (root / "token").write_text(TOKEN + "\n")
        (root / "key").write_text("stash-key\n")
        (root / "wrong-key").write_text("not-the-key\n")  # Stash refuses it: a quarantine
        (root / "config.toml").write_text(config(stash, port))
        write_people(root / "people.jsonl", 20)
        with (root / "people.jsonl").open("a") as f:
            f.write("{not json\n")  # an object that cannot be read: escrowed
        daemon = DaemonProc(root).start()
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _answers(url), timeout=20)
            c = Console(daemon, stash, url)
            for ident in ("stash", "people"):  # the first runs of both, out of the way
                wait_for(lambda i=ident: _jobs(c, i), timeout=30)
                for job in _jobs(c, ident):
                    wait_job(c.api, job["id"])
            yield c
            c.api.close()
        finally:
            daemon.kill()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/console/login", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _jobs(c: Console, integration: str) -> list[dict[str, Any]]:
    return list(c.api.get("/api/sync/jobs", params={"integrationId": integration}).json()["jobs"])


class Page:
    """A logged-in page, and the errors its console printed (CSP violations among them)."""

    def __init__(self, browser: Any, console: Console, **context: Any) -> None:
        self.context = browser.new_context(base_url=console.url, **context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        #: Errors a test causes on purpose (the browser reports a refused request).
        self.expected: list[str] = []
        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto("/console/")
        assert self.page.url.endswith("/console/login")
        self.page.get_by_label("API token").fill(TOKEN)
        self.page.get_by_role("button", name="Log in").click()
        self.page.get_by_role("heading", name="Integrations", level=1).wait_for()

    def shot(self, name: str, part: Any = None) -> None:
        """Save the page (or the element *part* locates) as NAME.png, when asked to."""
        folder = os.environ.get("SLUICED_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            path = str(Path(folder) / f"{name}.png")
            if part is None:
                self.page.screenshot(path=path, full_page=True)
            else:
                part.screenshot(path=path)

    def close(self) -> None:
        self.context.close()

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Page]:
    p = Page(browser, console, viewport={"width": 1200, "height": 900})
    yield p
    p.close()
    assert p.unexpected_errors() == []


def test_a_stash_sync_from_the_form_shows_its_progress_live_and_its_log(
    page: Page, console: Console
) -> None:
    from playwright.sync_api import expect

    pg = page.page
    page.shot("integrations")
    documents: list[str] = []
    pg.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)
    pg.get_by_role("link", name="stash", exact=True).click()
    form = pg.get_by_role("form", name="Sync from Stash")
    for label in (
        "Full Resync (ignore timestamps)",
        "Include Scenes",
        "Include Performers",
        "Include Tags",
        "Include Studios",
    ):
        expect(form.get_by_label(label)).to_be_visible()
    expect(pg.get_by_role("form", name="Sync Scenes").get_by_label("Scene IDs")).to_be_visible()
    page.shot("integration")
    form.get_by_label("Full Resync (ignore timestamps)").check()
    console.hold(SCENE_QUERIES)  # the job waits in its scene pass
    try:
        form.get_by_role("button", name="Sync from Stash").click()
        pg.get_by_role("heading", name="Job job-").wait_for()
        job_id = pg.url.rsplit("/", 1)[1]
        job = console.api.get(f"/api/sync/jobs/{job_id}").json()
        assert job["type"] == "sync" and job["parameters"]["full_resync"] is True
        assert job["parameters"]["include_scenes"] is True
        expect(pg.locator("#job-status")).to_have_text("running", timeout=20_000)
        expect(pg.locator("#job-percent")).not_to_have_text("100 %")
    finally:
        console.hold([])
    expect(pg.locator("#job-percent")).to_have_text("100 %", timeout=30_000)
    expect(pg.locator("#job-status")).to_have_text("completed")
    assert documents == []  # pushed over the job-events stream: no page was loaded again
    pg.get_by_text("Log", exact=True).click()
    expect(pg.locator("#job-log li").last).to_contain_text("completed: processed")
    page.shot("job")


def test_sync_scenes_takes_the_scene_ids_from_its_text_field(page: Page, console: Console) -> None:
    from playwright.sync_api import expect

    pg = page.page
    pg.goto("/console/#/integrations/stash")
    form = pg.get_by_role("form", name="Sync Scenes")
    form.get_by_label("Scene IDs").fill("1, 2 3")
    form.get_by_role("button", name="Sync Scenes").click()
    pg.get_by_role("heading", name="Job job-").wait_for()
    job_id = pg.url.rsplit("/", 1)[1]
    expect(pg.locator("#job-status")).to_have_text("completed", timeout=30_000)
    job = console.api.get(f"/api/sync/jobs/{job_id}").json()
    assert job["type"] == "sync_scenes" and job["parameters"]["scene_ids"] == ["1", "2", "3"]
    pg.goto("/console/#/jobs?type=sync_scenes")
    expect(pg.get_by_role("link", name=job_id)).to_be_visible()
    page.shot("jobs")


def test_the_job_forms_are_used_from_the_keyboard_and_say_what_is_wrong_at_the_field(
    page: Page, console: Console
) -> None:
    from playwright.sync_api import expect

    pg = page.page
    pg.goto("/console/#/integrations/stash")
    scenes = pg.get_by_role("form", name="Sync Scenes")
    ids = scenes.get_by_label("Scene IDs")
    expect(ids).to_have_accessible_description(re.compile("Separated by commas or spaces"))
    before = len(_jobs(console, "stash"))
    ids.fill(" , ,")
    ids.press("Enter")
    expect(scenes.get_by_role("alert")).to_have_text("Scene IDs: type at least one id")
    expect(ids).to_have_attribute("aria-invalid", "true")
    expect(ids).to_be_focused()
    assert len(_jobs(console, "stash")) == before
    # Sync from Stash with Full Resync off and only performers, from the keyboard.
    sync = pg.get_by_role("form", name="Sync from Stash")
    expect(sync.get_by_role("group", name="What to sync")).to_be_visible()
    for label in ("Include Scenes", "Include Tags", "Include Studios"):
        box = sync.get_by_label(label)
        expect(box).to_be_checked()  # the seed's defaults
        box.focus()
        pg.keyboard.press("Space")
        expect(box).not_to_be_checked()
    expect(sync.get_by_label("Full Resync (ignore timestamps)")).not_to_be_checked()
    sync.get_by_role("button", name="Sync from Stash").focus()
    pg.keyboard.press("Enter")
    pg.get_by_role("heading", name="Job job-").wait_for()
    job_id = pg.url.rsplit("/", 1)[1]
    expect(pg.locator("#job-status")).to_have_text("completed", timeout=30_000)
    parameters = console.api.get(f"/api/sync/jobs/{job_id}").json()["parameters"]
    assert parameters == {
        "full_resync": False,
        "include_scenes": False,
        "include_performers": True,
        "include_tags": False,
        "include_studios": False,
    }


def test_sync_scenes_takes_the_scenes_selected_in_the_provisioning_log(
    page: Page, console: Console
) -> None:
    from playwright.sync_api import expect

    pg = page.page
    pg.goto("/console/#/integrations/stash")
    log = pg.get_by_role("form", name="Provisioning log")
    log.get_by_label("Entity type").select_option("scene")
    log.get_by_role("button", name="Show changes").click()
    expect(log.locator("tbody tr").first).to_contain_text("scene")
    expect(log.get_by_label("Select performer", exact=False)).to_have_count(0)
    scenes = pg.get_by_role("form", name="Sync Scenes")
    add = scenes.get_by_role("button", name=re.compile("Add the scene ids selected"))
    expect(add).to_be_disabled()
    shown = log.locator("tbody input[data-pick-id]").evaluate_all(
        "boxes => boxes.map(b => b.dataset.pickId)"
    )
    first, second = list(dict.fromkeys(shown))[:2]  # two scenes the log shows
    log.get_by_label(f"Select scene {first}", exact=True).first.check()
    log.get_by_label(f"Select scene {second}", exact=True).first.press("Space")  # keyboard
    expect(add).to_have_text("Add the scene ids selected in the provisioning log (2)")
    typed = next(str(i) for i in range(1, 60) if str(i) not in (first, second))
    scenes.get_by_label("Scene IDs").fill(typed)
    add.click()
    expect(scenes.get_by_label("Scene IDs")).to_have_value(f"{typed}, {first}, {second}")
    scenes.get_by_role("button", name="Sync Scenes").click()
    pg.get_by_role("heading", name="Job job-").wait_for()
    job_id = pg.url.rsplit("/", 1)[1]
    expect(pg.locator("#job-status")).to_have_text("completed", timeout=30_000)
    job = console.api.get(f"/api/sync/jobs/{job_id}").json()
    assert job["parameters"]["scene_ids"] == [typed, first, second]


def test_an_integration_is_paused_and_started(page: Page, console: Console) -> None:
    from playwright.sync_api import expect

    pg = page.page
    card = pg.get_by_role("region", name="people")
    card.get_by_role("button", name="Pause").click()
    expect(pg.get_by_role("region", name="people").locator(".badge").first).to_have_text("Paused")
    assert console.api.get("/api/sync/integrations/people").json()["schedule"]["state"] == "Paused"
    pg.get_by_role("region", name="people").get_by_role("button", name="Start").click()
    expect(pg.get_by_role("region", name="people").locator(".badge").first).not_to_have_text(
        "Paused"
    )
    assert console.api.get("/api/sync/integrations/people").json()["schedule"]["state"] == "Active"


def test_an_escrow_is_retried(page: Page, console: Console) -> None:
    from playwright.sync_api import expect

    pg = page.page
    pg.goto("/console/#/integrations/people")
    escrows = pg.get_by_role("region", name="Escrows (1)")
    expect(escrows.get_by_role("cell", name="people.jsonl:21", exact=True)).to_be_visible()
    expect(escrows).to_contain_text("invalid JSON")
    before = len(_jobs(console, "people"))
    escrows.get_by_role("button", name="Retry user people.jsonl:21").click()
    expect(pg.locator("#notice")).to_contain_text("Retry: retrying now")
    assert len(_jobs(console, "people")) == before + 1


def test_a_schema_error_is_shown_at_the_path_the_server_names(page: Page) -> None:
    from playwright.sync_api import expect

    pg = page.page
    page.expected.append("the server responded with a status of 422")
    pg.goto("/console/#/integrations/people")
    editor = pg.get_by_label("The effective schema (JSON)", exact=False)
    schema = json.loads(editor.input_value())
    schema["objectMappings"][0]["attributeMappings"] = [
        {"targetAttributeName": "id", "source": {"type": "Direct", "name": "id"}},
        {
            "targetAttributeName": "label",
            "source": {"type": "Expression", "expression": "PCase([name]"},
        },
    ]
    editor.fill(json.dumps(schema))
    pg.get_by_role("button", name="Save schema").click()
    error = pg.locator("#schema-error")
    expect(error).to_have_text(
        "schema.objectMappings[0].attributeMappings[1].source.expression: "
        "column 13: expected , or ) in the arguments of PCase"
    )
    expect(error.locator("code")).to_have_text(
        "schema.objectMappings[0].attributeMappings[1].source.expression"
    )
    selected = pg.evaluate(
        "() => { const a = document.getElementById('schema-text');"
        " return a.value.slice(a.selectionStart, a.selectionEnd); }"
    )
    assert selected == '"PCase([name]"'
    page.shot("schema")


def test_requests_without_the_cookie_or_the_csrf_token_are_refused(
    page: Page, console: Console, browser: Any
) -> None:
    pg = page.page
    home = pg.request.get("/console/")
    assert home.status == 200 and home.headers["content-security-policy"] == CSP
    assert home.headers["x-content-type-options"] == "nosniff"
    assert home.headers["referrer-policy"] == "no-referrer"
    assert TOKEN not in home.text()
    body = {"integrationId": "people", "type": "incremental"}
    # The browser's cookie, but no CSRF token: refused.
    r = pg.request.post("/api/sync/jobs", data=body)
    assert r.status == 403 and r.json()["error"]["code"] == "CsrfTokenMissing"
    assert pg.request.get("/api/sync/jobs").status == 200
    # No cookie at all: refused.
    anonymous = browser.new_context(base_url=console.url)
    try:
        assert anonymous.request.get("/api/sync/jobs").status == 401
        assert anonymous.request.post("/api/sync/jobs", data=body).status == 401
        assert anonymous.request.get("/console/keyed-targets").status == 401
    finally:
        anonymous.close()
    assert TOKEN not in console.daemon.log.read_text()


def test_readable_on_a_phone(browser: Any, console: Console) -> None:
    p = Page(browser, console, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        width = p.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the screen
        p.shot("phone")
    finally:
        p.close()
    assert p.unexpected_errors() == []


def test_the_console_is_usable_from_the_keyboard(page: Page) -> None:
    from playwright.sync_api import expect

    pg = page.page
    pg.keyboard.press("Tab")
    expect(pg.get_by_role("link", name="Skip to content")).to_be_focused()
    pg.get_by_role("link", name="Jobs", exact=True).focus()
    pg.keyboard.press("Enter")
    expect(pg.get_by_role("heading", name="Jobs", level=1)).to_be_focused()
    started = time.monotonic()
    pg.get_by_label("Status").select_option("completed")
    pg.get_by_role("button", name="Filter").press("Enter")
    expect(pg.get_by_role("heading", name="Jobs", level=1)).to_be_visible()
    assert "status=completed" in pg.url and time.monotonic() - started < 10


def test_a_dry_run_shows_its_plan_and_provisioning_on_demand_its_steps(
    page: Page, console: Console
) -> None:
    from playwright.sync_api import expect

    pg = page.page
    pg.goto("/console/#/integrations/people")
    pod = pg.get_by_role("form", name="Provision on demand")
    pod.get_by_label("Source object id").fill("P000003")
    pod.get_by_label("Dry run (only say what would happen)").check()
    pod.get_by_role("button", name="Provision").click()
    expect(pod.locator(".steps li").first).to_be_visible()
    assert pod.locator(".steps li").count() >= 2
    people = console.daemon.root / "people.jsonl"
    people.write_text(people.read_text().replace('"person 3"', '"renamed 3"'))
    pg.get_by_role("button", name="Dry run", exact=True).click()
    pg.get_by_role("heading", name="Job job-").wait_for()
    job_id = pg.url.rsplit("/", 1)[1]
    plan = pg.get_by_role("region", name="Dry run plan")
    expect(plan).to_be_visible(timeout=30_000)
    change = plan.get_by_role("row").filter(has_text="P000003")
    expect(change).to_contain_text("update")
    expect(change.locator("del")).to_have_text("person 3")
    expect(change.locator("ins")).to_have_text("renamed 3")
    job = console.api.get(f"/api/sync/jobs/{job_id}").json()
    assert job["parameters"].get("dry_run") is True and job["status"] == "completed"
    page.shot("plan")


def test_a_quarantine_is_shown_with_its_reason_error_and_series(page: Page) -> None:
    from playwright.sync_api import expect

    card = page.page.get_by_role("region", name="locked")
    expect(card.locator(".badge").first).to_have_text("Quarantine", timeout=30_000)
    quarantine = card.locator(".quarantine:not(.badge)")
    expect(quarantine).to_contain_text("CredentialsRejected since")
    expect(quarantine).to_contain_text("refused the API key (401)")
    expect(quarantine).to_contain_text("next attempt")
    expect(quarantine).to_contain_text("quarantined 1 time in a row since")
    expect(card).to_contain_text("Failed")  # the last run
    expect(card).to_contain_text("every 1 h (Active)")


def test_an_integrations_own_page_follows_the_daemon(page: Page, console: Console) -> None:
    from playwright.sync_api import expect

    pg = page.page
    pg.goto("/console/#/integrations/people")
    badge = pg.get_by_role("region", name="Status").locator(".badge").first
    expect(badge).to_have_text("Active")
    console.api.post("/api/sync/integrations/people/pause", json={}).raise_for_status()
    try:
        expect(badge).to_have_text("Paused", timeout=15_000)  # no click, no reload
    finally:
        r = console.api.post(
            "/api/sync/integrations/people/start", json={"scheduleImmediate": False}
        )
        r.raise_for_status()
    expect(badge).to_have_text("Active", timeout=15_000)


def test_the_integrations_page_follows_the_daemon(page: Page, console: Console) -> None:
    from playwright.sync_api import expect

    badge = page.page.get_by_role("region", name="people").locator(".badge").first
    expect(badge).to_have_text("Active")
    console.api.post("/api/sync/integrations/people/pause", json={}).raise_for_status()
    try:
        expect(badge).to_have_text("Paused", timeout=15_000)  # no click, no reload
    finally:
        r = console.api.post(
            "/api/sync/integrations/people/start", json={"scheduleImmediate": False}
        )
        r.raise_for_status()
    expect(badge).to_have_text("Active", timeout=15_000)


def test_a_job_is_stopped_and_deleted_from_its_page(page: Page, console: Console) -> None:
    from playwright.sync_api import expect

    pg = page.page
    page.expected.append("the server responded with a status of 409")  # resuming a stopped job
    console.hold(SCENE_QUERIES)
    try:
        r = console.api.post("/api/sync", json={"integrationId": "stash", "full_resync": True})
        job_id = r.json()["id"]
        pg.goto(f"/console/#/jobs/{job_id}")
        expect(pg.locator("#job-status")).to_have_text("running", timeout=20_000)
        pg.get_by_role("button", name="Stop").click()
        expect(pg.locator("#notice")).to_contain_text("Stop: Job stop requested")
    finally:
        console.hold([])
    expect(pg.locator("#job-status")).to_have_text("stopped", timeout=30_000)
    pg.get_by_role("button", name="Resume").click()
    expect(pg.locator("#notice")).to_contain_text("a stopped job cannot be resumed")
    pg.get_by_role("button", name="Delete").click()
    expect(pg.get_by_role("heading", name="Jobs", level=1)).to_be_visible()
    assert console.api.get(f"/api/sync/jobs/{job_id}").status_code == 404


def test_a_logout_in_another_tab_ends_the_job_pages_stream_but_not_the_tokens(
    browser: Any, console: Console
) -> None:
    from playwright.sync_api import expect

    p = Page(browser, console, viewport={"width": 1200, "height": 900})
    p.expected.append("the server responded with a status of 401")  # the refused reconnection
    console.hold(SCENE_QUERIES)
    try:
        r = console.api.post("/api/sync", json={"integrationId": "stash", "full_resync": True})
        job_id = r.json()["id"]
        pg = p.page
        pg.goto(f"/console/#/jobs/{job_id}")
        expect(pg.locator("#job-status")).to_have_text("running", timeout=20_000)
        with console.api.stream("GET", f"/api/sync/jobs/{job_id}/events") as script:
            lines = script.iter_lines()
            assert next(lines) == "event: progress"
            other = p.context.new_page()  # a second tab of the same session
            other.goto("/console/")
            other.get_by_role("button", name="Log out").click()
            other.wait_for_url("**/console/login")
            pg.wait_for_url("**/console/login", timeout=30_000)  # its stream ended, refused
            console.hold([])
            assert "event: end" in lines  # the token's stream goes on to the job's end
        wait_job(console.api, job_id)
    finally:
        console.hold([])
        p.close()
    assert p.unexpected_errors() == []


#: The browser's time zone in the provisioning log's test: its times are typed in it.
ZONE = "America/New_York"


def test_the_provisioning_log_lists_what_the_runs_changed(browser: Any, console: Console) -> None:
    from playwright.sync_api import expect

    people = console.daemon.root / "people.jsonl"
    people.write_text(people.read_text().replace('"person 7"', '"person seven"'))
    answer = console.api.post(
        "/api/sync/jobs", json={"integrationId": "people", "type": "full_sync"}
    )
    wait_job(console.api, answer.json()["jobId"])
    p = Page(browser, console, viewport={"width": 1200, "height": 900}, timezone_id=ZONE)
    p.expected.append("the server responded with a status of 422")  # a year the API refuses
    try:
        pg = p.page
        pg.goto("/console/#/integrations/people")
        log = pg.get_by_role("form", name="Provisioning log")
        rows = log.locator("tbody tr")
        update = rows.filter(has_text="P000007").filter(has_text="update")
        expect(update.locator("del")).to_have_text("person 7")
        expect(update.locator("ins")).to_have_text("person seven")
        create = rows.filter(has_text="P000019").filter(has_text="create")
        expect(create).to_contain_text("name: person 19")
        escrow = rows.filter(has_text="escrow").first
        expect(escrow).to_contain_text("people.jsonl:21")
        expect(escrow.locator(".reason")).to_contain_text("source: invalid JSON")

        # By object: what happened to P000007, newest first.
        log.get_by_label("Object id").fill("P000007")
        log.get_by_role("button", name="Show changes").click()
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("update")
        expect(rows.nth(1)).to_contain_text("create")
        p.shot("changes", log)

        # By action, in pages of 10 that "More" continues.
        log.get_by_label("Object id").fill("")
        log.get_by_label("Action").select_option("create")
        log.get_by_label("Per page").select_option("10")
        log.get_by_role("button", name="Show changes").click()
        expect(rows).to_have_count(10)
        log.get_by_role("button", name="More").click()
        expect(rows).to_have_count(20)
        expect(log.get_by_role("button", name="More")).to_have_count(0)
        for action in rows.locator("td:nth-child(2)").all_inner_texts():
            assert action == "create"
        assert len(set(rows.locator("td:nth-child(4)").all_inner_texts())) == 20  # no row twice

        # A time without an offset is the browser's local time, sent with its offset.
        log.get_by_label("Action").select_option("")
        now = datetime.now(ZoneInfo(ZONE))
        for since, found in ((now - timedelta(hours=1), True), (now + timedelta(hours=1), False)):
            log.get_by_label("Since").fill(since.strftime("%Y-%m-%d %H:%M"))
            with pg.expect_request(lambda r: "/changes?" in r.url) as sent:
                log.get_by_role("button", name="Show changes").click()
            query = parse_qs(urlsplit(sent.value.url).query)
            assert query["since"] == [since.strftime("%Y-%m-%dT%H:%M:00") + _offset(since)]
            if found:
                expect(rows.first).to_be_visible()
            else:
                expect(log.get_by_text("No changes match.")).to_be_visible()

        # A wrong time is said next to its field: the form's own check, then the API's.
        since_field = log.get_by_label("Since")
        since_field.fill("yesterday")
        log.get_by_role("button", name="Show changes").click()
        expect(log.locator("#ch-since-error")).to_contain_text("expected a date and time")
        expect(since_field).to_have_attribute("aria-invalid", "true")
        since_field.fill("3000-01-01T00:00:00Z")
        log.get_by_role("button", name="Show changes").click()
        expect(log.locator("#ch-since-error")).to_contain_text("since")
        expect(log.locator("#ch-until-error")).to_be_hidden()
    finally:
        p.close()
    assert p.unexpected_errors() == []


#: Times typed in Europe/Berlin around its changes of 2026 (clocks forward at 02:00 on
#: 29 March, back at 03:00 on 25 October), and the RFC 3339 times the console sends.
BERLIN_TIMES = [
    ("2026-03-29 01:59", "2026-03-29T01:59:00+01:00"),
    ("2026-03-29 02:30", "2026-03-29T03:30:00+02:00"),  # skipped: the same time after
    ("2026-03-29 03:00", "2026-03-29T03:00:00+02:00"),
    ("2026-03-28", "2026-03-28T00:00:00+01:00"),
    ("2026-03-30", "2026-03-30T00:00:00+02:00"),
    ("2026-10-25 01:59:30", "2026-10-25T01:59:30+02:00"),
    ("2026-10-25 02:30", "2026-10-25T02:30:00+02:00"),  # passed twice: the first
    ("2026-10-25 03:00", "2026-10-25T03:00:00+01:00"),
    ("2026-10-25 12:00:00.250", "2026-10-25T12:00:00.250+01:00"),
    ("2026-10-25T02:30:00+01:00", "2026-10-25T02:30:00+01:00"),  # an offset: as typed
    ("2026-03-29 02:30Z", "2026-03-29T02:30:00Z"),
]


def test_the_provisioning_logs_times_carry_the_offset_of_their_instant_across_dst(
    browser: Any, console: Console
) -> None:
    from playwright.sync_api import expect

    p = Page(browser, console, viewport={"width": 1200, "height": 900}, timezone_id="Europe/Berlin")
    try:
        pg = p.page
        pg.goto("/console/#/integrations/people")
        log = pg.get_by_role("form", name="Provisioning log")
        expect(log.locator("#ch-since-hint")).to_have_text(
            "Without an offset: this browser's time zone, Europe/Berlin."
        )
        for field in ("Since", "Until"):
            for typed, sent in BERLIN_TIMES:
                log.get_by_label(field).fill(typed)
                with pg.expect_request(lambda r: "/changes?" in r.url) as request:
                    log.get_by_role("button", name="Show changes").click()
                query = parse_qs(urlsplit(request.value.url).query)
                assert query[field.lower()] == [sent], typed
            log.get_by_label(field).fill("")
    finally:
        p.close()
    assert p.unexpected_errors() == []


def _offset(at: datetime) -> str:
    """*at*'s UTC offset as RFC 3339 writes it (``-05:00``)."""
    minutes = int(at.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def test_a_mirror_offers_no_schema_to_edit(page: Page, console: Console) -> None:
    from playwright.sync_api import expect

    pg = page.page
    pg.goto("/console/#/integrations/stash")
    schema = pg.get_by_role("region", name="Schema")
    expect(schema.locator("#schema-keyed")).to_contain_text("keyed by source ids (stash-mirror)")
    expect(pg.get_by_role("button", name="Save schema")).to_have_count(0)
    expect(pg.locator("#schema-text")).to_have_count(0)
    expect(pg.get_by_role("form", name="Provision on demand")).to_have_count(0)
    expect(pg.get_by_role("button", name="Dry run", exact=True)).to_have_count(0)
    log = pg.get_by_role("form", name="Provisioning log")
    expect(log.locator("tbody tr").first).to_be_visible()  # its jobs' changes, logged
    # The people integration keeps its editable schema.
    pg.goto("/console/#/integrations/people")
    expect(pg.get_by_role("button", name="Save schema")).to_be_visible()


def test_the_log_of_an_integration_deleted_through_the_api_stays_readable(
    browser: Any, console: Console
) -> None:
    from playwright.sync_api import expect

    state = console.daemon.root / "state"
    write_people(state / "gone-in.jsonl", 3)
    table = {
        "id": "gone",
        "entityTypes": ["user"],
        "source": {"connector": "jsonl", "paths": {"user": str(state / "gone-in.jsonl")}},
        "target": {"connector": "jsonl", "paths": {"user": str(state / "gone-out.jsonl")}},
        "schedule": {"state": "Paused"},
    }
    r = console.api.post("/api/sync/integrations", json=table)
    assert r.status_code == 201, r.text
    answer = console.api.post("/api/sync/jobs", json={"integrationId": "gone", "type": "full_sync"})
    wait_job(console.api, answer.json()["jobId"])
    assert console.api.delete("/api/sync/integrations/gone").status_code == 200
    p = Page(browser, console)
    p.expected.append("the server responded with a status of 404")  # the integration itself
    try:
        pg = p.page
        pg.goto("/console/#/integrations/gone")
        expect(pg.get_by_text("no longer configured")).to_be_visible()
        rows = pg.get_by_role("form", name="Provisioning log").locator("tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.first).to_contain_text("create")
    finally:
        p.close()
    assert p.unexpected_errors() == []
