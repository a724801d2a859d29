"""One LDAP connection owned by one dedicated thread, awaited from trio.

python-ldap's calls block, and an ``LDAPObject`` must not be used by two threads at
once; so, like the store's, the connection is an
:class:`~sluiced.ownedconnection.OwnedConnection`: a thread owns it and runs submitted
functions one at a time. The thread starts, and the connection is opened and bound, on
first use; after the server went away (``SERVER_DOWN``, ``CONNECT_ERROR``, ``TIMEOUT``)
it is opened and bound again on the next call.

Cancellation: a submitted function runs to its end on the thread (bounded by the
connection's ``timeout``); a cancelled caller stops waiting for it at once, and the
next call queues behind it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import ldap  # type: ignore[import-untyped]
import ldap.ldapobject  # type: ignore[import-untyped]
from ldap.controls import SimplePagedResultsControl  # type: ignore[import-untyped]

from sluiced.errors import SyncError, TransientError
from sluiced.logs import get_logger
from sluiced.ownedconnection import OwnedConnection

from .errors import StaleCookieError, is_connection_lost, translate
from .schema import AttributeSchema
from .settings import LdapSettings

__all__ = ["SCOPES", "AttributeSchema", "Entry", "LdapConnection", "endpoint_of"]

T = TypeVar("T")
#: One search result: the DN and the attributes with their raw values.
Entry = tuple[str, dict[str, list[bytes]]]

SCOPES = {"base": ldap.SCOPE_BASE, "one": ldap.SCOPE_ONELEVEL, "sub": ldap.SCOPE_SUBTREE}

log = get_logger(__name__)


def endpoint_of(url: str) -> str:
    """*url* reduced to scheme and host (no user info, DN or extensions)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}"


def _unbind(conn: Any) -> None:
    conn.unbind_s()


def _lost(conn: Any, exc: BaseException) -> bool:
    return isinstance(exc, ldap.LDAPError) and is_connection_lost(exc)


