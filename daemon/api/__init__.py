"""The control API (HTTP/1.1 + JSON on a Unix socket).

What a plugin uses to add routes and job types (hooks ``sluiced_api_routes`` and
``sluiced_job_types``): :class:`Route`, :class:`Call`, :class:`Field`,
:class:`ApiError` and :class:`JobType` (with its console forms: :class:`ConsoleForm`,
:class:`Checkbox`, :class:`IdList`); its handlers talk to
:class:`~sluiced.control.Control`.
"""

from .bodies import Field as Field
from .errors import ApiError as ApiError
from .jobforms import Checkbox as Checkbox
from .jobforms import ConsoleForm as ConsoleForm
from .jobforms import IdList as IdList
from .jobtypes import JobType as JobType
from .metrics import Metrics as Metrics
from .routes import ROUTES as ROUTES
from .routes import build_app as build_app
from .routes import openapi_document as openapi_document
from .routes import route_table as route_table
from .routing import Call as Call
from .routing import Route as Route
from .server import serve as serve

__all__ = [
    "ROUTES",
    "ApiError",
    "Call",
    "Checkbox",
    "ConsoleForm",
    "Field",
    "IdList",
    "JobType",
    "Metrics",
    "Route",
    "build_app",
    "openapi_document",
    "route_table",
    "serve",
]
