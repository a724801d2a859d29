"""``[daemon]`` keys that choose where the daemon keeps its state.

Without ``store`` it is the SQLite file in ``state_dir``. ``store = "postgresql://..."``
puts it in a PostgreSQL database: the password comes from ``store_password_file``,
``_env`` or ``_credential``, never from the URL (a URL with one is refused, as connector
URLs with user-info are); the tables live in the schema ``store_schema``; ``node_id``
names this daemon to the others (default: the host name). The PostgreSQL store needs
psycopg, which the ``sluiced[postgresql]`` extra installs.
"""

from __future__ import annotations

import importlib.util
import re
import socket
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .tables import TableReader

__all__ = ["EXTRA", "check_schema", "check_url", "store_settings"]

#: What installs the PostgreSQL driver.
EXTRA = "pip install 'sluiced[postgresql]'"
_SCHEMES = ("postgresql", "postgres")
_SCHEMA = r"^[a-z_][a-z0-9_]{0,62}$"
_NODE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


def _psycopg_missing() -> bool:
    try:
        return importlib.util.find_spec("psycopg") is None
    except (ImportError, ValueError):
        return True


def check_url(t: TableReader, name: str, url: str, *, secret: str, otherwise: str) -> None:
    """Add *t*'s problems with the PostgreSQL URL *url* of key *name*: another scheme
    (*otherwise* says what else the key can be), a password in it (*secret* is the key
    to give it with), or no driver to reach it."""
    key = t.key(name)
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        t.problems.add(
            key,
            f'"{url}"',
            f'a PostgreSQL URL like "postgresql://sluiced@db.example.org/sluiced" ({otherwise})',
        )
        return
    try:
        has_password = parts.password is not None
    except ValueError:
        has_password = False
    if has_password or any(k == "password" for k, _ in parse_qsl(parts.query)):
        t.problems.add(
            key,
            "a URL with a password in it (not shown)",
            f"a URL without the password; give it with {secret}_file, "
            f"{secret}_env or {secret}_credential",
        )
    elif _psycopg_missing():
        t.problems.add(
            key,
            "a PostgreSQL URL, but psycopg (the PostgreSQL driver) is not installed",
            f"the driver installed with the postgresql extra: {EXTRA}",
        )


def check_schema(t: TableReader, name: str, schema: Any) -> None:
    """Add *t*'s problem with the PostgreSQL schema name *schema* of key *name*."""
    if isinstance(schema, str) and re.fullmatch(_SCHEMA, schema) is None:
        t.problems.add(
            t.key(name),
            f'"{schema}"',
            "a PostgreSQL schema name of lower-case letters, digits and '_'",
        )


def store_settings(t: TableReader) -> dict[str, Any]:
    """The store's keys of the ``[daemon]`` table *t*, checked, as DaemonConfig fields."""
    url = t.get_str("store", None)
    if isinstance(url, str):
        check_url(
            t,
            "store",
            url,
            secret="store_password",
            otherwise="without store, the SQLite file in state_dir",
        )
    schema = t.get_str("store_schema", "sluiced")
    check_schema(t, "store_schema", schema)
    node_id = t.get_str("node_id", socket.gethostname())
    if isinstance(node_id, str) and re.fullmatch(_NODE_ID, node_id) is None:
        t.problems.add(
            t.key("node_id"),
            f'"{node_id}"',
            "up to 63 ASCII letters, digits, '.', '-' and '_' (like a host name)",
        )
    return {
        "store": url,
        "store_password": t.get_secret("store_password", required=False),
        "store_schema": schema,
        "node_id": node_id,
    }
