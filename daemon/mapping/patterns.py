"""Regular expressions from schemas (scoping clauses, ``Replace``), bounded in time.

A schema's pattern runs over source data nobody vetted, on the daemon's event loop. A
pattern that backtracks catastrophically (``(a|a)+$``) over one unlucky value would
hold the loop for minutes — the control API dead, SIGTERM unanswered. So:

* Patterns are compiled with the ``regex`` package. It reads .NET's syntax, which
  Entra's schemas are written in, where Python's ``re`` does not (``(?<name>…)``
  groups, variable-length lookbehind, ``\\p{L}``, atomic groups), and it stops a match
  after a timeout, from inside the matching loop (a thread could not be stopped).
* The matching done for one object — every clause, every ``Replace`` — shares one
  budget of :data:`OBJECT_BUDGET` seconds of CPU time, opened by :func:`object_budget`
  (the schema mapper opens one per object). Its clock starts at the object's first
  match (reading the thread's CPU clock is a system call: an object no pattern looks
  at does not pay for it). Outside one, each match has that much.
* A match that runs out raises :class:`PatternTimeout`, an ``ExpressionError``: the
  engine escrows the object with that reason and goes on with the others.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType

import regex

from .expressions import ExpressionError

__all__ = ["OBJECT_BUDGET", "Pattern", "PatternTimeout", "compile_pattern", "object_budget"]

#: Seconds of CPU time all regular expressions together may take on one object.
OBJECT_BUDGET = 0.25


class _Budget:
    """The open budget of one object: its seconds, and when they run out
    (``time.thread_time``), once its first match has started the clock."""

    __slots__ = ("deadline", "seconds", "token")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline: float | None = None
        self.token: Token[_Budget | None] | None = None

    def __enter__(self) -> None:
        self.token = _budget.set(self)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.token is not None:
            _budget.reset(self.token)


#: The budget of the object being mapped, if one is open.
_budget: ContextVar[_Budget | None] = ContextVar("sluiced_regex_budget", default=None)


class PatternTimeout(ExpressionError):
    """A regular expression took longer than its object's budget: escrow the object."""

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)
        self.message = message
        self.column = 0

    def within(self, where: str) -> PatternTimeout:
        """The same error, saying where the pattern is (``Replace``, a clause)."""
        return PatternTimeout(f"{where}: {self.message}")


def object_budget(seconds: float = OBJECT_BUDGET) -> _Budget:
    """A context manager giving the matching done inside it (on one object) *seconds*
    of CPU time in all, counted from its first match."""
    return _Budget(seconds)


def _remaining(pattern: str) -> float:
    budget = _budget.get()
    if budget is None:
        return OBJECT_BUDGET
    if budget.deadline is None:  # the object's first match starts its clock
        budget.deadline = time.thread_time() + budget.seconds
        return budget.seconds
    left = budget.deadline - time.thread_time()
    if left <= 0:
        raise PatternTimeout(_too_slow(pattern))
    return left


def _too_slow(pattern: str) -> str:
    return (
        f"the regular expression {pattern!r} took longer than {OBJECT_BUDGET:g} s on this "
        "object (it backtracks too much on the value; make it stricter)"
    )


class Pattern:
    """A compiled schema pattern whose every match is bounded in time."""

    __slots__ = ("compiled", "text")

    def __init__(self, text: str, compiled: regex.Pattern[str]) -> None:
        self.text = text
        self.compiled = compiled

    def __repr__(self) -> str:
        return f"Pattern({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def search(self, text: str) -> regex.Match[str] | None:
        """Raises:
        PatternTimeout: the object's budget ran out."""
        try:
            return self.compiled.search(text, timeout=_remaining(self.text))
        except TimeoutError:
            raise PatternTimeout(_too_slow(self.text)) from None

    def sub(self, repl: Callable[[regex.Match[str]], str], text: str) -> str:
        """Raises:
        PatternTimeout: the object's budget ran out."""
        try:
            return self.compiled.sub(repl, text, timeout=_remaining(self.text))
        except TimeoutError:
            raise PatternTimeout(_too_slow(self.text)) from None


@functools.lru_cache(maxsize=256)
def compile_pattern(text: str) -> Pattern:
    """Compile a pattern written for .NET (as Entra's are) or Python.

    Raises:
        ValueError: the pattern is invalid, with the reason.
    """
    try:
        return Pattern(text, regex.compile(text))
    except regex.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
