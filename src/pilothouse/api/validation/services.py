"""Services and Endpoints (``ValidateService``, ``ValidateServiceUpdate``, ``ValidateEndpoints``).

Cluster IPs are read from ``spec.clusterIPs``, falling back to ``[spec.clusterIP]``
when only the latter is set (upstream's strategy normalises the pair before it
validates).
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import meta, names
from pilothouse.api.validation.fields import as_dict, as_int, as_list, as_str, is_int
from pilothouse.api.validation.ports import PROTOCOLS, validate_port_num_or_name

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_VALID_IP = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_LB_ONLY = "may only be used when `type` is 'LoadBalancer'"
MAX_CLIENT_IP_AFFINITY_SECONDS = 86400


def cluster_ips(spec: dict[str, Any]) -> list[str]:
    ips = [as_str(ip) for ip in as_list(spec.get("clusterIPs"))]
    if not ips and spec.get("clusterIP"):
        ips = [as_str(spec["clusterIP"])]
    return ips


def is_headless(spec: dict[str, Any]) -> bool:
    return cluster_ips(spec) == ["None"]


def non_special_ip(value: str, path: str) -> list[FieldError]:
    """ValidateNonSpecialIP: no unspecified, loopback or link-local addresses."""
    ip = names.parse_ip(value)
    if ip is None:
        return [errors.invalid_value(path, value, "must be a valid IP address")]
    errs: list[FieldError] = []
    if ip.is_unspecified:
        errs.append(errors.invalid_value(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback:
        errs.append(
            errors.invalid_value(
                path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"
            )
        )
    if ip.is_link_local:
        errs.append(
            errors.invalid_value(
                path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
            )
        )
    link_local_multicast = (ip.version == 4 and value.startswith("224.0.0.")) or (
        ip.version == 6 and ip.is_multicast and (int(ip) >> 112) & 0xF == 2
    )
    if link_local_multicast:
        errs.append(
            errors.invalid_value(
                path,
                value,
                "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
            )
        )
    return errs


def _port(
    port: dict[str, Any], path: str, *, require_name: bool, seen: set[str]
) -> list[FieldError]:
    errs: list[FieldError] = []
    name = as_str(port.get("name"))
    if require_name and not name:
        errs.append(errors.required(f"{path}.name"))
    elif name:
        errs.extend(
            errors.invalid_value(f"{path}.name", name, m) for m in names.is_dns1123_label(name)
        )
        if name in seen:
            errs.append(errors.duplicate(f"{path}.name", name))
        seen.add(name)
    number = port.get("port")
    errs.extend(
        errors.invalid_value(f"{path}.port", number if is_int(number) else 0, m)
        for m in names.is_valid_port_num(number if is_int(number) else 0)
    )
    protocol = as_str(port.get("protocol"))
    if not protocol:
        errs.append(errors.required(f"{path}.protocol"))
    elif protocol not in PROTOCOLS:
        errs.append(errors.not_supported(f"{path}.protocol", protocol, PROTOCOLS))
    errs.extend(validate_port_num_or_name(port.get("targetPort"), f"{path}.targetPort"))
    app_protocol = port.get("appProtocol")
    if app_protocol is not None:
        errs.extend(
            errors.invalid_value(f"{path}.appProtocol", app_protocol, m)
            for m in names.is_qualified_name(as_str(app_protocol))
        )
    return errs


def _cluster_ip_fields(spec: dict[str, Any]) -> list[FieldError]:
    if spec.get("type") == "ExternalName":
        return []
    errs: list[FieldError] = []
    ips = cluster_ips(spec)
    shown = errors.go_string_list(ips)
    cluster_ip = as_str(spec.get("clusterIP"))
    if cluster_ip and ips and ips[0] != cluster_ip:
        errs.append(
            errors.invalid_value("spec.clusterIPs", shown, "first value must match `clusterIP`")
        )
    elif not cluster_ip and ips:
        errs.append(
            errors.invalid_value(
                "spec.clusterIPs", shown, "must be empty when `clusterIP` is not specified"
            )
        )
    families = [as_str(f) for f in as_list(spec.get("ipFamilies"))]
    for i, family in enumerate(families):
        if family not in ("IPv4", "IPv6"):
            errs.append(errors.not_supported(f"spec.ipFamilies[{i}]", family, ("IPv4", "IPv6")))
        if family in families[:i]:
            errs.append(errors.duplicate(f"spec.ipFamilies[{i}]", family))
    policy = spec.get("ipFamilyPolicy")
    supported_policies = ("PreferDualStack", "RequireDualStack", "SingleStack")
    if policy is not None and policy not in supported_policies:
        errs.append(errors.not_supported("spec.ipFamilyPolicy", policy, supported_policies))
    bad_ips = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad_ips = True
                errs.append(
                    errors.invalid_value(
                        "spec.clusterIPs", shown, "'None' must be the first and only value"
                    )
                )
            continue
        if names.parse_ip(ip) is None:
            bad_ips = True
            errs.append(errors.invalid_value(f"spec.clusterIPs[{i}]", ip, _VALID_IP))
    if len(ips) > 2:
        errs.append(errors.invalid_value("spec.clusterIPs", shown, "may only hold up to 2 values"))
    if bad_ips:
        return errs
    if len(ips) > 1 and not names.is_dual_stack(ips):
        errs.append(
            errors.invalid_value(
                "spec.clusterIPs", shown, "may specify no more than one IP for each IP family"
            )
        )
    if ips and ips != ["None"]:
        for i, (ip, family) in enumerate(zip(ips, families, strict=False)):
            v6 = names.is_ipv6_string(ip)
            if family == "IPv4" and v6:
                errs.append(
                    errors.invalid_value(
                        f"spec.clusterIPs[{i}]",
                        ip,
                        f"expected an IPv4 value as indicated by `ipFamilies[{i}]`",
                    )
                )
            if family == "IPv6" and not v6:
                errs.append(
                    errors.invalid_value(
                        f"spec.clusterIPs[{i}]",
                        ip,
                        f"expected an IPv6 value as indicated by `ipFamilies[{i}]`",
                    )
                )
    return errs


def validate_service(service: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(service, namespaced=True, name_fn=names.name_is_dns1035_label)
    spec = as_dict(service.get("spec"))
    kind = as_str(spec.get("type"))
    ports = [as_dict(p) for p in as_list(spec.get("ports"))]
    headless = is_headless(spec)
    if not ports and not headless and kind != "ExternalName":
        errs.append(errors.required("spec.ports"))
    if kind in ("LoadBalancer", "NodePort") and headless:
        errs.append(
            errors.invalid_value(
                "spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services"
            )
        )
    elif kind == "ExternalName":
        if as_list(spec.get("clusterIPs")):
            errs.append(
                errors.field_forbidden(
                    "spec.clusterIPs", "may not be set for ExternalName services"
                )
            )
        if as_list(spec.get("ipFamilies")):
            errs.append(
                errors.field_forbidden(
                    "spec.ipFamilies", "may not be set for ExternalName services"
                )
            )
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(
                errors.field_forbidden(
                    "spec.ipFamilyPolicy", "may not be set for ExternalName services"
                )
            )
        cname = as_str(spec.get("externalName")).removesuffix(".")
        if cname:
            errs.extend(
                errors.invalid_value("spec.externalName", cname, m)
                for m in names.is_dns1123_subdomain(cname)
            )
        else:
            errs.append(errors.required("spec.externalName"))
    seen: set[str] = set()
    for i, port in enumerate(ports):
        errs.extend(_port(port, f"spec.ports[{i}]", require_name=len(ports) > 1, seen=seen))
    if spec.get("selector") is not None:
        errs.extend(meta.validate_labels(spec.get("selector"), "spec.selector"))
    affinity = spec.get("sessionAffinity")
    if not affinity:
        errs.append(errors.required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        errs.append(errors.not_supported("spec.sessionAffinity", affinity, ("ClientIP", "None")))
    config = spec.get("sessionAffinityConfig")
    if affinity == "ClientIP":
        errs.extend(_client_ip_config(config))
    elif affinity == "None" and config is not None:
        errs.append(
            errors.field_forbidden(
                "spec.sessionAffinityConfig", "must not be set when session affinity is None"
            )
        )
    errs.extend(_cluster_ip_fields(spec))
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        if names.parse_ip(as_str(ip)) is None:
            errs.append(errors.invalid_value(f"spec.externalIPs[{i}]", ip, _VALID_IP))
        else:
            errs.extend(non_special_ip(ip, f"spec.externalIPs[{i}]"))
    if not kind:
        errs.append(errors.required("spec.type"))
    elif kind not in SERVICE_TYPES:
        errs.append(errors.not_supported("spec.type", kind, SERVICE_TYPES))
    if kind == "ClusterIP":
        for i, port in enumerate(ports):
            if port.get("nodePort"):
                errs.append(
                    errors.field_forbidden(
                        f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'"
                    )
                )
    node_ports: set[tuple[str, str]] = set()
    service_ports: set[tuple[str, str]] = set()
    for i, port in enumerate(ports):
        protocol = as_str(port.get("protocol"))
        node_port = port.get("nodePort")
        if node_port:
            if (protocol, repr(node_port)) in node_ports:
                errs.append(errors.duplicate(f"spec.ports[{i}].nodePort", node_port))
            node_ports.add((protocol, repr(node_port)))
        key = (protocol, repr(port.get("port")))
        if key in service_ports:
            errs.append(
                errors.duplicate(
                    f"spec.ports[{i}]",
                    errors.GoValue(
                        f'core.ServicePort{{Name:"", Protocol:"{protocol}", AppProtocol:(*string)(nil), Port:{as_int(port.get("port"))}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}'
                    ),
                )
            )
        service_ports.add(key)
    errs.extend(_load_balancer_fields(service, spec, kind))
    return errs


def _client_ip_config(config: Any) -> list[FieldError]:
    path = "spec.sessionAffinityConfig"
    reason = "when session affinity type is ClientIP"
    if not isinstance(config, dict):
        return [errors.required(path, reason)]
    client_ip = config.get("clientIP")
    if not isinstance(client_ip, dict):
        return [errors.required(f"{path}.clientIP", reason)]
    timeout = client_ip.get("timeoutSeconds")
    if timeout is None:
        return [errors.required(f"{path}.clientIP.timeoutSeconds", reason)]
    if not is_int(timeout) or not 0 < timeout <= MAX_CLIENT_IP_AFFINITY_SECONDS:
        return [
            errors.invalid_value(
                f"{path}.clientIP.timeoutSeconds",
                timeout,
                f"must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}",
            )
        ]
    return []


def _load_balancer_fields(
    service: dict[str, Any], spec: dict[str, Any], kind: str
) -> list[FieldError]:
    errs: list[FieldError] = []
    ranges = as_list(spec.get("loadBalancerSourceRanges"))
    annotation = "service.beta.kubernetes.io/load-balancer-source-ranges"
    annotations = as_dict(as_dict(service.get("metadata")).get("annotations"))
    if ranges:
        if kind != "LoadBalancer":
            errs.append(errors.field_forbidden("spec.LoadBalancerSourceRanges", _LB_ONLY))
        for i, value in enumerate(ranges):
            value = as_str(value).strip()
            if names.parse_cidr(value) is None:
                errs.append(
                    errors.invalid_value(
                        f"spec.LoadBalancerSourceRanges[{i}]",
                        value,
                        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                    )
                )
    elif annotation in annotations:
        path = f"metadata.annotations[{annotation}]"
        if kind != "LoadBalancer":
            errs.append(errors.field_forbidden(path, _LB_ONLY))
        text = as_str(annotations[annotation]).strip()
        for value in text.split(",") if text else ():
            if names.parse_cidr(value.strip()) is None:
                errs.append(
                    errors.invalid_value(
                        path,
                        value.strip(),
                        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                    )
                )
    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        errs.append(errors.field_forbidden("spec.allocateLoadBalancerNodePorts", _LB_ONLY))
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        errs.append(errors.required("allocateLoadBalancerNodePorts"))
    lb_class = spec.get("loadBalancerClass")
    if lb_class is not None:
        if kind == "LoadBalancer":
            errs.extend(
                errors.invalid_value("spec.loadBalancerClass", lb_class, m)
                for m in names.is_qualified_name(as_str(lb_class))
            )
        else:
            errs.append(errors.field_forbidden("spec.loadBalancerClass", _LB_ONLY))
    external = kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(as_list(spec.get("externalIPs")))
    )
    etp = spec.get("externalTrafficPolicy")
    if not external:
        if etp:
            errs.append(
                errors.invalid_value(
                    "spec.externalTrafficPolicy",
                    etp,
                    "may only be set for externally-accessible services",
                )
            )
    elif not etp:
        errs.append(errors.required("spec.externalTrafficPolicy"))
    elif etp not in ("Cluster", "Local"):
        errs.append(errors.not_supported("spec.externalTrafficPolicy", etp, ("Cluster", "Local")))
    health = spec.get("healthCheckNodePort")
    needs_health = kind == "LoadBalancer" and etp == "Local"
    if not needs_health and health:
        errs.append(
            errors.invalid_value(
                "spec.healthCheckNodePort",
                health,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            )
        )
    elif needs_health and is_int(health) and health:
        errs.extend(
            errors.invalid_value("spec.healthCheckNodePort", health, m)
            for m in names.is_valid_port_num(health)
        )
    itp = spec.get("internalTrafficPolicy")
    if itp is None and kind in ("ClusterIP", "NodePort", "LoadBalancer"):
        errs.append(errors.required("spec.internalTrafficPolicy"))
    elif itp is not None and itp not in ("Cluster", "Local"):
        errs.append(errors.not_supported("spec.internalTrafficPolicy", itp, ("Cluster", "Local")))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        errs.append(
            errors.not_supported("spec.trafficDistribution", distribution, ("PreferClose",))
        )
    return errs


def validate_service_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    kind, old_kind = spec.get("type"), old_spec.get("type")
    if "ExternalName" not in (kind, old_kind) and not (is_headless(spec) and is_headless(old_spec)):
        ips, old_ips = cluster_ips(spec), cluster_ips(old_spec)
        shown = errors.go_string_list(ips)
        changed = "may not change once set"
        if len(ips) == len(old_ips):
            for i, ip in enumerate(old_ips):
                if ip != ips[i]:
                    errs.append(errors.invalid_value(f"spec.clusterIPs[{i}]", shown, changed))
        elif len(old_ips) > len(ips):
            if not ips:
                errs.append(
                    errors.invalid_value(
                        "spec.clusterIPs[0]", shown, "primary clusterIP can not be unset"
                    )
                )
            elif ips[0] != old_ips[0]:
                errs.append(errors.invalid_value("spec.clusterIPs[0]", shown, changed))
            if len(ips) == 1 and spec.get("ipFamilyPolicy") != "SingleStack":
                errs.append(
                    errors.invalid_value(
                        "spec.ipFamilyPolicy",
                        spec.get("ipFamilyPolicy"),
                        "must be set to 'SingleStack' when releasing the secondary clusterIP",
                    )
                )
        elif old_ips and ips[0] != old_ips[0]:
            errs.append(errors.invalid_value("spec.clusterIPs[0]", shown, changed))
    if (
        "ExternalName" not in (kind, old_kind)
        and is_headless(spec) == is_headless(old_spec)
        and not is_headless(spec)
    ):
        families, old_families = (
            as_list(spec.get("ipFamilies")),
            as_list(old_spec.get("ipFamilies")),
        )
        shown_families = errors.go_string_list(families, "[]core.IPFamily")
        if len(families) == len(old_families) and families != old_families:
            errs.append(
                errors.invalid_value(
                    "spec.ipFamilies[0]", shown_families, "may not change once set"
                )
            )
        elif families and old_families and families[0] != old_families[0]:
            errs.append(
                errors.invalid_value(
                    "spec.ipFamilies[0]",
                    errors.go_string_list(cluster_ips(spec)),
                    "may not change once set",
                )
            )
    if kind == old_kind == "LoadBalancer" and spec.get("loadBalancerClass") != old_spec.get(
        "loadBalancerClass"
    ):
        errs.append(
            errors.invalid_value(
                "spec.loadBalancerClass", spec.get("loadBalancerClass"), "may not change once set"
            )
        )
    both_local = (
        spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy") == "Local"
    )
    health_changed = spec.get("healthCheckNodePort") != old_spec.get("healthCheckNodePort")
    if kind == old_kind == "LoadBalancer" and both_local and health_changed:
        errs.append(errors.field_forbidden("spec.healthCheckNodePort", "field is immutable"))
    return errs + validate_service(new)


def validate_endpoints(endpoints: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(
        endpoints, namespaced=True, name_fn=names.name_is_dns_subdomain
    )
    for i, subset in enumerate(as_list(endpoints.get("subsets"))):
        subset = as_dict(subset)
        spath = f"subsets[{i}]"
        addresses, not_ready = (
            as_list(subset.get("addresses")),
            as_list(subset.get("notReadyAddresses")),
        )
        if not addresses and not not_ready:
            errs.append(errors.required(spath, "must specify `addresses` or `notReadyAddresses`"))
        for key, items in (("addresses", addresses), ("notReadyAddresses", not_ready)):
            for j, address in enumerate(items):
                errs.extend(_endpoint_address(as_dict(address), f"{spath}.{key}[{j}]"))
        ports = as_list(subset.get("ports"))
        for j, port in enumerate(ports):
            port = as_dict(port)
            ppath = f"{spath}.ports[{j}]"
            name = as_str(port.get("name"))
            if len(ports) > 1 and not name:
                errs.append(errors.required(f"{ppath}.name"))
            elif name:
                errs.extend(
                    errors.invalid_value(f"{ppath}.name", name, m)
                    for m in names.is_dns1123_label(name)
                )
            number = as_int(port.get("port"))
            errs.extend(
                errors.invalid_value(f"{ppath}.port", number, m)
                for m in names.is_valid_port_num(number)
            )
            protocol = as_str(port.get("protocol"))
            if not protocol:
                errs.append(errors.required(f"{ppath}.protocol"))
            elif protocol not in PROTOCOLS:
                errs.append(errors.not_supported(f"{ppath}.protocol", protocol, PROTOCOLS))
            app_protocol = port.get("appProtocol")
            if app_protocol is not None:
                errs.extend(
                    errors.invalid_value(f"{ppath}.appProtocol", app_protocol, m)
                    for m in names.is_qualified_name(as_str(app_protocol))
                )
    return errs


def _endpoint_address(address: dict[str, Any], path: str) -> list[FieldError]:
    ip = as_str(address.get("ip"))
    errs: list[FieldError] = []
    if names.parse_ip(ip) is None:
        errs.append(errors.invalid_value(f"{path}.ip", ip, _VALID_IP))
    hostname = as_str(address.get("hostname"))
    if hostname:
        errs.extend(
            errors.invalid_value(f"{path}.hostname", hostname, m)
            for m in names.is_dns1123_label(hostname)
        )
    node_name = address.get("nodeName")
    if node_name is not None:
        errs.extend(
            errors.invalid_value(f"{path}.nodeName", node_name, m)
            for m in names.name_is_dns_subdomain(as_str(node_name), False)
        )
    return errs + non_special_ip(ip, f"{path}.ip")
