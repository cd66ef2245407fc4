"""Ports: container ports, port numbers or names, and host ports used twice in a pod."""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, intstr
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import names
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int

PROTOCOLS = ("SCTP", "TCP", "UDP")


def validate_port_num_or_name(port: Any, path: str) -> list[FieldError]:
    if port is None:
        port = 0
    if intstr.is_int(port):
        return [errors.invalid_value(path, port, m) for m in names.is_valid_port_num(port)]
    if isinstance(port, str):
        return [errors.invalid_value(path, port, m) for m in names.is_valid_port_name(port)]
    return [errors.invalid_value(path, errors.GoValue(repr(port)), "must be an int or a string")]


def validate_container_ports(ports: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, port in enumerate(as_list(ports)):
        port = as_dict(port)
        ppath = f"{path}[{i}]"
        name = as_str(port.get("name"))
        if name:
            msgs = names.is_valid_port_name(name)
            if msgs:
                errs.extend(errors.invalid_value(f"{ppath}.name", name, m) for m in msgs)
            elif name in seen:
                errs.append(errors.duplicate(f"{ppath}.name", name))
            else:
                seen.add(name)
        container_port = port.get("containerPort")
        if not container_port:
            errs.append(errors.required(f"{ppath}.containerPort"))
        elif is_int(container_port):
            errs.extend(
                errors.invalid_value(f"{ppath}.containerPort", container_port, m)
                for m in names.is_valid_port_num(container_port)
            )
        host_port = port.get("hostPort")
        if is_int(host_port) and host_port != 0:
            errs.extend(
                errors.invalid_value(f"{ppath}.hostPort", host_port, m)
                for m in names.is_valid_port_num(host_port)
            )
        protocol = as_str(port.get("protocol"))
        if not protocol:
            errs.append(errors.required(f"{ppath}.protocol"))
        elif protocol not in PROTOCOLS:
            errs.append(errors.not_supported(f"{ppath}.protocol", protocol, PROTOCOLS))
    return errs


def host_port_conflicts(containers: list[dict[str, Any]], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for ci, container in enumerate(containers):
        for pi, port in enumerate(as_list(container.get("ports"))):
            port = as_dict(port)
            host_port = port.get("hostPort")
            if not host_port:
                continue
            key = f"{as_str(port.get('protocol'))}/{as_str(port.get('hostIP'))}/{host_port}"
            if key in seen:
                errs.append(errors.duplicate(f"{path}[{ci}].ports[{pi}].hostPort", key))
            seen.add(key)
    return errs
