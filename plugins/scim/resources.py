"""SCIM resources from mapped attributes, and back: pure functions, no I/O.

A schema maps source objects to *flat* target attributes, named as SCIM names them::

    userName                                   -> {"userName": ...}
    name.givenName                             -> {"name": {"givenName": ...}}
    emails[type eq "work"].value               -> {"emails": [{"type": "work", "value": ...}]}
    urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department
        -> {"urn:...:enterprise:2.0:User": {"department": ...}}
    members (a list of target ids)             -> {"members": [{"value": id}, ...]}

``shape`` builds the resource; ``patch_operations`` the PATCH that turns what was
exported last time into what is exported now. A PATCH replaces whole top-level
attributes (``name``, ``emails``) built from everything sluiced exports, so values
sluiced does not manage inside them (a home email next to the work one sluiced maps)
are replaced too: the mapping owns the attributes it writes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "PATCH_SCHEMA",
    "attribute_value",
    "equality_filter",
    "ignored_attributes",
    "merge_into",
    "patch_operations",
    "scim_error",
    "shape",
    "top_path",
    "writes_active",
    "written",
    "written_by_patch",
]

PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_FILTERED = re.compile(r'^(\w+)\[(\w+) eq "([^"]*)"\]\.(\w+)$')


def _split_urn(key: str) -> tuple[str | None, str]:
    """``urn:...:User:department`` → (``urn:...:User``, ``department``)."""
    if key.lower().startswith("urn:"):
        urn, _, attribute = key.rpartition(":")
        return urn, attribute
    return None, key


def top_path(key: str) -> str:
    """The top-level attribute a flat key writes (the unit of a PATCH)."""
    urn, path = _split_urn(key)
    if urn is not None:
        return f"{urn}:{path.split('.', 1)[0]}"
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _put(container: dict[str, Any], path: str, value: Any) -> None:
    m = _FILTERED.match(path)
    if m:
        attribute, key, wanted, sub = m.groups()
        items = container.setdefault(attribute, [])
        for item in items:
            if item.get(key) == wanted:
                item[sub] = value
                return
        items.append({key: wanted, sub: value})
        return
    head, dot, rest = path.partition(".")
    if dot:
        inner = container.setdefault(head, {})
        if isinstance(inner, dict):
            inner[rest] = value
        return
    if head == "members" and isinstance(value, list):
        value = [v if isinstance(v, Mapping) else {"value": str(v)} for v in value]
    container[head] = value


def shape(flat: Mapping[str, Any], schemas: Sequence[str] = ()) -> dict[str, Any]:
    """The SCIM resource for mapped attributes; null values are left out. *schemas* are
    the resource's core schema URNs; extension URNs used are added."""
    out: dict[str, Any] = {}
    urns = list(schemas)
    for key, value in flat.items():
        if value is None or key in ("schemas", "id", "meta"):
            continue
        urn, path = _split_urn(key)
        if urn is not None:
            if urn not in urns:
                urns.append(urn)
            _put(out.setdefault(urn, {}), path, value)
        else:
            _put(out, path, value)
    if urns:
        out["schemas"] = urns
    return out


def _value_at(resource: Mapping[str, Any], path: str) -> Any:
    urn, attribute = _split_urn(path)
    if urn is not None:
        return (resource.get(urn) or {}).get(attribute)
    return resource.get(attribute)


def attribute_value(resource: Mapping[str, Any], path: str) -> Any:
    """The value at a flat attribute *path* (``name.givenName``, ``urn:...:department``)
    of a resource; None where there is none."""
    if path.lower().startswith("urn:"):
        urn, _, attribute = path.rpartition(":")
        container: Any = resource.get(urn) or {}
        parts = attribute.split(".")
    else:
        container, parts = resource, path.split(".")
    for part in parts:
        if not isinstance(container, Mapping):
            return None
        container = container.get(part)
    return container


def patch_operations(
    data: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    *,
    enable: bool = False,
) -> list[dict[str, Any]]:
    """PATCH operations that bring the target from *previous* (exported last time; None
    if unknown) to *data*. Attributes not in *data* are left alone."""
    before = previous or {}
    merged = {**before, **data}
    changed = {top_path(k) for k, v in data.items() if previous is None or before.get(k) != v}
    if enable:
        # The object was disabled (active: false). A mapping that writes `active` says
        # what it is to be now, whether or not that changed since the last export; one
        # that does not write it leaves re-enabling to sluiced.
        changed |= {top_path(k) for k in data if k.casefold() == "active"}
    resource = shape(merged)
    ops: list[dict[str, Any]] = []
    for path in sorted(changed):
        value = _value_at(resource, path)
        if value is None:
            if previous is not None:
                ops.append({"op": "remove", "path": path})
        else:
            ops.append({"op": "replace", "path": path, "value": value})
    if enable and not writes_active(data):
        ops.append({"op": "replace", "path": "active", "value": True})
    return ops


