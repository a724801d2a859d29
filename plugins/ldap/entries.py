"""An entry's attributes as a record's data and back.

A record's data is ``{"dn": dn, attribute: value}`` with the schema's spelling of each
name; a single-valued attribute's value is a string, any other a list of strings;
binary values (and values that are not UTF-8) are base64 text.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from .schema import AttributeSchema

__all__ = ["AttributeSchema", "decode_value", "to_ldap_values", "to_record_data"]


def decode_value(attr: str, raw: bytes, schema: AttributeSchema) -> str:
    """One value as text: base64 for a binary attribute or bytes that are not UTF-8."""
    if not schema.binary(attr):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return base64.b64encode(raw).decode("ascii")


def to_record_data(
    dn: str, attrs: Mapping[str, list[bytes]], schema: AttributeSchema
) -> dict[str, Any]:
    """``{"dn": dn, name: value}`` for an entry as the server returned it (operational
    attributes are there only when asked for)."""
    data: dict[str, Any] = {"dn": dn}
    for attr, raws in attrs.items():
        values = [decode_value(attr, v, schema) for v in raws]
        key = schema.canonical(attr)
        data[key] = values[0] if len(values) == 1 and schema.single_valued(attr) else values
    return data


def _encode(attr: str, value: Any, schema: AttributeSchema) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"TRUE" if value else b"FALSE"
    if isinstance(value, int | float):
        return str(value).encode()
    if isinstance(value, str):
        if schema.binary(attr):
            try:
                return base64.b64decode(value, validate=True)
            except binascii.Error:
                raise ValueError(f"{attr}: a binary value that is not base64") from None
        return value.encode("utf-8")
    raise ValueError(f"{attr}: a {type(value).__name__} cannot be an LDAP value")


def to_ldap_values(attr: str, value: Any, schema: AttributeSchema) -> list[bytes]:
    """The values of *attr* to write: a list or a scalar to a list of bytes (``[]``, for
    None or an empty list, means the attribute is removed); base64 text decoded for a
    binary attribute; booleans as ``TRUE``/``FALSE``.

    Raises:
        ValueError: a value that cannot be written (a table, bad base64 for a binary attribute).
    """
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [_encode(attr, v, schema) for v in items if v is not None]
