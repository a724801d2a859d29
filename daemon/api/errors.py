"""Errors of the control API, answered as ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """An HTTP error with a JSON body. ``field`` names the offending request field."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}
