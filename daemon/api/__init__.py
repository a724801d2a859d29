"""The control API (HTTP/1.1 + JSON on a Unix socket)."""

from .metrics import Metrics as Metrics
from .routes import ROUTES as ROUTES
from .routes import build_app as build_app
from .routes import openapi_document as openapi_document
from .server import serve as serve

__all__ = ["ROUTES", "Metrics", "build_app", "openapi_document", "serve"]
