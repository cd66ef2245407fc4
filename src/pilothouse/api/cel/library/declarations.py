"""The function overloads the checker knows: CEL's standard ones and Kubernetes' libraries.

Each function name maps to its overloads (member or global, argument types, result
type). ``~A``/``~B`` are type parameters, bound on the first use and checked on
every further one, as cel-go binds them. ``dyn`` matches anything, in either
direction, so expressions over schemaless values check as upstream's do.

This is the checker's view only; the implementations the engine calls live in the
library modules (:mod:`.lists`, :mod:`.quantity` …), and those it has built in
(arithmetic, comparisons, ``size``, conversions, string predicates, timestamps)
are the engine's own.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pilothouse.api.cel import types as t


@dataclass(frozen=True, slots=True)
class Overload:
    member: bool
    args: tuple[t.Type, ...]
    result: t.Type


Functions = dict[str, list[Overload]]

A = t.Type("~A")
B = t.Type("~B")
LIST_A = t.list_of(A)
MAP_AB = t.map_of(A, B)
OPT_A = t.optional_of(A)


def _bind_one(expected: t.Type, actual: t.Type, env: dict[str, t.Type]) -> bool:
    if expected.name.startswith("~"):
        known = env.get(expected.name)
        if known is None or known.is_dyn:
            env[expected.name] = actual
            return True
        if actual.is_dyn:
            return True
        return t.is_assignable(known, actual) and t.is_assignable(actual, known)
    if expected.is_dyn or actual.is_dyn:
        return True
    if expected.name != actual.name:
        return False
    if expected.name == "object":
        return True
    return all(_bind_one(e, a, env) for e, a in zip(expected.params, actual.params, strict=False))


def _substitute(typ: t.Type, env: dict[str, t.Type]) -> t.Type:
    if typ.name.startswith("~"):
        return env.get(typ.name, t.DYN)
    if typ.params:
        return t.Type(typ.name, tuple(_substitute(p, env) for p in typ.params))
    return typ


def bind(overload: Overload, actual: Sequence[t.Type]) -> t.Type | None:
    """The result type when ``actual`` fits ``overload``, else None."""
    env: dict[str, t.Type] = {}
    for expected, got in zip(overload.args, actual, strict=True):
        if not _bind_one(expected, got, env):
            return None
    return _substitute(overload.result, env)


def _g(*args: t.Type, result: t.Type) -> Overload:
    return Overload(False, args, result)


def _m(*args: t.Type, result: t.Type) -> Overload:
    return Overload(True, args, result)


_NUMERIC = (t.INT, t.UINT, t.DOUBLE)
_ORDERED = (t.INT, t.UINT, t.DOUBLE, t.STRING, t.BYTES, t.BOOL, t.TIMESTAMP, t.DURATION)


def _comparisons() -> list[Overload]:
    out = [_g(x, x, result=t.BOOL) for x in _ORDERED]
    # CrossTypeNumericComparisons (enabled upstream since 1.28).
    out += [_g(x, y, result=t.BOOL) for x in _NUMERIC for y in _NUMERIC if x != y]
    return out


def standard() -> Functions:
    """cel-go's standard declarations (the subset Kubernetes expressions use)."""
    fns: Functions = {
        "_+_": [
            *(_g(x, x, result=x) for x in (*_NUMERIC, t.STRING, t.BYTES, t.DURATION)),
            _g(LIST_A, LIST_A, result=LIST_A),
            _g(t.TIMESTAMP, t.DURATION, result=t.TIMESTAMP),
            _g(t.DURATION, t.TIMESTAMP, result=t.TIMESTAMP),
        ],
        "_-_": [
            *(_g(x, x, result=x) for x in (*_NUMERIC, t.DURATION)),
            _g(t.TIMESTAMP, t.TIMESTAMP, result=t.DURATION),
            _g(t.TIMESTAMP, t.DURATION, result=t.TIMESTAMP),
        ],
        "_*_": [_g(x, x, result=x) for x in _NUMERIC],
        "_/_": [_g(x, x, result=x) for x in _NUMERIC],
        "_%_": [_g(x, x, result=x) for x in (t.INT, t.UINT)],
        "-_": [_g(t.INT, result=t.INT), _g(t.DOUBLE, result=t.DOUBLE)],
        "!_": [_g(t.BOOL, result=t.BOOL)],
        "_&&_": [_g(t.BOOL, t.BOOL, result=t.BOOL)],
        "_||_": [_g(t.BOOL, t.BOOL, result=t.BOOL)],
        "_?_:_": [_g(t.BOOL, A, A, result=A)],
        "_==_": [_g(A, A, result=t.BOOL)],
        "_!=_": [_g(A, A, result=t.BOOL)],
        "_<_": _comparisons(),
        "_<=_": _comparisons(),
        "_>_": _comparisons(),
        "_>=_": _comparisons(),
        "@in": [_g(A, LIST_A, result=t.BOOL), _g(A, MAP_AB, result=t.BOOL)],
        "_[_]": [_g(LIST_A, t.INT, result=A), _g(MAP_AB, A, result=B)],
        "_[?_]": [
            _g(LIST_A, t.INT, result=OPT_A),
            _g(MAP_AB, A, result=t.optional_of(B)),
        ],
        "size": [
            *(
                o
                for x in (t.STRING, t.BYTES, LIST_A, MAP_AB)
                for o in (_g(x, result=t.INT), _m(x, result=t.INT))
            )
        ],
        "int": [_g(x, result=t.INT) for x in (*_NUMERIC, t.STRING, t.TIMESTAMP)],
        "uint": [_g(x, result=t.UINT) for x in (*_NUMERIC, t.STRING)],
        "double": [_g(x, result=t.DOUBLE) for x in (*_NUMERIC, t.STRING)],
        "string": [
            _g(x, result=t.STRING)
            for x in (
                *_NUMERIC,
                t.STRING,
                t.BYTES,
                t.BOOL,
                t.TIMESTAMP,
                t.DURATION,
                t.IP,
                t.CIDR,
                t.URL,
            )
        ],
        "bytes": [_g(t.STRING, result=t.BYTES), _g(t.BYTES, result=t.BYTES)],
        "bool": [_g(t.STRING, result=t.BOOL), _g(t.BOOL, result=t.BOOL)],
        "timestamp": [_g(x, result=t.TIMESTAMP) for x in (t.STRING, t.INT, t.TIMESTAMP)],
        "duration": [_g(x, result=t.DURATION) for x in (t.STRING, t.DURATION)],
        "type": [_g(A, result=t.TYPE)],
        "dyn": [_g(A, result=t.DYN)],
        "contains": [_m(t.STRING, t.STRING, result=t.BOOL)],
        "startsWith": [_m(t.STRING, t.STRING, result=t.BOOL)],
        "endsWith": [_m(t.STRING, t.STRING, result=t.BOOL)],
        "matches": [
            _m(t.STRING, t.STRING, result=t.BOOL),
            _g(t.STRING, t.STRING, result=t.BOOL),
        ],
    }
    for getter in (
        "getFullYear",
        "getMonth",
        "getDayOfYear",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
    ):
        fns[getter] = [_m(t.TIMESTAMP, result=t.INT), _m(t.TIMESTAMP, t.STRING, result=t.INT)]
    for getter in ("getHours", "getMinutes", "getSeconds", "getMilliseconds"):
        fns[getter] = [
            _m(t.TIMESTAMP, result=t.INT),
            _m(t.TIMESTAMP, t.STRING, result=t.INT),
            _m(t.DURATION, result=t.INT),
        ]
    return fns


