"""Defaults for pod specs, wherever they appear: Pods and every pod template.

One function, :func:`default_pod_spec`, sets what upstream's generated
``SetObjectDefaults_Pod``/``_PodTemplate`` set on a ``PodSpec`` and everything nested
in it (containers, probes, ports, env, volumes, resource lists). The parts that
upstream applies to Pods only — requests copied from limits, ``enableServiceLinks``,
host ports under ``hostNetwork`` — are in :func:`default_pod_only`.

Objects are JSON-shaped dicts and are changed in place. Fields that are missing or
``null`` count as unset; values of the wrong type are left alone for validation.
"""

from __future__ import annotations

import contextlib
import functools
import re
from typing import Any

from pilothouse.api import quantity

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

# The file mode secret, configMap, downwardAPI and projected volumes default to.
_MODE_420 = 0o644

# docker/distribution reference grammar, as upstream's image name parser uses it.
_ALNUM = "[a-z0-9]+"
_SEPARATOR = "(?:[._]|__|[-]+)"
_PATH_COMPONENT = f"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_NAME = f"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?\Z")
_HEX64_RE = re.compile(r"^[a-f0-9]{64}\Z")


def image_tag(image: str) -> str:
    """The tag upstream's image parser sees: ``latest`` when none, ``""`` for digests/errors."""
    if _HEX64_RE.match(image):
        return ""
    m = _REFERENCE_RE.match(image)
    if m is None or len(m.group(1)) > 255:
        return ""
    tag, digest = m.group(2), m.group(3)
    if tag:
        return tag
    return "" if digest else "latest"


def default_pull_policy(image: Any) -> str:
    """``Always`` for ``:latest`` or untagged images, ``IfNotPresent`` otherwise."""
    tag = image_tag(image) if isinstance(image, str) else ""
    return "Always" if tag == "latest" else "IfNotPresent"


def _unset(value: Any) -> bool:
    return value is None or value == "" or value == 0


@functools.lru_cache(maxsize=1024)
def _round_up_milli(text: str) -> str:
    # Pods repeat the same few spellings; parsing one costs microseconds.
    return quantity.round_up_milli(text)


def default_resource_list(resources: Any) -> None:
    """Round each quantity up to ``1m`` and spell it canonically (SetDefaults_ResourceList)."""
    if not isinstance(resources, dict):
        return
    for key, value in resources.items():
        try:
            resources[key] = (
                _round_up_milli(value) if type(value) is str else quantity.round_up_milli(value)
            )
        except quantity.QuantityError:
            continue


def canonical_quantity(holder: Any, key: str) -> None:
    """Spell ``holder[key]`` as upstream serialises a quantity, if it parses."""
    if isinstance(holder, dict) and key in holder and holder[key] is not None:
        with contextlib.suppress(quantity.QuantityError):
            holder[key] = quantity.canonicalize(holder[key])


def default_field_ref(ref: Any) -> None:
    if isinstance(ref, dict) and not ref.get("apiVersion"):
        ref["apiVersion"] = "v1"


def _default_http_get(handler: Any) -> None:
    if not isinstance(handler, dict):
        return
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        if not http_get.get("path"):
            http_get["path"] = "/"
        if not http_get.get("scheme"):
            http_get["scheme"] = "HTTP"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    if _unset(probe.get("timeoutSeconds")):
        probe["timeoutSeconds"] = 1
    if _unset(probe.get("periodSeconds")):
        probe["periodSeconds"] = 10
    if _unset(probe.get("successThreshold")):
        probe["successThreshold"] = 1
    if _unset(probe.get("failureThreshold")):
        probe["failureThreshold"] = 3
    _default_http_get(probe)


def default_container(container: dict[str, Any]) -> None:
    """SetDefaults_Container and the defaults of everything a container holds."""
    if not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = default_pull_policy(container.get("image"))
    if not container.get("terminationMessagePath"):
        container["terminationMessagePath"] = "/dev/termination-log"
    if not container.get("terminationMessagePolicy"):
        container["terminationMessagePolicy"] = "File"
    ports = container.get("ports")
    if isinstance(ports, list):
        for port in ports:
            if isinstance(port, dict) and not port.get("protocol"):
                port["protocol"] = "TCP"
    env = container.get("env")
    if isinstance(env, list):
        for var in env:
            value_from = var.get("valueFrom") if isinstance(var, dict) else None
            if isinstance(value_from, dict):
                default_field_ref(value_from.get("fieldRef"))
                canonical_quantity(value_from.get("resourceFieldRef"), "divisor")
    resources = container.get("resources")
    if isinstance(resources, dict):
        default_resource_list(resources.get("limits"))
        default_resource_list(resources.get("requests"))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(probe))
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        _default_http_get(lifecycle.get("postStart"))
        _default_http_get(lifecycle.get("preStop"))


