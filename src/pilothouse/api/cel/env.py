"""Compiling and evaluating CEL expressions in a Kubernetes environment.

An :class:`Environment` declares the variables an expression may read (``self``,
``oldSelf``; ``object``, ``request``, ``params`` …) with their types. Compiling
parses, checks (:mod:`.checker`) and estimates the cost (:mod:`.cost`) of an
expression, then hands source text to the engine (the ``common-expression-language``
package: cel-rust's interpreter behind a Python binding); compiled programs are
cached per environment by expression text, since the same rules are compiled for
every object of a kind. :meth:`Program.evaluate` runs one against plain JSON-shaped
values and returns plain values.

Errors are worded as cel-go words them, because upstream's messages quote them:
compile errors as ``ERROR: <input>:1:6: undefined field 'foo'`` with the source line
and a caret, runtime errors as ``no such key: foo``, ``division by zero``,
``no such overload``.

Programs are immutable and safe to share; evaluation keeps no state between calls.
No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cel as engine

from pilothouse.api.cel import checker, cost, library, paths, syntax, unparse
from pilothouse.api.cel import types as t
from pilothouse.api.cel.library import declarations

# The engine logs every failing library call as a warning; a rule failing is an
# answer to the client, not something for the server's log.
logging.getLogger("cel").setLevel(logging.ERROR)

# k8s.io/apiserver/pkg/apis/cel/config.go
PER_CALL_LIMIT = 1_000_000
RUNTIME_CEL_COST_BUDGET = 10_000_000
MAX_REQUEST_SIZE_BYTES = 3 * 1024 * 1024
MAX_EVALUATED_MESSAGE_EXPRESSION_SIZE_BYTES = 5 * 1024


class CompileError(ValueError):
    """An expression that does not compile; ``message`` is cel-go's wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EvaluationError(ValueError):
    """An expression that failed at run time; ``message`` is cel-go's wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Program:
    """A compiled expression."""

    expression: str
    source: str  # what the engine runs
    result_type: t.Type
    variables: frozenset[str]  # declared variables the expression reads
    estimated_cost: int  # upstream's static estimate (an upper bound)
    _program: Any
    _functions: dict[str, Any]
    # What of each variable it reads (:mod:`.paths`): callers may convert only that.
    reads: Mapping[str, paths.Paths] = field(default_factory=dict)

    def evaluate(self, activation: Mapping[str, Any] | Activation) -> Any:
        """The value of the expression; raises :class:`EvaluationError`."""
        if isinstance(activation, Activation):
            return activation.evaluate(self)
        # Handing the engine only the library functions the expression calls is most
        # of an evaluation's cost saved (a context converts every function it holds).
        context: Any = (
            engine.Context(dict(activation), self._functions)
            if self._functions
            else dict(activation)
        )
        try:
            return self._program.execute(context)
        except Exception as exc:  # the engine raises builtin types for CEL errors
            raise EvaluationError(engine_error(exc)) from None


class Activation:
    """Variables converted for the engine once, for several programs to read.

    Converting the variables (a whole object, the request) is most of an evaluation's
    cost: an admission policy's expressions all read the same request, so they share
    one. Not shared between tasks: :meth:`set` changes it for every later evaluation.
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._context: Any = engine.Context(dict(values), {})
        self._functions: set[str] = set()

    def set(self, name: str, value: Any) -> None:
        self._context.add_variable(name, value)

    def add_function(self, name: str, function: Callable[..., Any]) -> None:
        """A function of the caller's own under ``name``, ahead of the library's (the
        admission plugin's ``check``, which asks its authorizer)."""
        self._context.add_function(name, function)
        self._functions.add(name)

    def evaluate(self, program: Program) -> Any:
        for name, function in program._functions.items():
            if name not in self._functions:
                self._context.add_function(name, function)
                self._functions.add(name)
        try:
            return program._program.execute(self._context)
        except Exception as exc:  # the engine raises builtin types for CEL errors
            raise EvaluationError(engine_error(exc)) from None


