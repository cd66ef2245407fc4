"""Pod volumes and their sources (``ValidateVolumes`` and ``validateVolumeSource``).

The sources pilothouse can mount (emptyDir, hostPath, configMap, secret,
downwardAPI, projected, persistentVolumeClaim, ephemeral, nfs, csi, image) are
checked field by field; the cloud and legacy sources get upstream's required-field
checks, so manifests written for other clusters are judged the same way.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import names, resources
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int

FILE_MODE_ERROR = "must be a number between 0 and 0777 (octal), both inclusive"
MORE_THAN_ONE = "may not specify more than 1 volume type"
HOST_PATH_TYPES = (
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
)
_VOLUME_FIELD_PATHS = (
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
)
CONTAINER_RESOURCE_FIELDS = (
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
)
# Fields a downward API fieldRef may name for apiVersion v1 (ConvertDownwardAPIFieldLabel).
_DOWNWARD_V1_FIELDS = frozenset(
    {
        "metadata.annotations",
        "metadata.labels",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.serviceAccountName",
        "spec.schedulerName",
        "status.phase",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    }
)
_CPU_DIVISORS = frozenset({"1m", "1"})
_BYTE_DIVISORS = frozenset(
    {"1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"}
)
_BYTE_DIVISOR_LIST = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"


def _required(source: dict[str, Any], key: str, path: str, detail: str = "") -> list[FieldError]:
    return [] if source.get(key) else [errors.required(f"{path}.{key}", detail)]


def _file_mode(value: Any, path: str) -> list[FieldError]:
    if is_int(value) and not 0 <= value <= 0o777:
        return [errors.invalid_value(path, value, FILE_MODE_ERROR)]
    return []


def path_no_backsteps(target: str, path: str) -> list[FieldError]:
    if ".." in target.replace("\\", "/").split("/"):
        return [errors.invalid_value(path, target, "must not contain '..'")]
    return []


def local_descending_path(target: str, path: str) -> list[FieldError]:
    errs = []
    if target.startswith("/"):
        errs.append(errors.invalid_value(path, target, "must be a relative path"))
    return errs + path_no_backsteps(target, path)


def local_non_reserved_path(target: str, path: str) -> list[FieldError]:
    errs = local_descending_path(target, path)
    if target.startswith("..") and not target.startswith("../"):
        errs.append(errors.invalid_value(path, target, "must not start with '..'"))
    return errs


def _key_to_path(item: dict[str, Any], path: str) -> list[FieldError]:
    errs = _required(item, "key", path) + _required(item, "path", path)
    errs += local_non_reserved_path(as_str(item.get("path")), f"{path}.path")
    return errs + _file_mode(item.get("mode"), f"{path}.mode")


def _items(source: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, item in enumerate(as_list(source.get("items"))):
        errs.extend(_key_to_path(as_dict(item), f"{path}.items[{i}]"))
    return errs


def convert_downward_field(api_version: str, field_path: str) -> tuple[str, str | None]:
    """(path, error) for a downward API ``fieldPath`` as upstream's converter reads it."""
    if api_version != "v1":
        return field_path, f"unsupported pod version: {api_version}"
    base, bracket, _ = field_path.partition("[")
    if bracket and base in ("metadata.annotations", "metadata.labels"):
        return field_path, None
    if field_path in _DOWNWARD_V1_FIELDS:
        return field_path, None
    return field_path, f"field label not supported: {field_path}"


def object_field_selector(
    ref: dict[str, Any], allowed: tuple[str, ...], path: str
) -> list[FieldError]:
    api_version = as_str(ref.get("apiVersion"))
    field_path = as_str(ref.get("fieldPath"))
    if not api_version:
        return [errors.required(f"{path}.apiVersion")]
    if not field_path:
        return [errors.required(f"{path}.fieldPath")]
    internal, error = convert_downward_field(api_version, field_path)
    if error:
        return [
            errors.invalid_value(
                f"{path}.fieldPath", field_path, f"error converting fieldPath: {error}"
            )
        ]
    base, bracket, rest = internal.partition("[")
    if bracket:
        subscript = rest[:-1] if rest.endswith("]") else rest
        subscript = subscript.strip("'\"")
        if base == "metadata.annotations":
            return [
                errors.invalid_value(path, subscript.lower(), m)
                for m in names.is_qualified_name(subscript.lower())
            ]
        if base == "metadata.labels":
            return [
                errors.invalid_value(path, subscript, m) for m in names.is_qualified_name(subscript)
            ]
        return [errors.invalid_value(path, base, "does not support subscript")]
    if internal not in allowed:
        return [errors.not_supported(f"{path}.fieldPath", internal, sorted(allowed))]
    return []


