"""PersistentVolumes, PersistentVolumeClaims and StorageClasses."""

from __future__ import annotations

import posixpath
from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import meta, names, placement, resources, volumes
from pilothouse.api.validation.fields import as_dict, as_list, as_str, semantic_equal

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
VOLUME_MODES = ("Block", "Filesystem")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
_BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
# PersistentVolume sources in upstream's order (local replaces the pod-only ones).
_PV_SOURCES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
)


def validate_template_object_meta(metadata: Any, path: str) -> list[FieldError]:
    """Embedded template metadata: only labels and annotations may be set."""
    metadata = as_dict(metadata)
    errs = meta.validate_annotations(metadata.get("annotations"), f"{path}.annotations")
    errs += meta.validate_labels(metadata.get("labels"), f"{path}.labels")
    for key, value in metadata.items():
        if key not in ("labels", "annotations") and value not in (None, "", [], {}, 0):
            errs.append(errors.field_forbidden(f"{path}.{key}", "cannot be set"))
    return errs


def _access_modes(modes: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    once_pod = other = False
    for mode in modes:
        if mode not in ACCESS_MODES:
            errs.append(errors.not_supported(path, mode, ACCESS_MODES))
        elif mode == "ReadWriteOncePod":
            once_pod = True
        else:
            other = True
    if once_pod and other:
        errs.append(
            errors.field_forbidden(path, "may not use ReadWriteOncePod with other access modes")
        )
    return errs


def _data_source(source: dict[str, Any], path: str, *, ref: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    if not source.get("name"):
        errs.append(errors.required(f"{path}.name"))
    kind = as_str(source.get("kind"))
    if not kind:
        errs.append(errors.required(f"{path}.kind"))
    group = as_str(source.get("apiGroup"))
    if not group and kind != "PersistentVolumeClaim":
        errs.append(
            errors.invalid_value(
                path, kind, "must be 'PersistentVolumeClaim' when referencing the default apiGroup"
            )
        )
    if group:
        errs.extend(
            errors.invalid_value(f"{path}.apiGroup", group, m)
            for m in names.is_dns1123_subdomain(group)
        )
    namespace = as_str(source.get("namespace")) if ref else ""
    if namespace:
        errs.extend(
            errors.invalid_value(f"{path}.namespace", namespace, m)
            for m in names.name_is_dns_label(namespace, False)
        )
    return errs


def validate_pvc_spec(spec: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    modes = as_list(spec.get("accessModes"))
    if not modes:
        errs.append(errors.required(f"{path}.accessModes", "at least 1 access mode is required"))
    if spec.get("selector") is not None:
        errs.extend(meta.validate_label_selector(spec["selector"], f"{path}.selector"))
    errs.extend(_access_modes(modes, f"{path}.accessModes"))
    storage_path = f"{path}.resources[storage]"
    requests = as_dict(as_dict(spec.get("resources")).get("requests"))
    if "storage" not in requests:
        errs.append(errors.required(storage_path))
    else:
        q, bad = resources.parse_or_error(requests["storage"], storage_path)
        errs.extend(bad)
        if q is not None:
            positive = resources.validate_positive_quantity(q, storage_path)
            errs.extend(positive or resources.validate_quantity_value("storage", q, storage_path))
    class_name = spec.get("storageClassName")
    if class_name:
        errs.extend(
            errors.invalid_value(f"{path}.storageClassName", class_name, m)
            for m in names.name_is_dns_subdomain(as_str(class_name), False)
        )
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errs.append(errors.not_supported(f"{path}.volumeMode", mode, VOLUME_MODES))
    source, source_ref = spec.get("dataSource"), spec.get("dataSourceRef")
    if isinstance(source, dict):
        errs.extend(_data_source(source, f"{path}.dataSource", ref=False))
    if isinstance(source_ref, dict):
        errs.extend(_data_source(source_ref, f"{path}.dataSourceRef", ref=True))
        if as_str(source_ref.get("namespace")):
            if isinstance(source, dict):
                errs.append(
                    errors.invalid_value(
                        path,
                        f"{path}.dataSource",
                        "may not be specified when dataSourceRef.namespace is specified",
                    )
                )
        elif isinstance(source, dict) and any(
            source.get(k) != source_ref.get(k) for k in ("apiGroup", "kind", "name")
        ):
            errs.append(
                errors.invalid_value(path, f"{path}.dataSource", "must match dataSourceRef")
            )
    return errs


def validate_pvc(pvc: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(pvc, namespaced=True, name_fn=names.name_is_dns_subdomain)
    return errs + validate_pvc_spec(as_dict(pvc.get("spec")), "spec")


def validate_pvc_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old) + validate_pvc(new)
    spec, old_spec = dict(as_dict(new.get("spec"))), dict(as_dict(old.get("spec")))
    if not old_spec.get("volumeName"):
        # The binder may set volumeName once.
        old_spec["volumeName"] = spec.get("volumeName")
    new_ann = as_dict(as_dict(new.get("metadata")).get("annotations"))
    old_ann = as_dict(as_dict(old.get("metadata")).get("annotations"))
    if (
        _BETA_CLASS_ANNOTATION in old_ann
        and old_spec.get("storageClassName") is None
        and spec.get("storageClassName") == old_ann[_BETA_CLASS_ANNOTATION]
        and new_ann.get(_BETA_CLASS_ANNOTATION, old_ann[_BETA_CLASS_ANNOTATION])
        == old_ann[_BETA_CLASS_ANNOTATION]
    ):
        spec["storageClassName"] = None
    else:
        if new_ann.get(_BETA_CLASS_ANNOTATION, "") != old_ann.get(_BETA_CLASS_ANNOTATION, ""):
            errs.append(
                errors.invalid_value(
                    f"metadata.annotations.{_BETA_CLASS_ANNOTATION}",
                    new_ann.get(_BETA_CLASS_ANNOTATION, ""),
                    meta.FIELD_IMMUTABLE,
                )
            )
        if (
            spec.get("storageClassName") is not None
            and old_spec.get("storageClassName") is None
            and (
                _BETA_CLASS_ANNOTATION not in old_ann
                or spec["storageClassName"] == old_ann[_BETA_CLASS_ANNOTATION]
            )
        ):
            spec["storageClassName"] = None
    bound = as_dict(new.get("status")).get("phase") == "Bound"
    if bound and isinstance(as_dict(spec.get("resources")).get("requests"), dict):
        resources_copy = dict(as_dict(spec["resources"]))
        requests = dict(resources_copy["requests"])
        requests["storage"] = as_dict(as_dict(old_spec.get("resources")).get("requests")).get(
            "storage"
        )
        resources_copy["requests"] = requests
        spec["resources"] = resources_copy
    if bound and spec.get("volumeAttributesClassName") is not None:
        spec["volumeAttributesClassName"] = old_spec.get("volumeAttributesClassName")
    if not semantic_equal(spec, old_spec):
        errs.append(
            errors.field_forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            )
        )
    new_size = resources.parse_or_error(
        as_dict(as_dict(as_dict(new.get("spec")).get("resources")).get("requests")).get(
            "storage", 0
        ),
        "",
    )[0]
    old_size = resources.parse_or_error(
        as_dict(as_dict(as_dict(old.get("spec")).get("resources")).get("requests")).get(
            "storage", 0
        ),
        "",
    )[0]
    if new_size is not None and old_size is not None and new_size.value < old_size.value:
        errs.append(
            errors.field_forbidden(
                "spec.resources.requests.storage", "field can not be less than previous value"
            )
        )
    errs.extend(
        meta.validate_immutable(
            as_dict(new.get("spec")).get("volumeMode"),
            as_dict(old.get("spec")).get("volumeMode"),
            "volumeMode",
        )
    )
    return errs


def _pv_source(spec: dict[str, Any], name: str) -> tuple[int, list[FieldError], bool]:
    errs: list[FieldError] = []
    count = 0
    node_affinity = spec.get("nodeAffinity")
    affinity_set = isinstance(node_affinity, dict)
    for key in _PV_SOURCES:
        source = spec.get(key)
        if source is None:
            continue
        if count and key != "flexVolume":
            shown = "cephFS" if key == "cephfs" else key
            errs.append(errors.field_forbidden(f"spec.{shown}", volumes.MORE_THAN_ONE))
            continue
        count += 1
        source = as_dict(source)
        path = f"spec.{key}"
        if key == "hostPath":
            errs.extend(volumes.host_path(source, path))
        elif key == "nfs":
            errs.extend(volumes.nfs(source, path))
        elif key == "local":
            target = as_str(source.get("path"))
            if not target:
                errs.append(errors.required(f"{path}.path"))
            else:
                errs.extend(volumes.path_no_backsteps(target, f"{path}.path"))
            if not affinity_set:
                errs.append(
                    errors.required("spec.nodeAffinity", "Local volume requires node affinity")
                )
        elif key == "csi":
            errs.extend(volumes.csi_driver_name(as_str(source.get("driver")), f"{path}.driver"))
            if not source.get("volumeHandle"):
                errs.append(errors.required(f"{path}.volumeHandle"))
        elif key == "iscsi":
            for required in ("targetPortal", "iqn"):
                if not source.get(required):
                    errs.append(errors.required(f"{path}.{required}"))
    return count, errs, affinity_set


def validate_pv(pv: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(pv, namespaced=False, name_fn=names.name_is_dns_subdomain)
    spec = as_dict(pv.get("spec"))
    name = as_str(as_dict(pv.get("metadata")).get("name"))
    modes = as_list(spec.get("accessModes"))
    if not modes:
        errs.append(errors.required("spec.accessModes"))
    errs.extend(_access_modes(modes, "spec.accessModes"))
    capacity = as_dict(spec.get("capacity"))
    if not capacity:
        errs.append(errors.required("spec.capacity"))
    if "storage" not in capacity or len(capacity) > 1:
        errs.append(
            errors.not_supported(
                "spec.capacity", errors.go_string_map(capacity, "core.ResourceList"), ("storage",)
            )
        )
    for resource_name, value in capacity.items():
        q, bad = resources.parse_or_error(value, f"spec.capacity[{resource_name}]")
        errs.extend(bad)
        if q is not None:
            if q.int_value() < 0:
                errs.append(
                    errors.invalid_value(
                        f"spec.capacity[{resource_name}]",
                        q.int_value(),
                        "must be a valid resource quantity",
                    )
                )
            errs.extend(resources.validate_positive_quantity(q, f"spec.capacity[{resource_name}]"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy and policy not in RECLAIM_POLICIES:
        errs.append(
            errors.not_supported("spec.persistentVolumeReclaimPolicy", policy, RECLAIM_POLICIES)
        )
    node_affinity = spec.get("nodeAffinity")
    if isinstance(node_affinity, dict):
        required = node_affinity.get("required")
        if isinstance(required, dict):
            errs.extend(placement.node_selector(required, "spec.nodeAffinity.required"))
        else:
            errs.append(
                errors.required(
                    "spec.nodeAffinity.required", "must specify required node constraints"
                )
            )
    count, source_errs, _ = _pv_source(spec, name)
    errs.extend(source_errs)
    if count == 0:
        errs.append(errors.required("spec", "must specify a volume type"))
    host_path = as_dict(spec.get("hostPath"))
    if (
        host_path
        and posixpath.normpath(as_str(host_path.get("path")) or ".") == "/"
        and policy == "Recycle"
    ):
        errs.append(
            errors.field_forbidden(
                "spec.persistentVolumeReclaimPolicy",
                "may not be 'recycle' for a hostPath mount of '/'",
            )
        )
    class_name = as_str(spec.get("storageClassName"))
    if class_name:
        errs.extend(
            errors.invalid_value("spec.storageClassName", class_name, m)
            for m in names.name_is_dns_subdomain(class_name, False)
        )
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errs.append(errors.not_supported("spec.volumeMode", mode, VOLUME_MODES))
    return errs


def validate_pv_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = validate_pv(new) + meta.validate_object_meta_update(new, old)
    spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    source = {k: spec.get(k) for k in _PV_SOURCES}
    old_source = {k: old_spec.get(k) for k in _PV_SOURCES}
    old_csi, new_csi = as_dict(old_source.get("csi")), as_dict(source.get("csi"))
    if old_csi and new_csi and old_csi.get("controllerExpandSecretRef") is None:
        source["csi"] = {k: v for k, v in new_csi.items() if k != "controllerExpandSecretRef"}
    if not semantic_equal(source, old_source):
        errs.append(
            errors.field_forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            )
        )
    errs.extend(
        meta.validate_immutable(spec.get("volumeMode"), old_spec.get("volumeMode"), "volumeMode")
    )
    if old_spec.get("nodeAffinity") is not None and not semantic_equal(
        spec.get("nodeAffinity"), old_spec.get("nodeAffinity")
    ):
        errs.append(
            errors.invalid_value(
                "nodeAffinity",
                errors.GoValue(repr(spec.get("nodeAffinity"))),
                meta.FIELD_IMMUTABLE + ", except for updating from beta label to GA",
            )
        )
    return errs


def validate_storage_class(sc: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(sc, namespaced=False, name_fn=names.name_is_dns_subdomain)
    provisioner = as_str(sc.get("provisioner"))
    if not provisioner:
        errs.append(errors.required("provisioner"))
    else:
        errs.extend(
            errors.invalid_value("provisioner", provisioner.lower(), m)
            for m in names.is_qualified_name(provisioner.lower())
        )
    parameters = as_dict(sc.get("parameters"))
    if len(parameters) > 512:
        errs.append(errors.too_long("parameters", 512))
    else:
        if any(not k for k in parameters):
            errs.append(errors.invalid_value("parameters", "", "field can not be empty."))
        if sum(len(k) + len(as_str(v)) for k, v in parameters.items()) > 256 * 1024:
            errs.append(errors.too_long("parameters", 256 * 1024))
    policy = sc.get("reclaimPolicy")
    if policy and policy not in ("Delete", "Retain"):
        errs.append(errors.not_supported("reclaimPolicy", policy, ("Delete", "Retain")))
    mode = sc.get("volumeBindingMode")
    if mode is None:
        errs.append(errors.required("volumeBindingMode"))
    elif mode not in BINDING_MODES:
        errs.append(errors.not_supported("volumeBindingMode", mode, BINDING_MODES))
    seen: list[dict[str, frozenset[Any]]] = []
    for i, term in enumerate(as_list(sc.get("allowedTopologies"))):
        tpath = f"allowedTopologies[{i}]"
        expressions: dict[str, frozenset[Any]] = {}
        for j, req in enumerate(as_list(as_dict(term).get("matchLabelExpressions"))):
            req = as_dict(req)
            rpath = f"{tpath}.matchLabelExpressions[{j}]"
            values = as_list(req.get("values"))
            if not values:
                errs.append(errors.required(f"{rpath}.values"))
            for k, value in enumerate(values):
                if value in values[:k]:
                    errs.append(errors.duplicate(f"{rpath}.values[{k}]", value))
            key = as_str(req.get("key"))
            errs.extend(meta.validate_label_name(key, f"{rpath}.key"))
            if key in expressions:
                errs.append(errors.duplicate(f"{rpath}.key", key))
            expressions[key] = frozenset(map(str, values))
        if expressions in seen:
            errs.append(errors.duplicate(f"{tpath}.matchLabelExpressions", ""))
        seen.append(expressions)
    return errs


def validate_storage_class_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    if not semantic_equal(new.get("parameters"), old.get("parameters")):
        errs.append(errors.field_forbidden("parameters", "updates to parameters are forbidden."))
    if new.get("provisioner") != old.get("provisioner"):
        errs.append(errors.field_forbidden("provisioner", "updates to provisioner are forbidden."))
    if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
        errs.append(
            errors.field_forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden.")
        )
    errs.extend(
        meta.validate_immutable(
            new.get("volumeBindingMode"), old.get("volumeBindingMode"), "volumeBindingMode"
        )
    )
    return errs + validate_storage_class(new)
