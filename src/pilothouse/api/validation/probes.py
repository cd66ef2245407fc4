"""Probes (liveness, readiness, startup) and lifecycle hooks: their handlers and timings."""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import meta, names, ports
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int


def _handler(handler: dict[str, Any], grace: Any, path: str, *, probe: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    kinds = (
        ("exec", "httpGet", "tcpSocket", "grpc")
        if probe
        else ("exec", "httpGet", "tcpSocket", "sleep")
    )
    count = 0
    for kind in kinds:
        action = handler.get(kind)
        if action is None:
            continue
        if count:
            errs.append(
                errors.field_forbidden(f"{path}.{kind}", "may not specify more than 1 handler type")
            )
            continue
        count += 1
        action = as_dict(action)
        apath = f"{path}.{kind}"
        if kind == "exec" and not as_list(action.get("command")):
            errs.append(errors.required(f"{apath}.command"))
        elif kind == "httpGet":
            if not action.get("path"):
                errs.append(errors.required(f"{apath}.path"))
            errs.extend(ports.validate_port_num_or_name(action.get("port"), f"{apath}.port"))
            scheme = action.get("scheme")
            if scheme not in ("HTTP", "HTTPS"):
                errs.append(
                    errors.not_supported(f"{apath}.scheme", as_str(scheme), ("HTTP", "HTTPS"))
                )
            for header in as_list(action.get("httpHeaders")):
                header_name = as_str(as_dict(header).get("name"))
                errs.extend(
                    errors.invalid_value(f"{apath}.httpHeaders", header_name, m)
                    for m in names.is_http_header_name(header_name)
                )
        elif kind == "tcpSocket":
            errs.extend(ports.validate_port_num_or_name(action.get("port"), f"{apath}.port"))
        elif kind == "grpc":
            port = action.get("port")
            errs.extend(
                ports.validate_port_num_or_name(port if is_int(port) else 0, f"{apath}.port")
            )
        elif kind == "sleep":
            seconds = action.get("seconds")
            if is_int(grace) and is_int(seconds) and (seconds <= 0 or seconds > grace):
                errs.append(
                    errors.invalid_value(
                        apath,
                        seconds,
                        f"must be greater than 0 and less than terminationGracePeriodSeconds ({grace}). Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep.",
                    )
                )
    if count == 0:
        errs.append(errors.required(path, "must specify a handler type"))
    return errs


def _probe(probe: Any, grace: Any, path: str, kind: str) -> list[FieldError]:
    if not isinstance(probe, dict):
        return []
    errs = _handler(probe, grace, path, probe=True)
    for key in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        errs.extend(meta.validate_nonnegative(probe.get(key), f"{path}.{key}"))
    grace_override = probe.get("terminationGracePeriodSeconds")
    if is_int(grace_override) and grace_override <= 0:
        errs.append(
            errors.invalid_value(
                f"{path}.terminationGracePeriodSeconds", grace_override, "must be greater than 0"
            )
        )
    success = probe.get("successThreshold")
    if kind in ("livenessProbe", "startupProbe") and success != 1:
        errs.append(
            errors.invalid_value(
                f"{path}.successThreshold", success if is_int(success) else 0, "must be 1"
            )
        )
    if kind == "readinessProbe" and grace_override is not None:
        errs.append(
            errors.invalid_value(
                f"{path}.terminationGracePeriodSeconds",
                grace_override,
                "must not be set for readinessProbes",
            )
        )
    return errs


def validate_probes_and_lifecycle(
    container: dict[str, Any], grace: Any, path: str
) -> list[FieldError]:
    errs: list[FieldError] = []
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                errs.extend(
                    _handler(lifecycle[hook], grace, f"{path}.lifecycle.{hook}", probe=False)
                )
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        errs.extend(_probe(container.get(kind), grace, f"{path}.{kind}", kind))
    return errs