def optional() -> Functions:
    """cel-go's OptionalTypes library."""
    return {
        "optional.of": [_g(A, result=OPT_A)],
        "optional.ofNonZeroValue": [_g(A, result=OPT_A)],
        "optional.none": [_g(result=t.optional_of(t.DYN))],
        "hasValue": [_m(OPT_A, result=t.BOOL)],
        "value": [_m(OPT_A, result=A)],
        "orValue": [_m(OPT_A, A, result=A)],
        "or": [_m(OPT_A, OPT_A, result=OPT_A)],
    }


def strings() -> Functions:
    """cel-go's strings extension, version 2 (what Kubernetes 1.29+ enables)."""
    s, i = t.STRING, t.INT
    return {
        "charAt": [_m(s, i, result=s)],
        "indexOf": [_m(s, s, result=i), _m(s, s, i, result=i)],
        "lastIndexOf": [_m(s, s, result=i), _m(s, s, i, result=i)],
        "lowerAscii": [_m(s, result=s)],
        "upperAscii": [_m(s, result=s)],
        "replace": [_m(s, s, s, result=s), _m(s, s, s, i, result=s)],
        "split": [_m(s, s, result=t.list_of(s)), _m(s, s, i, result=t.list_of(s))],
        "substring": [_m(s, i, result=s), _m(s, i, i, result=s)],
        "trim": [_m(s, result=s)],
        "join": [_m(t.list_of(s), result=s), _m(t.list_of(s), s, result=s)],
        "format": [_m(s, t.list_of(t.DYN), result=s)],
        "strings.quote": [_g(s, result=s)],
    }


def sets() -> Functions:
    """cel-go's sets extension."""
    return {
        "sets.contains": [_g(LIST_A, LIST_A, result=t.BOOL)],
        "sets.equivalent": [_g(LIST_A, LIST_A, result=t.BOOL)],
        "sets.intersects": [_g(LIST_A, LIST_A, result=t.BOOL)],
    }


