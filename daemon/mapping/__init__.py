"""Schema mapping: expressions, functions, object and attribute mappings, scoping."""

from .evaluation import in_scope as in_scope
from .evaluation import map_object as map_object
from .expressions import EvalContext as EvalContext
from .expressions import Expression as Expression
from .expressions import ExpressionError as ExpressionError
from .expressions import parse_expression as parse_expression
from .functions import BUILTINS as BUILTINS
from .functions import functions_from as functions_from
from .schema import Schema as Schema
from .schema import SchemaError as SchemaError
from .schema import default_schema as default_schema
from .schema import parse_schema as parse_schema

__all__ = [
    "BUILTINS",
    "EvalContext",
    "Expression",
    "ExpressionError",
    "Schema",
    "SchemaError",
    "default_schema",
    "functions_from",
    "in_scope",
    "map_object",
    "parse_expression",
    "parse_schema",
]
