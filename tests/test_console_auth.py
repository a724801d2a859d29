"""The web console's serving and security, in process: the login that exchanges the
API token for a session cookie, the API behind the bearer token or the cookie (and the
CSRF token for what changes state), the security headers, the login limit, and how
``console`` combines with ``tcp_listen`` in the config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from sluiced.api import auth
from sluiced.api.sessions import LoginLimiter, Sessions
from sluiced.config import load_config
from sluiced.console import console_app
from sluiced.console.headers import CONTENT_SECURITY_POLICY
from sluiced.errors import ConfigError

TOKEN = "the-api-token-0123456789"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"method": request.method, "path": request.url.path})


async def ticks(request: Request) -> StreamingResponse:
    """An event stream that goes on until the client or the server ends it."""

    async def events() -> AsyncIterator[str]:
        while True:
            yield "event: tick\ndata: {}\n\n"
            await trio.sleep(0.02)

    return StreamingResponse(events(), media_type="text/event-stream")


API = Starlette(
    routes=[
        Route("/api/sync/jobs", echo, methods=["GET", "POST"]),
        Route("/api/sync/jobs/{job_id}", echo, methods=["PUT", "PATCH", "DELETE"]),
        Route("/api/sync/jobs/{job_id}/events", ticks, methods=["GET"]),
    ]
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(sessions: Sessions | None = None, scheme: str = "http") -> httpx.AsyncClient:
    app = console_app(API, TOKEN, sessions=sessions)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://127.0.0.1:8765"
    )


async def logged_in(c: httpx.AsyncClient) -> str:
    """Log *c* in; returns the session's CSRF token."""
    r = await c.post("/console/login", data={"token": TOKEN})
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    info = await c.get("/console/session")
    assert info.status_code == 200
    return str(info.json()["csrfToken"])


async def test_the_console_asks_for_a_login_and_every_answer_has_the_security_headers() -> None:
    async with client() as c:
        for path in ("/console/", "/console/login", "/console/static/app.js", "/api/sync/jobs"):
            r = await c.get(path)
            assert r.headers["content-security-policy"] == CSP == CONTENT_SECURITY_POLICY
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
        r = await c.get("/console/")
        assert r.status_code == 303 and r.headers["location"] == "/console/login"
        page = await c.get("/console/login")
        assert page.status_code == 200 and 'method="post"' in page.text
        assert "<script" not in page.text and "style=" not in page.text
        assert (await c.get("/console")).headers["location"] == "/console/"
        assert (await c.get("/console/static/../pages.py")).status_code == 404


async def test_login_sets_a_strict_http_only_session_cookie_and_never_shows_the_token() -> None:
    async with client() as c:
        r = await c.post("/console/login", data={"token": TOKEN})
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("sluiced_session=")
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert "secure" not in flags  # plain HTTP: a Secure cookie would never come back
        assert TOKEN not in cookie and TOKEN not in r.headers.get("location", "")
        home = await c.get("/console/")
        assert home.status_code == 200 and TOKEN not in home.text
        assert '<script type="module" src="/console/static/app.js">' in home.text
        assert "style=" not in home.text and "<style" not in home.text
    async with client(scheme="https") as c:
        r = await c.post("/console/login", data={"token": TOKEN})
        assert "secure" in r.headers["set-cookie"].lower()


async def test_a_wrong_token_is_refused_and_failed_logins_are_limited() -> None:
    async with client() as c:
        for _ in range(5):
            r = await c.post("/console/login", data={"token": "guess"})
            assert r.status_code == 401 and "set-cookie" not in r.headers
            assert "not the API token" in r.text
        r = await c.post("/console/login", data={"token": TOKEN})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "set-cookie" not in r.headers


async def test_the_login_route_allows_its_methods_and_refuses_a_large_form() -> None:
    async with client() as c:
        r = await c.put("/console/login", content=b"")
        assert r.status_code == 405 and {"GET", "POST"} <= set(r.headers["allow"].split(", "))
        for _ in range(6):  # more than the limit of failed logins
            r = await c.post("/console/login", data={"token": "x" * 10_000})
            assert r.status_code == 413 and "set-cookie" not in r.headers
        r = await c.post("/console/login", data={"token": TOKEN})  # none counted as a guess
        assert r.status_code == 303