def writes_active(data: Mapping[str, Any]) -> bool:
    """Whether mapped attributes *data* set ``active`` (SCIM names are case-insensitive)."""
    return any(k.casefold() == "active" for k in data)


def merge_into(
    resource: Mapping[str, Any], data: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    """*resource* (as read from the server) with the top-level attributes *data* writes
    replaced, and those it sets to null removed: the body of a PUT."""
    out = dict(resource)
    shaped = shape({**(previous or {}), **data})
    for path in {top_path(k) for k in data}:
        value = _value_at(shaped, path)
        urn, attribute = _split_urn(path)
        container = out if urn is None else dict(out.get(urn) or {})
        if value is None:
            container.pop(attribute, None)
        else:
            container[attribute] = value
        if urn is not None:
            out[urn] = container
            if urn not in out.get("schemas", []):
                out["schemas"] = [*out.get("schemas", []), urn]
    return out


def _nest(out: dict[str, Any], path: str, value: Any) -> None:
    urn, attribute = _split_urn(path)
    if urn is None:
        out[attribute] = value
    else:
        out.setdefault(urn, {})[attribute] = value


def written(data: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The top-level attributes a replace of *data* writes (those with a value), shaped as
    in a resource: what a server's answer is compared with."""
    shaped = shape({**(previous or {}), **data})
    out: dict[str, Any] = {}
    for path in {top_path(k) for k in data}:
        value = _value_at(shaped, path)
        if value is not None:
            _nest(out, path, value)
    return out


def written_by_patch(operations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the ``replace`` operations of a PATCH write, shaped as in a resource."""
    out: dict[str, Any] = {}
    for operation in operations:
        if operation.get("op") == "replace" and isinstance(operation.get("path"), str):
            _nest(out, operation["path"], operation.get("value"))
    return out


#: Never compared: the server's own attributes, and those it never returns (RFC 7643 §4.1).
_NOT_COMPARED = {"schemas", "id", "meta", "password"}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _members(values: Sequence[Any]) -> set[str]:
    return {
        str(v.get("value") if isinstance(v, Mapping) else v).casefold()
        for v in values
        if not isinstance(v, Mapping) or v.get("value") is not None
    }


def ignored_attributes(
    sent: Mapping[str, Any], answered: Mapping[str, Any], prefix: str = ""
) -> dict[str, str]:
    """Attributes with a value in *sent* that the server's *answered* resource lacks
    (absent, null or empty), by path, with a note; and ``members`` values it did not keep.
    Names are compared case-insensitively, sub-attributes of complex attributes and
    extensions one by one. Values are not compared (servers normalise them: canonical
    case, added ``primary``), except members' ids, as sets."""
    have = {k.casefold(): v for k, v in answered.items()}
    out: dict[str, str] = {}
    for key, value in sent.items():
        if key.casefold() in _NOT_COMPARED or _empty(value):
            continue
        path = f"{prefix}{key}"
        got = have.get(key.casefold())
        if _empty(got):
            out[path] = ""
        elif isinstance(value, Mapping) and isinstance(got, Mapping):
            joint = ":" if key.lower().startswith("urn:") else "."
            out.update(ignored_attributes(value, got, f"{path}{joint}"))
        elif not prefix and key.casefold() == "members" and isinstance(value, list):
            wanted = _members(value)
            lost = wanted - _members(got if isinstance(got, list) else [got])
            if lost:
                out[path] = f"{len(lost)} of {len(wanted)} values"
    return out


def _quote(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def equality_filter(attribute: str, values: Sequence[Any]) -> str:
    """``userName eq "a" or userName eq "b"`` (RFC 7644 §3.4.2.2), values escaped."""
    return " or ".join(f"{attribute} eq {_quote(v)}" for v in values)


def scim_error(body: Any, status: int) -> str:
    """A person's reading of a SCIM error response."""
    head = f"HTTP {status}" + (" (not implemented)" if status == 501 else "")
    if isinstance(body, Mapping):
        parts = [str(body[k]) for k in ("scimType", "detail") if body.get(k)]
        if parts:
            return f"{head}: {': '.join(parts)}"
    return head
