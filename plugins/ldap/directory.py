"""One job's writes to an LDAP directory, as the target makes them: calls whose refusal
of the one object they write is an answer (:class:`Refused`) rather than an error, many
writes pipelined in one call (:meth:`Directory.write_many`), the DNs of entries by
target id (looked up many at once, remembered for the job), renames, and the fix of the
entries that list a renamed entry's old DN; and the post-read control (RFC 4527) that
gives an added entry's id with the answer to the add.
"""

from __future__ import annotations

import contextlib
import functools
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import ldap  # type: ignore[import-untyped]
from ldap.controls import RequestControl, ResponseControl  # type: ignore[import-untyped]
from ldap.controls.readentry import PostReadControl  # type: ignore[import-untyped]

from .connection import LdapConnection
from .errors import object_error, result_name
from .filters import any_of, equals, normalize_dn, parent
from .settings import EntitySettings, LdapSettings
from .writes import Mod, reference_fix

__all__ = [
    "POST_READ",
    "Directory",
    "PostRead",
    "Refused",
    "Request",
    "chunks",
    "first",
    "post_read_id",
    "post_read_request",
    "values_of",
]

T = TypeVar("T")

#: Values per lookup filter: ``(|(entryUUID=...)...)``.
CHUNK = 100
#: The post-read control (RFC 4527) in the root DSE's ``supportedControl``.
POST_READ = "1.3.6.1.1.13.2"
#: Requests of a pipeline awaiting their answers at once (slapd answers ``busy`` beyond
#: ``conn_max_pending_auth`` outstanding requests, 1000 by default).
WINDOW = 64


def _no_result(controls: list[Any]) -> Any:
    return None


@dataclass(frozen=True)
class Refused:
    """The server refused one object's write: ``code`` is the result's name
    (``entryAlreadyExists``), ``reason`` what is escrowed (``"<code>: <message>"``)."""

    code: str
    reason: str


@dataclass(frozen=True)
class Request:
    """One write of a pipeline: ``start(conn)`` sends it and returns its message id
    (``conn.add_ext(...)``); ``done(controls)`` makes its result from the controls of
    the server's answer; ``dn`` is the entry it writes."""

    start: Callable[[Any], int]
    done: Callable[[list[Any]], Any] = _no_result
    dn: str = ""


def _element(data: bytes, at: int) -> tuple[int, int]:
    """Where the content of the BER element at *at* begins and ends."""
    length = data[at + 1]
    at += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(data[at : at + size], "big")
        at += size
    if at + length > len(data):
        raise ValueError("a BER element runs past the end")
    return at, at + length


def _children(data: bytes, start: int, end: int) -> Iterable[tuple[int, int]]:
    at = start
    while at < end:
        child = _element(data, at)
        yield child
        at = child[1]


class PostRead(ResponseControl):  # type: ignore[misc]
    """The post-read control of an answer (RFC 4527), decoded without pyasn1 (which
    takes about 0.2 ms of CPU per entry): ``entry`` holds the attributes read, or None
    if the value could not be decoded."""

    controlType = POST_READ

    def __init__(self) -> None:
        self.entry: dict[str, list[bytes]] | None = None

    def decodeControlValue(self, encodedControlValue: bytes) -> None:
        data = encodedControlValue
        try:
            start, _ = _element(data, 0)  # SearchResultEntry
            _, dn_end = _element(data, start)  # objectName
            first_attr, last_attr = _element(data, dn_end)  # attributes
            entry: dict[str, list[bytes]] = {}
            for a_start, _ in _children(data, first_attr, last_attr):
                t_start, t_end = _element(data, a_start)
                v_start, v_end = _element(data, t_end)
                name = data[t_start:t_end].decode("utf-8")
                entry[name] = [data[s:e] for s, e in _children(data, v_start, v_end)]
            self.entry = entry
        except (IndexError, ValueError):
            self.entry = None


@functools.lru_cache(maxsize=16)
def post_read_request(attribute: str) -> RequestControl:
    """The post-read request control asking for *attribute*, encoded once (pyasn1 takes
    about 0.2 ms per encoding) and shared by every add that asks for it."""
    encoded = PostReadControl(False, [attribute]).encodeControlValue()
    return RequestControl(POST_READ, False, encoded)


def post_read_id(controls: Sequence[Any], attribute: str) -> str | None:
    """*attribute* in the post-read control of an answer's *controls*, if there."""
    for control in controls:
        entry = getattr(control, "entry", None)
        if control.controlType == POST_READ and entry:
            return first(entry, attribute)
    return None


