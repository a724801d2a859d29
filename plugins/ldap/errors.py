"""python-ldap's exceptions as sluiced's vocabulary.

:func:`translate` turns an ``ldap.LDAPError`` into the :class:`~sluiced.errors.SyncError`
the engine acts on (retry, quarantine); :func:`object_error` says whether it is one
object's fault (escrowed) instead. Messages are ``"<resultName>: <server's message>"``
with RFC 4511 result names; no message carries a password (python-ldap never puts one
in an exception, and nothing here adds one).
"""

from __future__ import annotations

from typing import Any

import ldap  # type: ignore[import-untyped]

from sluiced.errors import CredentialsError, SyncError, TransientError

__all__ = ["StaleCookieError", "is_connection_lost", "object_error", "result_name", "translate"]

#: RFC 4511 result names by code (the server's codes; the client's are negative).
RESULT_NAMES = {
    0: "success",
    1: "operationsError",
    2: "protocolError",
    3: "timeLimitExceeded",
    4: "sizeLimitExceeded",
    7: "authMethodNotSupported",
    8: "strongerAuthRequired",
    10: "referral",
    11: "adminLimitExceeded",
    12: "unavailableCriticalExtension",
    13: "confidentialityRequired",
    14: "saslBindInProgress",
    16: "noSuchAttribute",
    17: "undefinedAttributeType",
    18: "inappropriateMatching",
    19: "constraintViolation",
    20: "attributeOrValueExists",
    21: "invalidAttributeSyntax",
    32: "noSuchObject",
    33: "aliasProblem",
    34: "invalidDNSyntax",
    36: "aliasDereferencingProblem",
    48: "inappropriateAuthentication",
    49: "invalidCredentials",
    50: "insufficientAccessRights",
    51: "busy",
    52: "unavailable",
    53: "unwillingToPerform",
    54: "loopDetect",
    64: "namingViolation",
    65: "objectClassViolation",
    66: "notAllowedOnNonLeaf",
    67: "notAllowedOnRDN",
    68: "entryAlreadyExists",
    69: "objectClassModsProhibited",
    71: "affectsMultipleDSAs",
    80: "other",
}

#: The connection is gone or in an unknown state: reopen it before the next call.
CONNECTION_LOST = (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT)
#: Worth retrying later.
TRANSIENT = (*CONNECTION_LOST, ldap.BUSY, ldap.UNAVAILABLE, ldap.TIMELIMIT_EXCEEDED)
#: The credentials were refused, whatever the operation.
CREDENTIALS = (ldap.INVALID_CREDENTIALS, ldap.INAPPROPRIATE_AUTH)
#: The credentials were refused when met while binding.
CREDENTIALS_ON_BIND = (
    ldap.INSUFFICIENT_ACCESS,
    ldap.STRONG_AUTH_REQUIRED,
    ldap.CONFIDENTIALITY_REQUIRED,
    ldap.AUTH_METHOD_NOT_SUPPORTED,
    ldap.AUTH_UNKNOWN,
    ldap.UNWILLING_TO_PERFORM,
)
#: One object's write was refused: it is escrowed, the rest goes on.
OBJECT_ERRORS = (
    ldap.CONSTRAINT_VIOLATION,
    ldap.OBJECT_CLASS_VIOLATION,
    ldap.INVALID_SYNTAX,
    ldap.NAMING_VIOLATION,
    ldap.NOT_ALLOWED_ON_RDN,
    ldap.NOT_ALLOWED_ON_NONLEAF,
    ldap.UNDEFINED_TYPE,
    ldap.INVALID_DN_SYNTAX,
    ldap.TYPE_OR_VALUE_EXISTS,
    ldap.NO_SUCH_ATTRIBUTE,
    ldap.INSUFFICIENT_ACCESS,
    ldap.UNWILLING_TO_PERFORM,
    ldap.SIZELIMIT_EXCEEDED,
    ldap.ADMINLIMIT_EXCEEDED,
    ldap.NO_OBJECT_CLASS_MODS,
    ldap.INAPPROPRIATE_MATCHING,
    ldap.ALREADY_EXISTS,
    ldap.NO_SUCH_OBJECT,
)


class StaleCookieError(SyncError):
    """The server refused a paged-results cookie (from another connection, or too old):
    the search must start over without it."""


def _details(exc: BaseException) -> dict[str, Any]:
    if exc.args and isinstance(exc.args[0], dict):
        return exc.args[0]
    return {}


def result_name(exc: BaseException) -> str:
    """The RFC 4511 name of *exc*'s result code (``"constraintViolation"``), or for the
    client library's own codes its name in the same style (``"serverDown"``, ``"timeout"``)."""
    code = _details(exc).get("result")
    if isinstance(code, int) and code in RESULT_NAMES:
        return RESULT_NAMES[code]
    first, *rest = type(exc).__name__.lower().split("_")
    return first + "".join(w.title() for w in rest)


def _message(exc: BaseException) -> str:
    details = _details(exc)
    info = details.get("info")
    if isinstance(info, bytes):
        info = info.decode("utf-8", "replace")
    if info == "(unknown error code)":  # libldap's filler when it knows nothing more
        info = None
    text = str(info or details.get("desc") or (exc.args[0] if exc.args else "") or "")
    return f"{result_name(exc)}: {text}" if text else result_name(exc)


def is_connection_lost(exc: BaseException) -> bool:
    """True when the connection cannot be used again (down, refused, timed out)."""
    return isinstance(exc, CONNECTION_LOST)


def translate(exc: ldap.LDAPError, *, binding: bool = False) -> SyncError:
    """The sluiced error for *exc* (returned, not raised).

    :class:`TransientError` for a server that is down, unreachable, busy, unavailable or
    timed out; :class:`CredentialsError` for refused credentials (with *binding*, also
    insufficient access, stronger authentication or confidentiality required);
    :class:`SyncError` for the rest. The message is ``"<resultName>: <diagnostic>"``.
    """
    message = _message(exc)
    if isinstance(exc, CREDENTIALS) or (binding and isinstance(exc, CREDENTIALS_ON_BIND)):
        return CredentialsError(f"the LDAP server refused the credentials: {message}")
    if isinstance(exc, TRANSIENT):
        return TransientError(message)
    return SyncError(message)


def object_error(exc: ldap.LDAPError) -> str | None:
    """``"<resultName>: <server's message>"`` when *exc*, raised by one object's write,
    is that object's fault (a constraint, the schema, its DN, access to it, a limit), so
    the object is escrowed; None when it is not (translate it and raise)."""
    if isinstance(exc, OBJECT_ERRORS):
        return _message(exc)
    return None
