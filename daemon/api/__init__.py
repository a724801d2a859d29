"""The control API (HTTP/1.1 + JSON on a Unix socket)."""

from .app import ROUTES as ROUTES
from .app import build_app as build_app
from .app import openapi_document as openapi_document
from .metrics import Metrics as Metrics
from .server import serve as serve

__all__ = ["ROUTES", "Metrics", "build_app", "openapi_document", "serve"]
