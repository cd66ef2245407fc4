"""The functions Kubernetes' CEL environment adds to the engine's built-ins.

:func:`implementations` maps each function name (as the engine calls it, namespaced
ones with their dots) to its Python implementation: the strings and sets
extensions, Kubernetes' lists, regex, URL, quantity, IP/CIDR and format libraries,
and the few helpers the source writer (:mod:`..unparse`) calls where the engine's
own behaviour differs from cel-go's (``size`` of a string in code points, optional
field selection ``a.?b``, ``string()`` of an IP). :mod:`.declarations` is the
checker's view of the same functions.

No I/O here: this package is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cel as engine

from pilothouse.api.cel.library import (
    authz,
    formats,
    lists,
    net,
    opaque,
    quantity,
    sets,
    strings,
    urls,
)

# Names the source writer uses for its helpers (never valid in user expressions: the
# parser refuses identifiers starting with two underscores only by convention, so
# the checker rejects them as undeclared).
STRING_SIZE = "__k8s_string_size"
OPTIONAL_SELECT = "__k8s_optional_select"
OPTIONAL_INDEX = "__k8s_optional_index"
OPAQUE_STRING = "__k8s_string"


def _optional_select(value: Any, name: Any) -> Any:
    if isinstance(value, engine.OptionalValue):
        if not value.has_value():
            return value
        value = value.value()
    if isinstance(value, dict):
        if name in value:
            return engine.OptionalValue.of(value[name])
        return engine.OptionalValue.none()
    raise opaque.NoSuchOverload()


def _optional_index(value: Any, key: Any) -> Any:
    if isinstance(value, engine.OptionalValue):
        if not value.has_value():
            return value
        value = value.value()
    if isinstance(value, list):
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(value):
            return engine.OptionalValue.of(value[key])
        return engine.OptionalValue.none()
    if isinstance(value, dict):
        if key in value:
            return engine.OptionalValue.of(value[key])
        return engine.OptionalValue.none()
    raise opaque.NoSuchOverload()


def implementations() -> dict[str, Callable[..., Any]]:
    """Every library function by the name the engine calls it."""
    fns: dict[str, Callable[..., Any]] = {
        # strings extension (v2) and regex
        "charAt": strings.char_at,
        "indexOf": strings.index_of,
        "lastIndexOf": strings.last_index_of,
        "lowerAscii": strings.lower_ascii,
        "upperAscii": strings.upper_ascii,
        "replace": strings.replace,
        "split": strings.split,
        "substring": strings.substring,
        "trim": strings.trim,
        "join": strings.join,
        "format": strings.format_,
        "strings.quote": strings.quote,
        "find": strings.find,
        "findAll": strings.find_all,
        # lists
        "isSorted": lists.is_sorted,
        "sum": lists.sum_,
        "min": lists.min_,
        "max": lists.max_,
        # sets
        "sets.contains": sets.contains,
        "sets.equivalent": sets.equivalent,
        "sets.intersects": sets.intersects,
        # urls
        "url": urls.url,
        "isURL": urls.is_url,
        "getScheme": urls.get_scheme,
        "getHost": urls.get_host,
        "getHostname": urls.get_hostname,
        "getPort": urls.get_port,
        "getEscapedPath": urls.get_escaped_path,
        "getQuery": urls.get_query,
        # quantity
        "quantity": quantity.quantity,
        "isQuantity": quantity.is_quantity,
        "sign": quantity.sign,
        "isGreaterThan": quantity.is_greater_than,
        "isLessThan": quantity.is_less_than,
        "compareTo": quantity.compare_to,
        "asApproximateFloat": quantity.as_approximate_float,
        "asInteger": quantity.as_integer,
        "isInteger": quantity.is_integer,
        "add": quantity.add,
        "sub": quantity.sub,
        # ip and cidr
        "ip": net.ip,
        "isIP": net.is_ip,
        "ip.isCanonical": net.is_canonical,
        "family": net.family,
        "isUnspecified": net.is_unspecified,
        "isLoopback": net.is_loopback,
        "isLinkLocalMulticast": net.is_link_local_multicast,
        "isLinkLocalUnicast": net.is_link_local_unicast,
        "isGlobalUnicast": net.is_global_unicast,
        "cidr": net.cidr,
        "isCIDR": net.is_cidr,
        "containsIP": net.contains_ip,
        "containsCIDR": net.contains_cidr,
        "masked": net.masked,
        "prefixLength": net.prefix_length,
        # format
        "format.named": formats.named,
        "validate": formats.validate,
        # authz: builders here, ``check`` from whoever holds an authorizer
        "path": authz.path,
        "group": authz.group,
        "serviceAccount": authz.service_account,
        "resource": authz.resource,
        "subresource": authz.subresource,
        "namespace": authz.namespace,
        "name": authz.name,
        "fieldSelector": authz.field_selector,
        "labelSelector": authz.label_selector,
        "check": authz.no_authorizer,
        "allowed": authz.allowed,
        "reason": authz.reason,
        "errored": authz.errored,
        "error": authz.error,
        # helpers of the source writer
        STRING_SIZE: strings.string_size,
        OPTIONAL_SELECT: _optional_select,
        OPTIONAL_INDEX: _optional_index,
        OPAQUE_STRING: opaque.string,
    }
    for name in formats.NAMES:
        fns[f"format.{name}"] = formats.constant(name)
    return fns
