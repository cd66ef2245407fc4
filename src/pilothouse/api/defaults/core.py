"""Defaults for core/v1 kinds (upstream ``pkg/apis/core/v1/defaults.go``).

Status fields that upstream defaults (a PV's or PVC's ``phase: Pending``, a
Namespace's ``phase: Active``) are set here too: upstream applies defaults whenever
an object is decoded, including when it is read back from storage, so callers that
reset status in a strategy should run the defaults again afterwards.
"""

from __future__ import annotations

import base64
from typing import Any

from pilothouse.api.defaults import podspec

_METADATA_NAME_LABEL = "kubernetes.io/metadata.name"


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """``obj[key]`` as a dict, created when missing (not replaced when of another type)."""
    value = obj.get(key)
    if value is None:
        value = obj[key] = {}
    return value if isinstance(value, dict) else {}


def pod(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    podspec.default_pod_only(spec)
    podspec.default_pod_spec(spec)


def pod_template(obj: dict[str, Any]) -> None:
    podspec.default_pod_template(obj.get("template"))


def _externally_accessible(spec: dict[str, Any]) -> bool:
    kind = spec.get("type")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs"))
    )


def service(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        config = spec.get("sessionAffinityConfig")
        client_ip = config.get("clientIP") if isinstance(config, dict) else None
        if not isinstance(client_ip, dict) or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    ports = spec.get("ports")
    if isinstance(ports, list):
        for port in ports:
            if not isinstance(port, dict):
                continue
            if not port.get("protocol"):
                port["protocol"] = "TCP"
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
    if _externally_accessible(spec) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and spec["type"] in (
        "ClusterIP",
        "NodePort",
        "LoadBalancer",
    ):
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        status = obj.get("status")
        load_balancer = status.get("loadBalancer") if isinstance(status, dict) else None
        ingress = load_balancer.get("ingress") if isinstance(load_balancer, dict) else None
        for entry in ingress if isinstance(ingress, list) else ():
            if isinstance(entry, dict) and entry.get("ip") and entry.get("ipMode") is None:
                entry["ipMode"] = "VIP"


def endpoints(obj: dict[str, Any]) -> None:
    subsets = obj.get("subsets")
    for subset in subsets if isinstance(subsets, list) else ():
        ports = subset.get("ports") if isinstance(subset, dict) else None
        for port in ports if isinstance(ports, list) else ():
            if isinstance(port, dict) and not port.get("protocol"):
                port["protocol"] = "TCP"


def namespace(obj: dict[str, Any]) -> None:
    metadata = _dict(obj, "metadata")
    name = metadata.get("name")
    if isinstance(name, str) and name:
        _dict(metadata, "labels")[_METADATA_NAME_LABEL] = name
    status = _dict(obj, "status")
    if not status.get("phase"):
        status["phase"] = "Active"


def node(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        # Conversion, not defaulting: podCIDR is podCIDRs[0].
        cidrs = spec.get("podCIDRs")
        if not cidrs and spec.get("podCIDR"):
            spec["podCIDRs"] = [spec["podCIDR"]]
        elif isinstance(cidrs, list) and cidrs:
            spec["podCIDR"] = cidrs[0]
    status = obj.get("status")
    if not isinstance(status, dict):
        return
    if status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])
    podspec.default_resource_list(status.get("capacity"))
    podspec.default_resource_list(status.get("allocatable"))


def secret(obj: dict[str, Any]) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"
    # stringData is write-only: upstream folds it into data when it decodes a Secret.
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for key, value in string_data.items():
            if isinstance(value, str):
                data[key] = base64.b64encode(value.encode()).decode()


def persistent_volume(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if not spec.get("persistentVolumeReclaimPolicy"):
        spec["persistentVolumeReclaimPolicy"] = "Retain"
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    podspec.default_resource_list(spec.get("capacity"))
    podspec.default_volume_source(spec)
    status = _dict(obj, "status")
    if not status.get("phase"):
        status["phase"] = "Pending"


def persistent_volume_claim(obj: dict[str, Any]) -> None:
    podspec.default_pvc_spec(_dict(obj, "spec"))
    status = _dict(obj, "status")
    if not status.get("phase"):
        status["phase"] = "Pending"
    podspec.default_resource_list(status.get("capacity"))
    podspec.default_resource_list(status.get("allocatedResources"))


def claim_template(template: Any) -> None:
    """A PVC embedded as a template (a StatefulSet's volumeClaimTemplates)."""
    if isinstance(template, dict):
        persistent_volume_claim(template)


def resource_quota(obj: dict[str, Any]) -> None:
    podspec.default_resource_list(_dict(obj, "spec").get("hard"))
    # A struct upstream: served as {} before the controller fills it in.
    status = _dict(obj, "status")
    podspec.default_resource_list(status.get("hard"))
    podspec.default_resource_list(status.get("used"))


def limit_range(obj: dict[str, Any]) -> None:
    """SetDefaults_LimitRangeItem: a Container item's ``default`` falls back to ``max``, its
    ``defaultRequest`` to ``default`` and then to ``min``."""
    for item in _dict(obj, "spec").get("limits") or []:
        if not isinstance(item, dict):
            continue
        for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            podspec.default_resource_list(item.get(key))
        if item.get("type") != "Container":
            continue
        default = dict(item.get("default") or {})
        request = dict(item.get("defaultRequest") or {})
        for key, value in (item.get("max") or {}).items():
            default.setdefault(key, value)
        for key, value in default.items():
            request.setdefault(key, value)
        for key, value in (item.get("min") or {}).items():
            request.setdefault(key, value)
        if default:
            item["default"] = default
        if request:
            item["defaultRequest"] = request


DEFAULTERS = {
    "Pod": pod,
    "PodTemplate": pod_template,
    "Service": service,
    "Endpoints": endpoints,
    "Namespace": namespace,
    "Node": node,
    "Secret": secret,
    "PersistentVolume": persistent_volume,
    "PersistentVolumeClaim": persistent_volume_claim,
    "ResourceQuota": resource_quota,
    "LimitRange": limit_range,
}
