"""Stash's hook for sluiced: report one change to sluiced, within 2 seconds.

Stash runs this script (``interface: raw``) after each change the plugin's YAML lists,
with a JSON object on its standard input: ``server_connection`` (how to reach this
Stash, with the session cookie of the plugin) and ``args.hookContext`` (``id``,
``type``, ``input``, ``inputFields``). The script reads the plugin's settings (``url``,
``token``, ``integration``) from Stash (``configuration { plugins }``), and sends the
change to sluiced (``POST {url}/api/stash/hooks`` with the token as bearer).

Stash waits for its hooks, so the whole run is bounded by :data:`TIMEOUT`: when sluiced
is down, slow, or refuses the request, the script writes one line on its standard
error and exits 0 (sluiced's scheduled sync catches up). The token is never written
anywhere. Python's standard library only: Stash's Python may have nothing else.
"""

from __future__ import annotations

import time

#: When the script began (before its imports), what :data:`TIMEOUT` counts from.
STARTED = time.monotonic()

import json  # noqa: E402 - after the clock started
import sys  # noqa: E402
import threading  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any  # noqa: E402

#: The plugin's id in Stash: the name of its YAML file.
PLUGIN_ID = "sluiced"
#: The longest the script keeps Stash waiting, in seconds.
TIMEOUT = 2.0
#: Of :data:`TIMEOUT`, what is kept for the interpreter's start before :data:`STARTED`
#: and its exit after the last request.
MARGIN = 0.15
SETTINGS = "query SluicedSettings($ids: [ID!]) { configuration { plugins(include: $ids) } }"
#: Stash's log-level prefix of a warning line on a plugin's standard error.
WARNING = "\x01w\x02"
# No proxy: Stash and sluiced are reached directly (a proxy would only add delay).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Failed(Exception):
    """A request that did not get its answer."""


def warn(message: str) -> None:
    sys.stderr.write(f"{WARNING}sluiced: {' '.join(message.split())}\n")


def post(url: str, body: Any, headers: dict[str, str], deadline: float) -> tuple[int, Any]:
    """POST *body* as JSON; returns the status and the JSON answer (None if it is not
    JSON). An HTTP error status is an answer too.

    Raises:
        Failed: no answer before *deadline*, or none at all.
    """
    left = deadline - time.monotonic()
    if left <= 0:
        raise Failed("no time left")
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
        method="POST",
    )
    got: list[tuple[int, bytes]] = []
    failed: list[BaseException] = []

    def send() -> None:
        try:
            with _OPENER.open(request, timeout=left) as response:
                got.append((response.status, response.read()))
        except urllib.error.HTTPError as error:
            got.append((error.code, error.read()))
        except BaseException as error:  # refused, timed out, unreachable, bad URL
            failed.append(error)

    # A socket timeout bounds each read, not the request (a name lookup, an answer sent a
    # byte at a time): a thread bounds it all; one left running ends with the script.
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    sender.join(left)
    if failed:
        reason = getattr(failed[0], "reason", None) or failed[0]
        raise Failed(str(reason) or type(failed[0]).__name__)
    if not got:
        raise Failed(f"no answer within {left:.1f} s")
    status, raw = got[0]
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, None


def stash_graphql(conn: dict[str, Any]) -> str:
    """The GraphQL address of the Stash that runs the script."""
    host = str(conn.get("Host") or "")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "localhost"  # Stash listens everywhere: reach it here
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{conn.get('Scheme') or 'http'}://{host}:{conn.get('Port') or 9999}/graphql"


def read_settings(conn: dict[str, Any], deadline: float) -> dict[str, Any]:
    """The plugin's settings, as saved in Stash.

    Raises:
        Failed: Stash did not answer them.
    """
    cookie = conn.get("SessionCookie") or {}
    headers = {}
    if cookie.get("Value"):
        headers["Cookie"] = f"{cookie.get('Name') or 'session'}={cookie['Value']}"
    status, answer = post(
        stash_graphql(conn),
        {"query": SETTINGS, "variables": {"ids": [PLUGIN_ID]}},
        headers,
        deadline,
    )
    try:
        plugins = answer["data"]["configuration"]["plugins"]
    except (KeyError, TypeError):
        raise Failed(f"Stash answered {status} without them") from None
    found = (plugins or {}).get(PLUGIN_ID)
    return found if isinstance(found, dict) else {}


def change_of(context: dict[str, Any]) -> dict[str, Any]:
    """The change sluiced is told of: the hook's type and object id, and a marker's
    scene when Stash gives it."""
    change = {"type": context.get("type"), "id": context.get("id")}
    given = context.get("input")
    marker = str(change["type"]).startswith("SceneMarker.")
    if marker and isinstance(given, dict) and given.get("scene_id") not in (None, ""):
        change["scene_id"] = given["scene_id"]
    return change


def _message(answer: Any) -> str:
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return "no explanation"


def main() -> int:
    deadline = STARTED + TIMEOUT - MARGIN
    try:
        given = json.load(sys.stdin)
        conn = given.get("server_connection") or {}
        context = (given.get("args") or {}).get("hookContext")
    except (ValueError, AttributeError):
        warn("no plugin input on the standard input: Stash runs this script")
        return 0
    if not isinstance(context, dict):
        warn("not run for a hook: nothing to report")
        return 0
    try:
        settings = read_settings(conn, deadline)
    except Failed as error:
        warn(
            f"cannot read the plugin's settings from Stash ({error}); sluiced's scheduled sync will catch up"
        )
        return 0
    url = str(settings.get("url") or "").strip().rstrip("/")
    token = str(settings.get("token") or "").strip()
    if not url or not token:
        warn("set the plugin's settings (sluiced URL and API token) in Stash: Settings > Plugins")
        return 0
    body: dict[str, Any] = {"changes": [change_of(context)]}
    if settings.get("integration"):
        body["integrationId"] = str(settings["integration"]).strip()
    try:
        status, answer = post(
            f"{url}/api/stash/hooks", body, {"Authorization": f"Bearer {token}"}, deadline
        )
    except Failed as error:
        warn(f"sluiced at {url} did not answer ({error}); its scheduled sync will catch up")
        return 0
    if status == 401:
        warn(f"sluiced at {url} refused the API token (401): check the plugin's token setting")
        return 0
    if status >= 300:
        warn(f"sluiced at {url} refused the change ({status}: {_message(answer)})")
        return 0
    sys.stdout.write(json.dumps({"output": f"sluiced: {change_of(context)['type']} reported"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
