"""CEL as Kubernetes 1.32 uses it: one environment for CRD rules and admission policies.

The public interface, for CRD validation rules (``x-kubernetes-validations``) and for
ValidatingAdmissionPolicy alike::

    from pilothouse.api import cel
    env = cel.Environment({"self": cel.from_schema(schema), "oldSelf": cel.from_schema(schema)})
    program = env.compile("self.replicas <= self.maxReplicas", result=cel.BOOL)
    program.evaluate({"self": {...}})            # -> True / False, or raises EvaluationError

* :class:`Environment` — declared variables (:mod:`.types`: ``DYN``, ``BOOL``,
  ``from_schema(...)``) and a compilation cache keyed by expression text;
  :meth:`Environment.compile` raises :class:`CompileError` with cel-go's message
  (``ERROR: <input>:1:6: undefined field 'foo'`` and a caret line) and can refuse
  expressions over a static cost limit;
* :class:`Activation` — variables converted once for several programs (a policy's
  expressions over one request);
* :class:`Program` — ``evaluate(activation)`` on plain JSON-shaped values (use
  :func:`values.convert` for schema-typed values such as ``date-time`` strings),
  ``estimated_cost``, ``variables`` (which declared variables it reads, e.g. whether a
  rule uses ``oldSelf``), ``result_type``;
* the limits of ``k8s.io/apiserver/pkg/apis/cel`` (:data:`PER_CALL_LIMIT`,
  :data:`RUNTIME_CEL_COST_BUDGET`).

What the environment offers: the CEL standard library with cel-go's
``CrossTypeNumericComparisons`` and ``OptionalTypes`` (``a.?b``, ``optional.of``,
``orValue``…), the strings extension (v2, with ``format``), the sets extension, and
Kubernetes' libraries: lists, regex (``find``, ``findAll``), URLs, quantity, IP and
CIDR, and named formats. Literals are checked at compile time as upstream's AST
validators check them (regular expressions, durations, timestamps, homogeneous list
and map literals).

The engine is the ``common-expression-language`` package (cel-rust): chosen over
``cel-python`` for speed (a simple rule evaluates in a few microseconds against
~300 µs) and for its coverage of the spec (cross-type comparisons, namespaced
functions, the three-argument ``map`` macro, optional values); parsing, checking and
cost estimation are ours (:mod:`.syntax`, :mod:`.checker`, :mod:`.cost`), so the
messages are upstream's.

No I/O here: this package is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from pilothouse.api.cel import values
from pilothouse.api.cel.env import (
    MAX_EVALUATED_MESSAGE_EXPRESSION_SIZE_BYTES,
    PER_CALL_LIMIT,
    RUNTIME_CEL_COST_BUDGET,
    Activation,
    CompileError,
    Environment,
    EvaluationError,
    Program,
)
from pilothouse.api.cel.types import (
    BOOL,
    DOUBLE,
    DYN,
    INT,
    STRING,
    Type,
    from_schema,
    list_of,
    map_of,
)

__all__ = [
    "BOOL",
    "DOUBLE",
    "DYN",
    "INT",
    "MAX_EVALUATED_MESSAGE_EXPRESSION_SIZE_BYTES",
    "PER_CALL_LIMIT",
    "RUNTIME_CEL_COST_BUDGET",
    "STRING",
    "Activation",
    "CompileError",
    "Environment",
    "EvaluationError",
    "Program",
    "Type",
    "from_schema",
    "list_of",
    "map_of",
    "values",
]