def kubernetes() -> Functions:
    """Kubernetes' own libraries (k8s.io/apiserver/pkg/cel/library, 1.32)."""
    s, i, b, d = t.STRING, t.INT, t.BOOL, t.DOUBLE
    q, u, ip, cidr, fmt = t.QUANTITY, t.URL, t.IP, t.CIDR, t.FORMAT
    comparable_lists = [
        t.list_of(x) for x in (i, t.UINT, d, s, t.BYTES, b, t.DURATION, t.TIMESTAMP)
    ]
    fns: Functions = {
        # lists
        "isSorted": [_m(x, result=b) for x in comparable_lists],
        "sum": [_m(t.list_of(x), result=x) for x in (i, t.UINT, d, t.DURATION)],
        "min": [_m(x, result=x.params[0]) for x in comparable_lists],
        "max": [_m(x, result=x.params[0]) for x in comparable_lists],
        # indexOf/lastIndexOf on lists join the string overloads below
        # regex
        "find": [_m(s, s, result=s)],
        "findAll": [_m(s, s, result=t.list_of(s)), _m(s, s, i, result=t.list_of(s))],
        # urls
        "url": [_g(s, result=u)],
        "isURL": [_g(s, result=b)],
        "getScheme": [_m(u, result=s)],
        "getHost": [_m(u, result=s)],
        "getHostname": [_m(u, result=s)],
        "getPort": [_m(u, result=s)],
        "getEscapedPath": [_m(u, result=s)],
        "getQuery": [_m(u, result=t.map_of(s, t.list_of(s)))],
        # quantity
        "quantity": [_g(s, result=q)],
        "isQuantity": [_g(s, result=b)],
        "sign": [_m(q, result=i)],
        "isGreaterThan": [_m(q, q, result=b)],
        "isLessThan": [_m(q, q, result=b)],
        "compareTo": [_m(q, q, result=i)],
        "asApproximateFloat": [_m(q, result=d)],
        "asInteger": [_m(q, result=i)],
        "isInteger": [_m(q, result=b)],
        "add": [_m(q, q, result=q), _m(q, i, result=q)],
        "sub": [_m(q, q, result=q), _m(q, i, result=q)],
        # ip and cidr
        "ip": [_g(s, result=ip), _m(cidr, result=ip)],
        "isIP": [_g(s, result=b)],
        "ip.isCanonical": [_g(s, result=b)],
        "family": [_m(ip, result=i)],
        "isUnspecified": [_m(ip, result=b)],
        "isLoopback": [_m(ip, result=b)],
        "isLinkLocalMulticast": [_m(ip, result=b)],
        "isLinkLocalUnicast": [_m(ip, result=b)],
        "isGlobalUnicast": [_m(ip, result=b)],
        "cidr": [_g(s, result=cidr)],
        "isCIDR": [_g(s, result=b)],
        "containsIP": [_m(cidr, ip, result=b), _m(cidr, s, result=b)],
        "containsCIDR": [_m(cidr, cidr, result=b), _m(cidr, s, result=b)],
        "masked": [_m(cidr, result=cidr)],
        "prefixLength": [_m(cidr, result=i)],
        # format
        "format.named": [_g(s, result=t.optional_of(fmt))],
        "validate": [_m(fmt, s, result=t.optional_of(t.list_of(s)))],
        # authz (admission only: the variable ``authorizer`` exists nowhere else)
        "path": [_m(t.AUTHORIZER, s, result=t.PATH_CHECK)],
        "group": [_m(t.AUTHORIZER, s, result=t.GROUP_CHECK)],
        "serviceAccount": [_m(t.AUTHORIZER, s, s, result=t.AUTHORIZER)],
        "resource": [_m(t.GROUP_CHECK, s, result=t.RESOURCE_CHECK)],
        "subresource": [_m(t.RESOURCE_CHECK, s, result=t.RESOURCE_CHECK)],
        "namespace": [_m(t.RESOURCE_CHECK, s, result=t.RESOURCE_CHECK)],
        "name": [_m(t.RESOURCE_CHECK, s, result=t.RESOURCE_CHECK)],
        "fieldSelector": [_m(t.RESOURCE_CHECK, s, result=t.RESOURCE_CHECK)],
        "labelSelector": [_m(t.RESOURCE_CHECK, s, result=t.RESOURCE_CHECK)],
        "check": [
            _m(t.RESOURCE_CHECK, s, result=t.DECISION),
            _m(t.PATH_CHECK, s, result=t.DECISION),
        ],
        "allowed": [_m(t.DECISION, result=b)],
        "reason": [_m(t.DECISION, result=s)],
        "errored": [_m(t.DECISION, result=b)],
        "error": [_m(t.DECISION, result=s)],
    }
    from pilothouse.api.cel.library import formats

    for name in formats.NAMES:
        fns[f"format.{name}"] = [_g(result=fmt)]
    return fns


def all_functions() -> Functions:
    out: Functions = {}
    for table in (standard(), optional(), strings(), sets(), kubernetes()):
        for name, overloads in table.items():
            out.setdefault(name, []).extend(overloads)
    # Lists' indexOf/lastIndexOf beside the strings' ones.
    for name in ("indexOf", "lastIndexOf"):
        out[name].append(_m(LIST_A, A, result=t.INT))
    return out
