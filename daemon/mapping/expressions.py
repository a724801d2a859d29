"""Mapping expressions, as Entra writes them: parsed once into a tree, then evaluated.

Syntax::

    Join(" ", [givenName], [surname])
    IIF([status] = "active", "True", "False")
    Replace([mail], "@old.example", , , "@new.example", , )

* ``"text"`` is a string (``\\"`` and ``\\\\`` escape), ``42`` / ``4.5`` a number,
  ``[name]`` the value of an attribute of the source object (missing: null).
* ``Name(arg, ...)`` calls a function; an empty argument is null (Entra's optional
  positional arguments). Function names are case-insensitive.
* ``a = b`` and ``a <> b`` compare (as text, case-insensitively, like Entra).

Parsing checks function names and argument counts, so an expression that parses
cannot fail for those reasons later; every error gives the column (1-based). There is
no ``eval``: evaluation walks the tree and calls plain Python functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Attr",
    "Call",
    "Compare",
    "EvalContext",
    "Expression",
    "ExpressionError",
    "Function",
    "Literal",
    "Node",
    "parse_expression",
]


class ExpressionError(ValueError):
    """A syntax or evaluation error; ``column`` is 1-based in the expression text."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.message = message
        self.column = column


@dataclass(frozen=True)
class Function:
    """A function usable in expressions: ``fn(ctx, *args)``, with its argument counts."""

    name: str
    fn: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: any number


@dataclass(frozen=True)
class Literal:
    value: Any
    column: int


@dataclass(frozen=True)
class Attr:
    name: str
    column: int


@dataclass(frozen=True)
class Call:
    function: Function
    args: tuple[Node, ...]
    column: int


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node
    column: int


Node = Literal | Attr | Call | Compare


@dataclass
class EvalContext:
    """What an evaluation may look at besides the object: the clock, a uniqueness
    check for ``SelectUniqueValue`` (the target answers it), and new GUIDs."""

    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    is_unique: Callable[[Any], bool] = field(default=lambda value: True)
    new_guid: Callable[[], str] = field(default=lambda: __import__("uuid").uuid4().hex)


class _Parser:
    def __init__(self, text: str, functions: Mapping[str, Function]) -> None:
        self.text = text
        self.pos = 0
        self.functions = {k.lower(): v for k, v in functions.items()}

    def error(self, message: str, pos: int | None = None) -> ExpressionError:
        return ExpressionError(message, (self.pos if pos is None else pos) + 1)

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Node:
        if not self.text.strip():
            raise self.error("the expression is empty")
        node = self.comparison()
        if self.peek():
            raise self.error(f"unexpected {self.text[self.pos]!r}")
        return node

    def comparison(self) -> Node:
        left = self.primary()
        self.skip()
        start = self.pos
        for op in ("<>", "="):
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return Compare(op, left, self.primary(), start + 1)
        return left

    def primary(self) -> Node:
        ch = self.peek()
        start = self.pos
        if ch == '"':
            return Literal(self.string(), start + 1)
        if ch == "[":
            end = self.text.find("]", self.pos)
            if end < 0:
                raise self.error("an attribute name is not closed with ]")
            name = self.text[self.pos + 1 : end].strip()
            if not name:
                raise self.error("an empty attribute name")
            self.pos = end + 1
            return Attr(name, start + 1)
        if ch.isdigit() or (ch == "-" and self.text[self.pos + 1 : self.pos + 2].isdigit()):
            end = self.pos + 1
            while end < len(self.text) and (self.text[end].isdigit() or self.text[end] == "."):
                end += 1
            raw = self.text[self.pos : end]
            self.pos = end
            try:
                return Literal(float(raw) if "." in raw else int(raw), start + 1)
            except ValueError:
                raise self.error(f"{raw!r} is not a number", start) from None
        if ch.isalpha():
            end = self.pos
            while end < len(self.text) and (self.text[end].isalnum() or self.text[end] == "_"):
                end += 1
            name = self.text[self.pos : end]
            self.pos = end
            if name.lower() in ("true", "false") and self.peek() != "(":
                return Literal(name.lower() == "true", start + 1)
            return self.call(name, start)
        if not ch:
            raise self.error("the expression ends too early")
        raise self.error(f"unexpected {ch!r}")

    def string(self) -> str:
        assert self.text[self.pos] == '"'
        start = self.pos
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif ch == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(ch)
                self.pos += 1
        raise self.error('a string is not closed with "', start)

    def call(self, name: str, start: int) -> Node:
        function = self.functions.get(name.lower())
        if function is None:
            raise self.error(f"unknown function {name}", start)
        if self.peek() != "(":
            raise self.error(f"{function.name} needs ( after its name")
        self.pos += 1
        args: list[Node] = []
        if self.peek() == ")":
            self.pos += 1
        else:
            while True:
                if self.peek() in (",", ")"):
                    args.append(Literal(None, self.pos + 1))  # an empty argument
                else:
                    args.append(self.comparison())
                sep = self.peek()
                if sep == ",":
                    self.pos += 1
                    continue
                if sep == ")":
                    self.pos += 1
                    break
                raise self.error(f"expected , or ) in the arguments of {function.name}")
        n = len(args)
        if n < function.min_args or (function.max_args is not None and n > function.max_args):
            if function.max_args is None:
                wanted = f"at least {function.min_args}"
            elif function.min_args == function.max_args:
                wanted = str(function.min_args)
            else:
                wanted = f"{function.min_args} to {function.max_args}"
            raise self.error(f"{function.name} takes {wanted} arguments, not {n}", start)
        return Call(function, tuple(args), start + 1)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return _text(value[0]) if value else ""
    return str(value)


@dataclass(frozen=True)
class Expression:
    """A parsed expression: ``evaluate(obj)`` gives its value for a source object."""

    text: str
    tree: Node

    def evaluate(self, obj: Mapping[str, Any], ctx: EvalContext | None = None) -> Any:
        return _eval(self.tree, obj, ctx or EvalContext())

    def attributes(self) -> set[str]:
        """The attribute names the expression reads."""
        found: set[str] = set()

        def walk(node: Node) -> None:
            if isinstance(node, Attr):
                found.add(node.name)
            elif isinstance(node, Call):
                for arg in node.args:
                    walk(arg)
            elif isinstance(node, Compare):
                walk(node.left)
                walk(node.right)

        walk(self.tree)
        return found


def lookup(obj: Mapping[str, Any], name: str) -> Any:
    """An attribute by name; names are case-insensitive, as in directories."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if key.lower() == lowered:
            return value
    return None


def _eval(node: Node, obj: Mapping[str, Any], ctx: EvalContext) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Attr):
        return lookup(obj, node.name)
    if isinstance(node, Compare):
        equal = (
            _text(_eval(node.left, obj, ctx)).casefold()
            == _text(_eval(node.right, obj, ctx)).casefold()
        )
        return equal if node.op == "=" else not equal
    args = [_eval(a, obj, ctx) for a in node.args]
    try:
        return node.function.fn(ctx, *args)
    except ExpressionError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise ExpressionError(f"{node.function.name}: {exc}", node.column) from None


def parse_expression(text: str, functions: Mapping[str, Function]) -> Expression:
    """Parse *text* with the given functions (by name).

    Raises:
        ExpressionError: with the column of the problem.
    """
    return Expression(text, _Parser(text, functions).parse())