def resource_field_selector(ref: dict[str, Any], path: str, *, volume: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    resource = as_str(ref.get("resource"))
    if volume and not ref.get("containerName"):
        errs.append(errors.required(f"{path}.containerName"))
    elif not resource:
        errs.append(errors.required(f"{path}.resource"))
    elif resource not in CONTAINER_RESOURCE_FIELDS and not resource.startswith(
        ("requests.hugepages-", "limits.hugepages-")
    ):
        errs.append(errors.not_supported(f"{path}.resource", resource, CONTAINER_RESOURCE_FIELDS))
    divisor = ref.get("divisor")
    if divisor is None:
        return errs
    q, bad = resources.parse_or_error(divisor, f"{path}.divisor")
    if q is None or q.value == 0:
        return errs + bad
    shown = str(q)
    if resource in ("limits.cpu", "requests.cpu") and shown not in _CPU_DIVISORS:
        errs.append(
            errors.invalid_value(
                f"{path}.divisor",
                resource,
                "only divisor's values 1m and 1 are supported with the cpu resource",
            )
        )
    kinds = {
        "limits.memory": "memory",
        "requests.memory": "memory",
        "limits.ephemeral-storage": "local ephemeral storage",
        "requests.ephemeral-storage": "local ephemeral storage",
    }
    kind = kinds.get(resource) or ("hugepages" if "hugepages-" in resource else None)
    if kind and shown not in _BYTE_DIVISORS:
        errs.append(
            errors.invalid_value(
                f"{path}.divisor",
                resource,
                f"only divisor's values {_BYTE_DIVISOR_LIST} are supported with the {kind} resource",
            )
        )
    return errs


def _downward_file(item: dict[str, Any], path: str) -> list[FieldError]:
    errs = _required(item, "path", path)
    errs += local_non_reserved_path(as_str(item.get("path")), f"{path}.path")
    field_ref, resource_ref = item.get("fieldRef"), item.get("resourceFieldRef")
    if isinstance(field_ref, dict):
        errs += object_field_selector(field_ref, _VOLUME_FIELD_PATHS, f"{path}.fieldRef")
        if resource_ref is not None:
            errs.append(
                errors.invalid_value(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )
            )
    elif isinstance(resource_ref, dict):
        errs += resource_field_selector(resource_ref, f"{path}.resourceFieldRef", volume=True)
    else:
        errs.append(errors.required(path, "one of fieldRef and resourceFieldRef is required"))
    return errs + _file_mode(item.get("mode"), f"{path}.mode")


def _projected(source: dict[str, Any], path: str) -> list[FieldError]:
    errs = _file_mode(source.get("defaultMode"), f"{path}.defaultMode")
    seen: set[str] = set()

    def claim(target: str, shown: str) -> None:
        if target in seen:
            errs.append(errors.invalid_value(path, shown, "conflicting duplicate paths"))
        seen.add(target)

    for i, entry in enumerate(as_list(source.get("sources"))):
        entry = as_dict(entry)
        src_path = f"{path}.sources[{i}]"
        count = 0
        for key in ("secret", "configMap"):
            projection = entry.get(key)
            if not isinstance(projection, dict):
                continue
            count += 1
            errs.extend(_required(projection, "name", f"{src_path}.{key}"))
            for j, item in enumerate(as_list(projection.get("items"))):
                item = as_dict(item)
                errs.extend(_key_to_path(item, f"{src_path}.{key}.items[{j}]"))
                if item.get("path"):
                    claim(as_str(item["path"]), as_str(projection.get("name")))
        downward = entry.get("downwardAPI")
        if isinstance(downward, dict):
            count += 1
            for item in as_list(downward.get("items")):
                item = as_dict(item)
                errs.extend(_downward_file(item, f"{src_path}.downwardAPI"))
                if item.get("path"):
                    claim(as_str(item["path"]), as_str(item["path"]))
        token = entry.get("serviceAccountToken")
        if isinstance(token, dict):
            count += 1
            expiration = token.get("expirationSeconds")
            token_path = f"{src_path}.serviceAccountToken"
            if is_int(expiration) and expiration < 600:
                errs.append(
                    errors.invalid_value(
                        f"{token_path}.expirationSeconds",
                        expiration,
                        "may not specify a duration less than 10 minutes",
                    )
                )
            if is_int(expiration) and expiration > 1 << 32:
                errs.append(
                    errors.invalid_value(
                        f"{token_path}.expirationSeconds",
                        expiration,
                        "may not specify a duration larger than 2^32 seconds",
                    )
                )
            if not token.get("path"):
                errs.append(errors.required(f"{path}.path"))
            else:
                errs.extend(local_non_reserved_path(as_str(token["path"]), f"{path}.path"))
        if isinstance(entry.get("clusterTrustBundle"), dict):
            count += 1
            bundle = entry["clusterTrustBundle"]
            bundle_path = f"{src_path}.clusterTrustBundle"
            if bundle.get("name") is None and bundle.get("signerName") is None:
                errs.append(
                    errors.required(bundle_path, "either name or signerName must be specified")
                )
            if not bundle.get("path"):
                errs.append(errors.required(f"{bundle_path}.path"))
            errs.extend(local_non_reserved_path(as_str(bundle.get("path")), f"{bundle_path}.path"))
        if count > 1:
            errs.append(
                errors.field_forbidden(
                    src_path, "may not specify more than 1 volume type per source"
                )
            )
    return errs


def _host_path(source: dict[str, Any], path: str) -> list[FieldError]:
    target = as_str(source.get("path"))
    if not target:
        return [errors.required(f"{path}.path")]
    errs = path_no_backsteps(target, f"{path}.path")
    kind = source.get("type")
    if kind is not None and kind not in HOST_PATH_TYPES:
        errs.append(errors.not_supported(f"{path}.type", kind, HOST_PATH_TYPES))
    return errs


def _nfs(source: dict[str, Any], path: str) -> list[FieldError]:
    errs = _required(source, "server", path) + _required(source, "path", path)
    target = as_str(source.get("path"))
    if not target.startswith("/"):
        errs.append(errors.invalid_value(f"{path}.path", target, "must be an absolute path"))
    return errs


def csi_driver_name(driver: str, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not driver:
        errs.append(errors.required(path))
    if len(driver) > 63:
        errs.append(errors.too_long(path, 63))
    errs.extend(
        errors.invalid_value(path, driver, m) for m in names.is_dns1123_subdomain(driver.lower())
    )
    return errs


def _csi(source: dict[str, Any], path: str) -> list[FieldError]:
    errs = csi_driver_name(as_str(source.get("driver")), f"{path}.driver")
    secret = source.get("nodePublishSecretRef")
    if isinstance(secret, dict):
        name = as_str(secret.get("name"))
        if not name:
            errs.append(errors.required(f"{path}.nodePublishSecretRef.name"))
        else:
            errs.extend(
                errors.invalid_value(f"{path}.name", name, m)
                for m in names.name_is_dns_subdomain(name, False)
            )
    return errs


def _ephemeral(
    source: dict[str, Any], path: str, pod_name: str, volume_name: str
) -> list[FieldError]:
    template = source.get("volumeClaimTemplate")
    if not isinstance(template, dict):
        return [errors.required(f"{path}.volumeClaimTemplate")]
    from pilothouse.api.validation import storage  # the PVC rules live with PVCs

    tpath = f"{path}.volumeClaimTemplate"
    errs = storage.validate_template_object_meta(template.get("metadata"), f"{tpath}.metadata")
    errs += storage.validate_pvc_spec(as_dict(template.get("spec")), f"{tpath}.spec")
    if pod_name and volume_name:
        claim = f"{pod_name}-{volume_name}"
        errs.extend(
            errors.invalid_value(f"{path}.name", volume_name, f'PVC name "{claim}": {m}')
            for m in names.name_is_dns_subdomain(claim, False)
        )
    return errs


def _simple(*required: str) -> Any:
    def check(source: dict[str, Any], path: str) -> list[FieldError]:
        errs: list[FieldError] = []
        for key in required:
            errs.extend(_required(source, key, path))
        return errs

    return check


# Every volume source upstream knows, in the order upstream checks them.
_SOURCES: dict[str, Any] = {
    "emptyDir": None,
    "hostPath": _host_path,
    "gitRepo": lambda s, p: (
        _required(s, "repository", p)
        + local_descending_path(as_str(s.get("directory")), f"{p}.directory")
    ),
    "gcePersistentDisk": _simple("pdName"),
    "awsElasticBlockStore": _simple("volumeID"),
    "secret": lambda s, p: (
        _required(s, "secretName", p)
        + _file_mode(s.get("defaultMode"), f"{p}.defaultMode")
        + _items(s, p)
    ),
    "nfs": _nfs,
    "iscsi": _simple("targetPortal", "iqn"),
    "glusterfs": lambda s, p: _required(s, "endpoints", p) + _required(s, "path", p),
    "flocker": None,
    "persistentVolumeClaim": _simple("claimName"),
    "rbd": lambda s, p: _required(s, "monitors", p) + _required(s, "image", p),
    "cinder": _simple("volumeID"),
    "cephfs": _simple("monitors"),
    "quobyte": _simple("registry", "volume"),
    "downwardAPI": lambda s, p: (
        _file_mode(s.get("defaultMode"), f"{p}.defaultMode")
        + [e for i in as_list(s.get("items")) for e in _downward_file(as_dict(i), p)]
    ),
    "fc": None,
    "flexVolume": _simple("driver"),
    "configMap": lambda s, p: (
        _required(s, "name", p)
        + _file_mode(s.get("defaultMode"), f"{p}.defaultMode")
        + _items(s, p)
    ),
    "azureFile": _simple("secretName", "shareName"),
    "vsphereVolume": _simple("volumePath"),
    "photonPersistentDisk": _simple("pdID"),
    "portworxVolume": _simple("volumeID"),
    "azureDisk": lambda s, p: _required(s, "diskName", p) + _required(s, "diskURI", p),
    "storageos": _simple("volumeName"),
    "projected": _projected,
    "scaleIO": _simple("gateway", "system", "volumeName"),
    "csi": _csi,
    "ephemeral": None,
    "image": None,
}


def validate_volume_source(
    volume: dict[str, Any], path: str, volume_name: str, pod_name: str, *, is_pod: bool
) -> list[FieldError]:
    errs: list[FieldError] = []
    count = 0
    for key, check in _SOURCES.items():
        source = volume.get(key)
        if source is None:
            continue
        if count:
            # Upstream spells two of these paths its own way.
            shown = {"downwardAPI": "downwarAPI", "cephfs": "cephFS"}.get(key, key)
            errs.append(errors.field_forbidden(f"{path}.{shown}", MORE_THAN_ONE))
            continue
        count += 1
        source = as_dict(source)
        if key == "emptyDir":
            size = source.get("sizeLimit")
            if size is not None:
                q, bad = resources.parse_or_error(size, f"{path}.emptyDir.sizeLimit")
                errs.extend(bad)
                if q is not None and q.value < 0:
                    errs.append(
                        errors.field_forbidden(
                            f"{path}.emptyDir.sizeLimit",
                            "SizeLimit field must be a valid resource quantity",
                        )
                    )
        elif key == "ephemeral":
            errs.extend(_ephemeral(source, f"{path}.ephemeral", pod_name, volume_name))
        elif key == "image":
            if is_pod and not source.get("reference"):
                errs.append(errors.required(f"{path}.image.reference"))
            policy = source.get("pullPolicy")
            if policy not in (None, "", "Always", "IfNotPresent", "Never"):
                errs.append(
                    errors.not_supported(
                        f"{path}.image.pullPolicy", policy, ("Always", "IfNotPresent", "Never")
                    )
                )
        elif check is not None:
            # Upstream names a few paths after internal field names.
            sub = "persistentDisk" if key == "gcePersistentDisk" else key
            errs.extend(check(source, f"{path}.{sub}"))
    if count == 0:
        errs.append(errors.required(path, "must specify a volume type"))
    return errs


def validate_volumes(
    volumes: Any, path: str, *, pod_name: str = "", is_pod: bool = False
) -> tuple[dict[str, dict[str, Any]], list[FieldError]]:
    """Check a pod's volumes; return the valid ones by name (for mounts to refer to)."""
    errs: list[FieldError] = []
    valid: dict[str, dict[str, Any]] = {}
    created_claims = set()
    if pod_name:
        created_claims = {
            f"{pod_name}-{as_str(as_dict(v).get('name'))}"
            for v in as_list(volumes)
            if as_dict(v).get("ephemeral") is not None
        }
    for i, volume in enumerate(as_list(volumes)):
        volume = as_dict(volume)
        vol_path = f"{path}[{i}]"
        name = as_str(volume.get("name"))
        found = validate_volume_source(volume, vol_path, name, pod_name, is_pod=is_pod)
        if not name:
            found.append(errors.required(f"{vol_path}.name"))
        else:
            found.extend(
                errors.invalid_value(f"{vol_path}.name", name, m)
                for m in names.is_dns1123_label(name)
            )
        if name in valid:
            found.append(errors.duplicate(f"{vol_path}.name", name))
        if found:
            errs.extend(found)
        else:
            valid[name] = volume
        claim = as_dict(volume.get("persistentVolumeClaim")).get("claimName")
        if isinstance(claim, str) and claim in created_claims:
            errs.append(
                errors.invalid_value(
                    f"{vol_path}.persistentVolumeClaim.claimName",
                    claim,
                    "must not reference a PVC that gets created for an ephemeral volume",
                )
            )
    return valid, errs


# Re-exported for PersistentVolume sources, which share these checks.
host_path = _host_path
nfs = _nfs