def values_of(attrs: Mapping[str, Sequence[bytes]], name: str) -> Sequence[bytes]:
    """The values of attribute *name* (names compared case-insensitively)."""
    for key, values in attrs.items():
        if key.casefold() == name.casefold():
            return values
    return ()


def first(attrs: Mapping[str, Sequence[bytes]], name: str) -> str | None:
    """The first value of attribute *name* as text, or None."""
    values = values_of(attrs, name)
    return values[0].decode("utf-8", "replace") if values else None


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


#: The answers' controls that :meth:`Directory.write_many` decodes.
_DECODED = {POST_READ: PostRead}


#: Entries the DN cache keeps between batches before it is emptied.
DNS_KEPT = 20_000


class Directory:
    """The directory of *settings* over *conn*, for one job."""

    def __init__(self, conn: LdapConnection, settings: LdapSettings) -> None:
        self.conn = conn
        self.settings = settings
        #: Target id → DN of the entries this job has met (a cache, emptied when it
        #: grows past DNS_KEPT: a batch looks up what it needs).
        self.dns: dict[str, str] = {}
        #: hash(normalized DN) → hash(source id) of the entries this job created (or
        #: adopted): two small ints an entry, however long its DN.
        self._created: dict[int, int] = {}
        self._post_read: bool | None = None

    def forget_dns(self) -> None:
        """Empties the DN cache once it holds more than :data:`DNS_KEPT` entries, so a
        job's memory does not grow with the directory."""
        if len(self.dns) > DNS_KEPT:
            self.dns.clear()

    def created(self, dn: str, source_id: str) -> None:
        """Notes that this job created (or adopted) the entry at *dn* for *source_id*."""
        self._created[hash(normalize_dn(dn))] = hash(source_id)

    def created_here(self, dn: str) -> bool:
        """Whether this job created (or adopted) the entry at *dn*."""
        return hash(normalize_dn(dn)) in self._created

    def created_for_another(self, dn: str, source_id: str) -> bool:
        """Whether this job created (or adopted) the entry at *dn* for another object
        than *source_id*."""
        owner = self._created.get(hash(normalize_dn(dn)))
        return owner is not None and owner != hash(source_id)

    async def write(self, fn: Callable[[Any], T]) -> T | Refused:
        """``fn(conn)`` on the connection. An error about the one object it writes
        (:func:`.errors.object_error`) is returned as a :class:`Refused`.

        Raises:
            TransientError, CredentialsError, SyncError: any other error, translated
                by the connection."""

        def attempt(conn: Any) -> T | Refused:
            try:
                return fn(conn)
            except ldap.LDAPError as exc:
                reason = object_error(exc)
                if reason is None:
                    raise
                return Refused(result_name(exc), reason)

        return await self.conn.call(attempt)

    async def write_many(self, requests: Sequence[Request]) -> list[Any]:
        """The *requests* in one call on the connection, pipelined (at most
        :data:`WINDOW` awaiting their answers): one round trip's latency for many
        writes. Returns each one's result (``done``'s), or its :class:`Refused`.

        Raises:
            TransientError, CredentialsError, SyncError: as :meth:`write`, for the
                first request whose error is not about its object; the requests still
                awaiting answers are abandoned (some may have been applied).

        Cancellation: the requests already sent are completed by the server; the
        caller replays them (every write is idempotent)."""

        def refused(exc: ldap.LDAPError) -> Refused:
            reason = object_error(exc)
            if reason is None:
                raise exc
            return Refused(result_name(exc), reason)

        def run(conn: Any) -> list[Any]:
            results: list[Any] = [None] * len(requests)
            waiting: deque[tuple[int, int]] = deque()
            sent = 0
            timeout = getattr(conn, "timeout", -1)
            try:
                while sent < len(requests) or waiting:
                    while sent < len(requests) and len(waiting) < WINDOW:
                        try:
                            waiting.append((sent, requests[sent].start(conn)))
                        except ldap.LDAPError as exc:
                            results[sent] = refused(exc)
                        sent += 1
                    if not waiting:
                        continue
                    i, msgid = waiting.popleft()
                    try:
                        _, _, _, controls = conn.result3(
                            msgid, all=1, timeout=timeout, resp_ctrl_classes=_DECODED
                        )
                    except ldap.LDAPError as exc:
                        results[i] = refused(exc)
                    else:
                        results[i] = requests[i].done(list(controls or ()))
            except BaseException:
                for _, msgid in waiting:
                    with contextlib.suppress(Exception):
                        conn.abandon(msgid)
                raise
            return results

        return await self.conn.call(run) if requests else []

    async def modify(self, dn: str, mods: list[Mod]) -> Refused | None:
        return await self.write(lambda c: c.modify_s(dn, mods))

    async def rename(self, tid: str, dn: str, new_rdn: str, superior: str | None) -> str | Refused:
        """A modrdn (the old RDN value deleted) of the entry *tid* at *dn* to *new_rdn*
        under *superior* (None: where it is); returns its new DN."""
        done = await self.write(lambda c: c.rename_s(dn, new_rdn, superior, delold=1))
        if isinstance(done, Refused):
            return done
        moved = f"{new_rdn},{superior or parent(dn)}"
        self.dns[tid] = moved
        return moved

    async def fix_references(self, old_dn: str, new_dn: str) -> list[str]:
        """Makes every entry under the bases of the target's entities that lists
        *old_dn* in a DN-valued attribute (``dn_attributes``) list *new_dn* instead.
        Returns what it could not change ("<group DN> still lists <old DN>: <reason>")."""
        entities = self.settings.entities.values()
        attrs = sorted({a for e in entities for a in e.dn_attributes})
        if not attrs:
            return []
        refs = frozenset(a.casefold() for a in attrs)
        query = "(|" + "".join(equals(a, old_dn) for a in attrs) + ")"
        seen: set[str] = set()
        errors = []
        for base in dict.fromkeys(e.base for e in entities):
            for dn, entry in await self.conn.search_all(base, "sub", query, attrs):
                if normalize_dn(dn) in seen:
                    continue
                seen.add(normalize_dn(dn))
                refused = await self._fix_entry(dn, entry, refs, attrs, old_dn, new_dn)
                if refused is not None:
                    errors.append(f"{dn} still lists {old_dn}: {refused.reason}")
        return errors

    async def _fix_entry(
        self,
        dn: str,
        entry: Mapping[str, Sequence[bytes]],
        refs: frozenset[str],
        attrs: list[str],
        old_dn: str,
        new_dn: str,
    ) -> Refused | None:
        """Make *dn* (as read: *entry*) list *new_dn* instead of *old_dn*. A refusal
        may come from the entry changing since it was read (the server's referential
        integrity fixing it meanwhile, after the rename's answer): it is read again and
        what is left fixed, a few times; returns the last refusal, or None."""
        refused: Refused | None = None
        for _ in range(3):
            mods = reference_fix(entry, refs, old_dn, new_dn)
            if not mods:
                return None
            done = await self.modify(dn, mods)
            if not isinstance(done, Refused):
                return None
            refused = done
            found = await self.conn.search_all(dn, "base", "(objectClass=*)", attrs)
            if not found:
                return None  # the entry is gone: it lists nothing
            entry = found[0][1]
        return refused

    async def locate(self, ids: Iterable[str], entities: Iterable[EntitySettings]) -> None:
        """Finds the DNs of *ids* the job has not met yet among the entries of
        *entities* (under ``base``, and ``move_to``), with searches of many ids at once;
        ids found nowhere stay unknown."""
        wanted = [i for i in dict.fromkeys(ids) if i not in self.dns]
        places = {
            (container, scope, e.id_attribute): None
            for e in entities
            for container, scope in ((e.base, e.scope), (e.move_to, "sub"))
            if container
        }
        for container, scope, id_attr in places:
            wanted = [i for i in wanted if i not in self.dns]
            for chunk in chunks(wanted):
                found = await self.conn.search_all(
                    container, scope, any_of(id_attr, list(chunk)), [id_attr]
                )
                for dn, attrs in found:
                    tid = first(attrs, id_attr)
                    if tid is not None:
                        self.dns[tid] = dn

    async def read_id(self, dn: str, id_attribute: str) -> str | None:
        """The id of the entry at *dn*, or None (no entry, or it has no such attribute)."""
        entry = await self.conn.read_entry(dn, [id_attribute])
        return first(entry, id_attribute) if entry is not None else None

    async def entity_id(self, dn: str, entity: EntitySettings) -> str | None:
        """The id of the entry at *dn* if it is one of *entity* (it matches its
        ``filter``); None if there is no such entry, or it has no id."""
        id_attr = entity.id_attribute

        def read(conn: Any) -> str | None:
            try:
                found = conn.search_ext_s(
                    dn, ldap.SCOPE_BASE, entity.filter, [id_attr], timeout=conn.timeout
                )
            except ldap.NO_SUCH_OBJECT:
                return None
            for found_dn, attrs in found:
                if found_dn is not None and isinstance(attrs, dict):
                    return first(attrs, id_attr)
            return None

        return await self.conn.call(read)

    async def offers_post_read(self) -> bool:
        """Whether the server's root DSE lists the post-read control (read once)."""
        if self._post_read is None:
            dse = await self.conn.root_dse()
            self._post_read = POST_READ.encode() in values_of(dse, "supportedControl")
        return self._post_read