class LdapConnection:
    """A connection to the server of *settings*; no I/O happens until a call."""

    def __init__(self, settings: LdapSettings, *, object_class: type[Any] | None = None) -> None:
        """*object_class*, a subclass of python-ldap's ``SimpleLDAPObject`` (one that mixes
        in ``ldap.syncrepl.SyncreplConsumer``, say), is what the connection is made of;
        by default ``SimpleLDAPObject``."""
        self.settings = settings
        self._object_class = object_class or ldap.ldapobject.SimpleLDAPObject
        self.endpoint = endpoint_of(settings.url)
        self._timeout = settings.timeout.total_seconds()
        self._owner: OwnedConnection[Any] = OwnedConnection(
            lambda first: self._open(),
            _unbind,
            name=f"sluiced-ldap:{self.endpoint}",
            eager=False,
            lost=_lost,
            what="the LDAP connection",
        )
        self._schema: AttributeSchema | None = None
        self._references_logged = False

    # -- on the thread -------------------------------------------------------------

    def _open(self) -> Any:
        s = self.settings
        tls = s.url.startswith("ldaps://") or s.start_tls
        try:
            conn = self._object_class(s.url)
        except ldap.LDAPError as exc:
            raise translate(exc) from None
        try:
            conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
            conn.set_option(ldap.OPT_REFERRALS, 0)
            conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self._timeout)
            conn.set_option(ldap.OPT_TIMEOUT, self._timeout)
            conn.timeout = self._timeout
            if tls:
                if s.ca_file is not None:
                    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(s.ca_file))
                conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
                conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
            if s.start_tls:
                conn.start_tls_s()
            if s.bind_dn is not None:
                secret = s.password.reveal() if s.password is not None else ""
                conn.simple_bind_s(s.bind_dn, secret)
            elif s.url.startswith("ldapi://"):
                conn.sasl_non_interactive_bind_s("EXTERNAL")
        except ldap.LDAPError as exc:
            with contextlib.suppress(Exception):
                conn.unbind_s()
            error = translate(exc, binding=True)
            if tls and is_connection_lost(exc):
                error = TransientError(
                    f"{error} (over TLS: is the server's certificate signed by the CA of "
                    "ca_file, or without ca_file by one the system trusts?)"
                )
            raise error from None
        return conn

    # -- from trio -----------------------------------------------------------------

    async def call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(conn)`` on the connection's thread, opening and binding first if
        needed, and return its result.

        Raises:
            TransientError: the server is down, unreachable, busy, unavailable or timed out.
            CredentialsError: it refused the credentials.
            SyncError: any other ``ldap.LDAPError`` (``"<resultName>: <message>"``);
                other exceptions of *fn* as they are.
            RuntimeError: the connection was closed.

        Cancellation: *fn* runs to its end on the thread; the caller stops waiting at once.
        """
        try:
            return await self._owner.call(fn)
        except ldap.LDAPError as exc:
            raise translate(exc) from None

    async def search(
        self,
        base: str,
        scope: str,
        filterstr: str,
        attrs: Sequence[str] | None,
        *,
        page_size: int,
        cookie: bytes | None = None,
        references: list[str] | None = None,
    ) -> AsyncIterator[tuple[list[Entry], bytes | None]]:
        """A paged search (RFC 2696): yields ``(entries, next_cookie)`` per page,
        ``next_cookie`` None after the last. *cookie* resumes after the page it was
        given with (the server may refuse a stale one: unwillingToPerform). *scope* is
        ``base``, ``one`` or ``sub``; *attrs* None asks for every user attribute.
        Search references (entries held by another server) are not followed: their
        URLs are appended to *references* before their page is yielded, when it is
        given, else logged once per connection.

        A paged-results cookie is good only on the connection that received it, for
        the same search (OpenLDAP): after a reconnect, or in another job, the server
        refuses it.

        Raises:
            StaleCookieError: the server refused a cookie (*cookie*, or a page's after a
                reconnect): start the search over.
            SyncError: a size or administrative limit cut the read short, or the server
                ignored the paging control; and as :meth:`call`.
        """
        while True:
            entries, refs, cookie = await self.call(
                partial(
                    self._page,
                    base=base,
                    scope=scope,
                    filterstr=filterstr,
                    attrs=attrs,
                    page_size=page_size,
                    cookie=cookie,
                )
            )
            if references is not None:
                references.extend(refs)
            elif refs and not self._references_logged:
                self._references_logged = True
                log.info("ldap search references skipped", endpoint=self.endpoint, base=base)
            yield entries, cookie
            if cookie is None:
                return

    def _page(
        self,
        conn: Any,
        *,
        base: str,
        scope: str,
        filterstr: str,
        attrs: Sequence[str] | None,
        page_size: int,
        cookie: bytes | None,
    ) -> tuple[list[Entry], list[str], bytes | None]:
        paging = SimplePagedResultsControl(criticality=True, size=page_size, cookie=cookie or b"")
        try:
            msgid = conn.search_ext(
                base,
                SCOPES[scope],
                filterstr,
                list(attrs) if attrs is not None else None,
                serverctrls=[paging],
                timeout=self._timeout,
            )
            _, data, _, controls = conn.result3(msgid, all=1, timeout=self._timeout)
        except (ldap.SIZELIMIT_EXCEEDED, ldap.ADMINLIMIT_EXCEEDED) as exc:
            raise SyncError(f"a limit of the server cut the read short: {translate(exc)}") from None
        except (ldap.PROTOCOL_ERROR, ldap.UNWILLING_TO_PERFORM, ldap.OTHER) as exc:
            if not cookie:
                raise
            raise StaleCookieError(
                f"the server refused the paged-results cookie: {translate(exc)}"
            ) from None
        answer = [
            c for c in controls or () if c.controlType == SimplePagedResultsControl.controlType
        ]
        if not answer:
            raise SyncError(
                "the server answered a paged search without the paging control: "
                "the read may have been cut short"
            )
        entries: list[Entry] = []
        refs: list[str] = []
        for dn, found in data:
            if dn is not None and isinstance(found, dict):
                entries.append((dn, found))
            elif isinstance(found, list):  # a search continuation reference: (None, [URLs])
                refs.extend(u.decode() if isinstance(u, bytes) else str(u) for u in found)
        return entries, refs, answer[0].cookie or None

    async def search_all(
        self, base: str, scope: str, filterstr: str, attrs: Sequence[str] | None
    ) -> list[Entry]:
        """Every entry of a paged search (pages of the settings' ``page_size``), collected.

        Raises:
            SyncError: as :meth:`search`.
        """
        found: list[Entry] = []
        async for entries, _ in self.search(
            base, scope, filterstr, attrs, page_size=self.settings.page_size
        ):
            found.extend(entries)
        return found

    async def read_entry(
        self, dn: str, attrs: Sequence[str] | None = None
    ) -> dict[str, list[bytes]] | None:
        """The attributes of the entry *dn* (a base search), or None when there is none.

        Raises:
            SyncError: as :meth:`call` (an invalid DN: invalidDNSyntax).
        """

        def read(conn: Any) -> dict[str, list[bytes]] | None:
            try:
                found = conn.search_ext_s(
                    dn,
                    ldap.SCOPE_BASE,
                    "(objectClass=*)",
                    list(attrs) if attrs is not None else None,
                    timeout=self._timeout,
                )
            except ldap.NO_SUCH_OBJECT:
                return None
            for found_dn, entry in found:
                if found_dn is not None and isinstance(entry, dict):
                    return dict(entry)
            return None

        return await self.call(read)

    async def root_dse(self) -> dict[str, list[bytes]]:
        """The root DSE's user and operational attributes (empty if it cannot be read)."""
        return await self.read_entry("", ["*", "+"]) or {}

    async def schema(self) -> AttributeSchema:
        """The server's attribute types, read once per connection from the subschema
        subentry the root DSE names; an empty schema (everything multi-valued text) when
        the server offers none that can be read.

        Raises:
            TransientError, CredentialsError: as :meth:`call`.
        """
        if self._schema is None:
            schema = AttributeSchema()
            dse = await self.root_dse()
            names = dse.get("subschemaSubentry") or []
            if names:
                dn = names[0].decode("utf-8", "replace")
                try:
                    entry = await self.read_entry(dn, ["attributeTypes"])
                except SyncError as exc:
                    if type(exc) is not SyncError:  # transient or credentials: raise
                        raise
                    entry = None
                try:
                    schema = AttributeSchema.from_subschema(entry or {})
                except ValueError as exc:
                    log.warning("ldap schema unreadable", endpoint=self.endpoint, error=str(exc))
            self._schema = schema
        return self._schema

    async def aclose(self) -> None:
        """Unbind and stop the thread. Never raises; waits (shielded) at most the
        connection's timeout for a call still running, then leaves the thread to end
        on its own."""
        await self._owner.aclose(self._timeout)