_FUNCTION_ERROR = re.compile(
    r"^Function '([^']*)' error: (.*?)(?:\. Check function arguments and their types\.)?$", re.S
)


_PYTHON_ERROR = re.compile(r"^Python function call failed: (\w+): (.*)$", re.S)


def engine_error(exc: BaseException) -> str:
    """An engine failure in cel-go's words."""
    text = str(exc)
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else text
        return f"no such key: {key}"
    if isinstance(exc, ZeroDivisionError):
        return "division by zero" if "modulus" not in text else "modulus by zero"
    if isinstance(exc, OverflowError):
        return "integer overflow"
    if isinstance(exc, IndexError):
        return text.replace("index out of bounds", "index out of bounds") or "index out of bounds"
    m = _FUNCTION_ERROR.match(text)
    if m:
        text = m.group(2)
    m = _PYTHON_ERROR.match(text)
    if m:
        return "no such overload" if m.group(1) == "NoSuchOverload" else m.group(2)
    if text.startswith("no such overload"):
        return "no such overload"
    if isinstance(exc, TypeError) or text.startswith(("No such overload", "Unsupported operation")):
        return "no such overload"
    if text.startswith("Undefined variable or function"):
        name = text.split("'")[1] if "'" in text else text
        return f"no such attribute(s): {name}"
    return text


def _used(implementations: dict[str, Any], called: set[str]) -> dict[str, Any]:
    """The library functions a program calls (the engine names ``strings.quote`` by its
    last part)."""
    return {
        name: fn
        for name, fn in implementations.items()
        if name in called or name.rpartition(".")[2] in called
    }


class Environment:
    """Declared variables, the function library and a compilation cache."""

    def __init__(self, variables: Mapping[str, t.Type], *, cache_size: int = 4096) -> None:
        self.variables = dict(variables)
        self._declarations = declarations.all_functions()
        self._implementations = library.implementations()
        self._cache: collections.OrderedDict[tuple[str, str], Program] = collections.OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def extend(self, variables: Mapping[str, t.Type]) -> Environment:
        """A new environment with more (or retyped) variables."""
        return Environment({**self.variables, **variables}, cache_size=self._cache_size)

    def compile(
        self, expression: str, *, result: t.Type | None = None, cost_limit: int | None = None
    ) -> Program:
        """Compile ``expression``; raises :class:`CompileError`.

        ``result``: the type the expression must have (``bool`` for a rule, ``string``
        for a message expression); ``cost_limit``: refuse expressions whose estimated
        cost exceeds it.
        """
        key = (expression, str(result))
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
        if found is None:
            found = self._compile(expression)
            with self._lock:
                self._cache[key] = found
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        if result is not None and not t.is_assignable(result, found.result_type):
            raise CompileError(f"must evaluate to {result}")
        if cost_limit is not None and found.estimated_cost > cost_limit:
            raise CompileError(
                f"estimated rule cost exceeds budget by factor of "
                f"{cost.exceed_factor(found.estimated_cost, cost_limit)}"
            )
        return found

    def _compile(self, expression: str) -> Program:
        try:
            tree = syntax.parse(expression)
        except syntax.SyntaxErrorCEL as exc:
            raise CompileError(syntax.format_error(expression, exc.offset, exc.message)) from None
        try:
            checked = checker.check(tree, variables=self.variables, functions=self._declarations)
            source = unparse.write(checked)
        except checker.CheckError as exc:
            raise CompileError(syntax.format_error(expression, exc.offset, exc.message)) from None
        try:
            compiled = engine.compile(source)
        except Exception as exc:  # the engine's parser disagreeing with ours is our bug
            raise CompileError(f"ERROR: <input>:1:1: {exc}") from None
        return Program(
            expression=expression,
            source=source,
            result_type=checked.result,
            variables=frozenset(checked.variables),
            estimated_cost=cost.estimate(checked),
            _program=compiled,
            _functions=_used(self._implementations, set(compiled.functions())),
            reads=paths.read_paths(checked.root, checked.variables),
        )