def _default_downward_items(items: Any) -> None:
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                default_field_ref(item.get("fieldRef"))
                canonical_quantity(item.get("resourceFieldRef"), "divisor")


def _set_if_unset(source: dict[str, Any], key: str, value: Any) -> None:
    if source.get(key) is None or source.get(key) == "":
        source[key] = value


def default_pvc_spec(spec: Any) -> None:
    """SetDefaults_PersistentVolumeClaimSpec plus its resource lists."""
    if not isinstance(spec, dict):
        return
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    resources = spec.get("resources")
    if isinstance(resources, dict):
        default_resource_list(resources.get("limits"))
        default_resource_list(resources.get("requests"))


def default_volume_source(volume: dict[str, Any]) -> None:
    """Defaults of the volume sources that have them (pod volumes and PV sources)."""
    host_path = volume.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        source = volume.get(key)
        if isinstance(source, dict) and source.get("defaultMode") is None:
            source["defaultMode"] = _MODE_420
    downward = volume.get("downwardAPI")
    if isinstance(downward, dict):
        _default_downward_items(downward.get("items"))
    projected = volume.get("projected")
    if isinstance(projected, dict) and isinstance(projected.get("sources"), list):
        for source in projected["sources"]:
            if not isinstance(source, dict):
                continue
            if isinstance(source.get("downwardAPI"), dict):
                _default_downward_items(source["downwardAPI"].get("items"))
            token = source.get("serviceAccountToken")
            if isinstance(token, dict) and token.get("expirationSeconds") is None:
                token["expirationSeconds"] = 3600
    iscsi = volume.get("iscsi")
    if isinstance(iscsi, dict):
        _set_if_unset(iscsi, "iscsiInterface", "default")
    rbd = volume.get("rbd")
    if isinstance(rbd, dict):
        _set_if_unset(rbd, "pool", "rbd")
        _set_if_unset(rbd, "user", "admin")
        _set_if_unset(rbd, "keyring", "/etc/ceph/keyring")
    azure = volume.get("azureDisk")
    if isinstance(azure, dict):
        _set_if_unset(azure, "cachingMode", "ReadWrite")
        _set_if_unset(azure, "fsType", "ext4")
        _set_if_unset(azure, "readOnly", False)
        _set_if_unset(azure, "kind", "Shared")
    scale_io = volume.get("scaleIO")
    if isinstance(scale_io, dict):
        _set_if_unset(scale_io, "storageMode", "ThinProvisioned")
        _set_if_unset(scale_io, "fsType", "xfs")
    empty_dir = volume.get("emptyDir")
    if isinstance(empty_dir, dict):
        canonical_quantity(empty_dir, "sizeLimit")
    ephemeral = volume.get("ephemeral")
    if isinstance(ephemeral, dict) and isinstance(ephemeral.get("volumeClaimTemplate"), dict):
        default_pvc_spec(ephemeral["volumeClaimTemplate"].get("spec"))


def _default_volume(volume: dict[str, Any]) -> None:
    # A volume with no source at all is an emptyDir (SetDefaults_Volume).
    if all(value is None for key, value in volume.items() if key != "name"):
        volume["emptyDir"] = {}
    default_volume_source(volume)


def default_pod_spec(spec: Any) -> None:
    """SetDefaults_PodSpec and the defaults of everything a pod spec holds."""
    if not isinstance(spec, dict):
        return
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    # Conversion, not defaulting: the deprecated serviceAccount mirrors serviceAccountName.
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    volumes = spec.get("volumes")
    if isinstance(volumes, list):
        for volume in volumes:
            if isinstance(volume, dict):
                _default_volume(volume)
    for key in _CONTAINER_LISTS:
        containers = spec.get(key)
        if isinstance(containers, list):
            for container in containers:
                if isinstance(container, dict):
                    default_container(container)
    default_resource_list(spec.get("overhead"))


def default_pod_only(spec: Any) -> None:
    """SetDefaults_Pod: what a Pod gets that pod templates do not."""
    if not isinstance(spec, dict):
        return
    for key in ("containers", "initContainers"):
        containers = spec.get(key)
        if not isinstance(containers, list):
            continue
        for container in containers:
            resources = container.get("resources") if isinstance(container, dict) else None
            if not isinstance(resources, dict):
                continue
            limits = resources.get("limits")
            if not isinstance(limits, dict):
                continue
            requests = resources.get("requests")
            if not isinstance(requests, dict):
                requests = resources["requests"] = {}
            for name, value in limits.items():
                requests.setdefault(name, value)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for container in spec.get(key) or ():
                for port in (container.get("ports") or ()) if isinstance(container, dict) else ():
                    if isinstance(port, dict) and not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")


def default_pod_template(template: Any) -> None:
    """Defaults of a ``PodTemplateSpec`` embedded in a workload."""
    if isinstance(template, dict):
        default_pod_spec(template.get("spec"))