async def test_logins_sent_at_once_are_limited_as_if_sent_one_after_the_other() -> None:
    statuses: list[int] = []
    app = console_app(API, TOKEN)

    async def slow_bodies(scope: Any, receive: Any, send: Any) -> None:
        async def late() -> Any:  # each body comes a moment after its headers
            await trio.sleep(0.05)
            return await receive()

        await app(scope, late, send)

    transport = httpx.ASGITransport(app=slow_bodies)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as c:

        async def guess() -> None:
            statuses.append((await c.post("/console/login", data={"token": "guess"})).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(guess)
    assert sorted(statuses) == [401] * 5 + [429] * 15


def test_the_login_limit_lets_a_client_try_again_after_its_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(attempts=2, window=60, clock=clock)
    limiter.failed("a")
    assert limiter.retry_after("a") is None
    limiter.failed("a")
    assert limiter.retry_after("a") == 60 and limiter.retry_after("b") is None
    clock.now += 61
    assert limiter.retry_after("a") is None


async def test_a_login_posted_from_another_site_is_refused() -> None:
    async with client() as c:
        r = await c.post(
            "/console/login", data={"token": TOKEN}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert r.status_code == 403 and "set-cookie" not in r.headers
        r = await c.post(
            "/console/login", data={"token": TOKEN}, headers={"Origin": "https://evil.example"}
        )
        assert r.status_code == 403


async def test_the_api_takes_the_bearer_token_or_the_cookie_with_its_csrf_token() -> None:
    async with client() as c:
        assert (await c.get("/api/sync/jobs")).status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await c.post("/api/sync/jobs", headers=bearer)).status_code == 200
        csrf = await logged_in(c)
        assert (await c.get("/api/sync/jobs")).status_code == 200
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            path = "/api/sync/jobs" if method == "POST" else "/api/sync/jobs/j1"
            refused = await c.request(method, path)
            assert refused.status_code == 403, method
            assert refused.json()["error"]["code"] == "CsrfTokenMissing"
            wrong = await c.request(method, path, headers={"X-CSRF-Token": csrf[:-1] + "x"})
            assert wrong.status_code == 403, method
            ok = await c.request(method, path, headers={"X-CSRF-Token": csrf})
            assert ok.status_code == 200 and ok.json()["method"] == method
        # A wrong bearer token is refused even alongside a valid cookie.
        r = await c.get("/api/sync/jobs", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401


async def test_a_csrf_token_belongs_to_its_own_session() -> None:
    sessions = Sessions()
    async with client(sessions) as a, client(sessions) as b:
        csrf_a = await logged_in(a)
        await logged_in(b)
        r = await b.post("/api/sync/jobs", headers={"X-CSRF-Token": csrf_a})
        assert r.status_code == 403


async def test_logout_ends_the_session() -> None:
    async with client() as c:
        csrf = await logged_in(c)
        assert (await c.post("/console/logout")).status_code == 403  # no CSRF token
        r = await c.post("/console/logout", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204
        assert (await c.get("/console/session")).status_code == 401
        assert (await c.get("/api/sync/jobs")).status_code == 401


async def test_a_session_expires() -> None:
    clock = Clock()
    sessions = Sessions(ttl=60, clock=clock)
    async with client(sessions) as c:
        await logged_in(c)
        clock.now += 59
        assert (await c.get("/api/sync/jobs")).status_code == 200
        clock.now += 2
        assert (await c.get("/api/sync/jobs")).status_code == 401
        assert (await c.get("/console/")).status_code == 303


class Streams:
    """Event streams opened at once; each answer is kept when its stream has ended."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.ended: dict[str, httpx.Response] = {}
        self._done: dict[str, trio.Event] = {}

    def open(self, name: str, c: httpx.AsyncClient, **headers: str) -> None:
        done = self._done[name] = trio.Event()

        async def read() -> None:
            self.ended[name] = await c.get("/api/sync/jobs/j1/events", headers=headers)
            done.set()

        self.nursery.start_soon(read)

    async def wait(self, name: str) -> httpx.Response:
        await self._done[name].wait()
        return self.ended[name]


async def test_an_event_stream_opened_with_a_session_ends_at_logout_but_not_one_with_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "SESSION_CHECK_EVERY", 0.05)
    sessions = Sessions()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with client(sessions) as tab, client(sessions) as script:
        csrf = await logged_in(tab)
        with trio.fail_after(120):  # a stream that never ends fails here instead of hanging
            async with trio.open_nursery() as nursery:
                streams = Streams(nursery)
                streams.open("session", tab)
                streams.open("token", script, **bearer)
                await trio.sleep(0.3)
                assert streams.ended == {}
                r = await tab.post("/console/logout", headers={"X-CSRF-Token": csrf})
                assert r.status_code == 204
                ended = await streams.wait("session")
                assert ended.status_code == 200 and "event: tick" in ended.text
                await trio.sleep(0.5)  # ten looks at the session
                assert "token" not in streams.ended
                nursery.cancel_scope.cancel()


async def test_an_event_stream_opened_with_a_session_ends_when_the_session_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "SESSION_CHECK_EVERY", 0.05)
    clock = Clock()
    sessions = Sessions(ttl=60, clock=clock)
    async with client(sessions) as c:
        await logged_in(c)
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                streams = Streams(nursery)
                streams.open("session", c)
                await trio.sleep(0.3)
                assert streams.ended == {}
                clock.now += 61
                assert (await streams.wait("session")).status_code == 200
        assert (await c.get("/api/sync/jobs")).status_code == 401


async def test_an_answer_that_is_no_event_stream_is_not_cut_by_a_logout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "SESSION_CHECK_EVERY", 0.01)
    sessions = Sessions()
    started, ended = trio.Event(), trio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await ended.wait()
        await trio.sleep(0.1)  # several looks at the closed session
        response = JSONResponse({"done": True})
        await response(scope, receive, send)

    app = console_app(slow, TOKEN, sessions=sessions)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        r = await c.post("/console/login", data={"token": TOKEN})
        assert r.status_code == 303
        sid = c.cookies["sluiced_session"]
        answers: list[httpx.Response] = []

        async def ask() -> None:
            answers.append(await c.get("/api/anything"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await started.wait()
            sessions.close(sid)
            ended.set()
        assert answers[0].json() == {"done": True}


def test_sessions_are_capped() -> None:
    sessions = Sessions(limit=2)
    first, _ = sessions.open()
    sessions.open()
    sessions.open()
    assert sessions.get(first) is None


def config(tmp_path: Path, daemon: str) -> Any:
    (tmp_path / "token").write_text(TOKEN + "\n")
    path = tmp_path / "config.toml"
    path.write_text(f'[daemon]\nstate_dir = "state"\n{daemon}\n')
    return load_config(path)


def problems(tmp_path: Path, daemon: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, daemon)
    return [str(p) for p in info.value.problems]


def test_the_console_listens_on_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    d = config(tmp_path, 'console = true\napi_token_file = "token"').daemon
    assert d.console and d.tcp_listen == "127.0.0.1:8765"
    d = config(tmp_path, 'console = true\ntcp_listen = "[::1]:9000"\napi_token_file = "token"')
    assert d.daemon.tcp_listen == "[::1]:9000"
    assert config(tmp_path, "").daemon.tcp_listen is None


def test_bad_console_combinations_name_the_file_the_key_and_the_expectation(
    tmp_path: Path,
) -> None:
    file = tmp_path / "config.toml"
    (found,) = problems(tmp_path, "console = true")
    assert found.startswith(
        f"{file}: daemon.api_token_file: found nothing (the secret is required); expected "
    )
    (found,) = problems(
        tmp_path, 'console = true\ntcp_listen = "0.0.0.0:8765"\napi_token_file = "token"'
    )
    assert found.startswith(
        f'{file}: daemon.tcp_listen: found "0.0.0.0:8765" with console = true; '
        "expected a loopback address"
    )
    (found,) = problems(tmp_path, 'console = "yes"')
    assert found.startswith(f"{file}: daemon.console: found")


async def test_the_console_lists_the_job_types_the_plugins_add() -> None:
    from sluiced.plugins.stash.routes import JOB_TYPES

    app = console_app(API, TOKEN, JOB_TYPES)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        assert (await c.get("/console/job-types")).status_code == 401
        await logged_in(c)
        kinds = {k["name"]: k for k in (await c.get("/console/job-types")).json()["jobTypes"]}
        assert kinds["sync"]["targets"] == ["stash-mirror"] and "sync_all" in kinds["sync"]["forms"]
        assert kinds["sync_scenes"]["forms"] == ["sync_scenes"]
