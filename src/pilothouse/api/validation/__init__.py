"""Upstream's validation for every kind pilothouse serves, as pure functions.

:func:`validate_create` and :func:`validate_update` return the ``FieldError`` list
upstream's registry would produce for a create or an update of a kind (the
strategy's ``Validate``/``ValidateUpdate``). With ``include_generic`` (the default)
they also run what upstream's generic ``BeforeCreate``/``BeforeUpdate`` check for
every kind — object names are path segments, metadata syntax, what may not change on
update — in upstream's order: on create the generic checks run only when the
kind-specific ones passed. Callers that check those themselves pass
``include_generic=False``.

Objects must be defaulted first (:func:`pilothouse.api.defaults.apply_defaults`):
like upstream, validation expects defaulted fields to be set.

No I/O here: this package is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pilothouse.api import resources as resource_table
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import (
    admissionpolicy,
    admissionregistration,
    apiregistration,
    apps,
    autoscaling,
    batch,
    certificates,
    cluster,
    coremisc,
    meta,
    names,
    pods,
    quota,
    rbac,
    replicationcontroller,
    services,
    status,
    storage,
)

CreateValidator = Callable[[dict[str, Any]], list[FieldError]]
UpdateValidator = Callable[[dict[str, Any], dict[str, Any]], list[FieldError]]


def _events_v1_create(obj: dict[str, Any]) -> list[FieldError]:
    return coremisc.validate_event(coremisc.event_from_events_v1(obj), strict=True)


def _events_v1_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return coremisc.validate_event_update(
        coremisc.event_from_events_v1(new), coremisc.event_from_events_v1(old), strict=True
    )


def _with_meta_update(fn: CreateValidator) -> UpdateValidator:
    """An update validator for kinds whose update rules are their create rules."""

    def validate(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        return meta.validate_object_meta_update(new, old) + fn(new)

    return validate


def _pod_template(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    return errs + pods.validate_pod_template_spec(obj.get("template"), "template")


def _pdb_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return cluster.validate_pdb(new)


def _scale(obj: dict[str, Any]) -> list[FieldError]:
    """autoscaling/v1 Scale, written through a workload's ``scale`` subresource."""
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    spec = obj.get("spec")
    return errs + meta.validate_nonnegative(
        spec.get("replicas") if isinstance(spec, dict) else None, "spec.replicas"
    )


_CREATE: dict[tuple[str, str], CreateValidator] = {
    ("", "Pod"): pods.validate_pod_create,
    ("", "PodTemplate"): _pod_template,
    ("", "Service"): services.validate_service,
    ("", "Endpoints"): services.validate_endpoints,
    ("", "Namespace"): coremisc.validate_namespace,
    ("", "Node"): coremisc.validate_node,
    ("", "ConfigMap"): coremisc.validate_config_map,
    ("", "Secret"): coremisc.validate_secret,
    ("", "ServiceAccount"): coremisc.validate_service_account,
    ("", "Event"): lambda obj: coremisc.validate_event(obj, strict=False),
    ("", "Binding"): coremisc.validate_binding,
    ("", "PersistentVolume"): storage.validate_pv,
    ("", "PersistentVolumeClaim"): storage.validate_pvc,
    ("", "ReplicationController"): replicationcontroller.validate_replication_controller,
    ("", "ResourceQuota"): quota.validate_resource_quota,
    ("", "LimitRange"): quota.validate_limit_range,
    ("apps", "Deployment"): apps.validate_deployment,
    ("apps", "ReplicaSet"): apps.validate_replica_set,
    ("apps", "StatefulSet"): apps.validate_stateful_set,
    ("apps", "DaemonSet"): apps.validate_daemon_set,
    ("apps", "ControllerRevision"): apps.validate_controller_revision,
    ("batch", "Job"): batch.validate_job,
    ("batch", "CronJob"): batch.validate_cron_job,
    ("coordination.k8s.io", "Lease"): cluster.validate_lease,
    ("discovery.k8s.io", "EndpointSlice"): cluster.validate_endpoint_slice,
    ("storage.k8s.io", "StorageClass"): storage.validate_storage_class,
    ("events.k8s.io", "Event"): _events_v1_create,
    ("scheduling.k8s.io", "PriorityClass"): cluster.validate_priority_class,
    ("policy", "PodDisruptionBudget"): cluster.validate_pdb,
    ("autoscaling", "Scale"): _scale,
    ("autoscaling", "HorizontalPodAutoscaler"): autoscaling.validate_horizontal_pod_autoscaler,
    ("rbac.authorization.k8s.io", "Role"): rbac.validate_role,
    ("rbac.authorization.k8s.io", "ClusterRole"): rbac.validate_cluster_role,
    ("rbac.authorization.k8s.io", "RoleBinding"): rbac.validate_role_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): rbac.validate_cluster_role_binding,
    ("certificates.k8s.io", "CertificateSigningRequest"): certificates.validate_csr,
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): (
        admissionregistration.validate_mutating_webhook_configuration
    ),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): (
        admissionregistration.validate_validating_webhook_configuration
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): admissionpolicy.validate_policy,
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): (
        admissionpolicy.validate_binding
    ),
    ("apiregistration.k8s.io", "APIService"): apiregistration.validate_api_service,
}

_UPDATE: dict[tuple[str, str], UpdateValidator] = {
    ("", "Pod"): pods.validate_pod_update,
    ("", "PodTemplate"): _with_meta_update(_pod_template),
    ("", "Service"): services.validate_service_update,
    ("", "Endpoints"): _with_meta_update(services.validate_endpoints),
    ("", "Namespace"): coremisc.validate_namespace_update,
    ("", "Node"): coremisc.validate_node_update,
    ("", "ConfigMap"): coremisc.validate_config_map_update,
    ("", "Secret"): coremisc.validate_secret_update,
    ("", "ServiceAccount"): _with_meta_update(coremisc.validate_service_account),
    ("", "Event"): lambda new, old: coremisc.validate_event_update(new, old, strict=False),
    ("", "PersistentVolume"): storage.validate_pv_update,
    ("", "PersistentVolumeClaim"): storage.validate_pvc_update,
    ("", "ReplicationController"): replicationcontroller.validate_replication_controller_update,
    ("", "ResourceQuota"): quota.validate_resource_quota_update,
    ("", "LimitRange"): quota.validate_limit_range_update,
    ("apps", "Deployment"): apps.validate_deployment_update,
    ("apps", "ReplicaSet"): apps.validate_replica_set_update,
    ("apps", "StatefulSet"): apps.validate_stateful_set_update,
    ("apps", "DaemonSet"): apps.validate_daemon_set_update,
    ("apps", "ControllerRevision"): apps.validate_controller_revision_update,
    ("batch", "Job"): batch.validate_job_update,
    ("batch", "CronJob"): batch.validate_cron_job_update,
    ("coordination.k8s.io", "Lease"): _with_meta_update(cluster.validate_lease),
    ("discovery.k8s.io", "EndpointSlice"): cluster.validate_endpoint_slice_update,
    ("storage.k8s.io", "StorageClass"): storage.validate_storage_class_update,
    ("events.k8s.io", "Event"): _events_v1_update,
    ("scheduling.k8s.io", "PriorityClass"): cluster.validate_priority_class_update,
    ("policy", "PodDisruptionBudget"): _pdb_update,
    ("autoscaling", "Scale"): _with_meta_update(_scale),
    ("autoscaling", "HorizontalPodAutoscaler"): (
        autoscaling.validate_horizontal_pod_autoscaler_update
    ),
    ("rbac.authorization.k8s.io", "Role"): rbac.validate_role_update,
    ("rbac.authorization.k8s.io", "ClusterRole"): rbac.validate_cluster_role_update,
    ("rbac.authorization.k8s.io", "RoleBinding"): rbac.validate_role_binding_update,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): rbac.validate_cluster_role_binding_update,
    ("certificates.k8s.io", "CertificateSigningRequest"): certificates.validate_csr_update,
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): (
        admissionregistration.validate_mutating_webhook_configuration_update
    ),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): (
        admissionregistration.validate_validating_webhook_configuration_update
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): (
        admissionpolicy.validate_policy_update
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): (
        admissionpolicy.validate_binding_update
    ),
    ("apiregistration.k8s.io", "APIService"): apiregistration.validate_api_service_update,
}

# Kinds created through a subresource rather than the generic store.
_NO_GENERIC = frozenset({("", "Binding")})
# Kinds whose own create validator checks the whole ObjectMeta with a name rule
# stricter than a path segment's and with core's finalizer rule: when it passed,
# the generic checks cannot fail, so they are not run twice.
_META_VALIDATED = frozenset(
    {
        ("", "Pod"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "Service"),
        ("", "Namespace"),
        ("", "Node"),
        ("", "ReplicationController"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("coordination.k8s.io", "Lease"),
    }
)


def namespaced(group: str, version: str, kind: str) -> bool:
    resource = resource_table.DEFAULT.by_kind(group, version, kind)
    return resource.namespaced if resource is not None else True


def generic_create(obj: dict[str, Any], *, namespaced: bool) -> list[FieldError]:
    """What upstream's BeforeCreate checks for every kind after the kind's own rules."""
    return meta.validate_object_meta(
        obj, namespaced=namespaced, name_fn=names.name_is_path_segment, kube_finalizers=False
    )


def generic_update(
    new: dict[str, Any], old: dict[str, Any], *, namespaced: bool
) -> list[FieldError]:
    """What upstream's BeforeUpdate checks for every kind before the kind's own rules."""
    errs = generic_create(new, namespaced=namespaced)
    return errs + meta.validate_object_meta_update(new, old, kube_finalizers=False)


def validate_create(
    group: str, version: str, kind: str, obj: dict[str, Any], *, include_generic: bool = True
) -> list[FieldError]:
    """Upstream's validation of a new object of this kind."""
    fn = _CREATE.get((group, kind))
    errs = fn(obj) if fn is not None else []
    if (
        include_generic
        and not errs
        and (group, kind) not in _NO_GENERIC
        and (fn is None or (group, kind) not in _META_VALIDATED)
    ):
        errs = generic_create(obj, namespaced=namespaced(group, version, kind))
    return errs


def validate_update(
    group: str,
    version: str,
    kind: str,
    new: dict[str, Any],
    old: dict[str, Any],
    *,
    include_generic: bool = True,
) -> list[FieldError]:
    """Upstream's validation of an update of this kind, immutable fields included."""
    errs: list[FieldError] = []
    if include_generic and (group, kind) not in _NO_GENERIC:
        errs = generic_update(new, old, namespaced=namespaced(group, version, kind))
    fn = _UPDATE.get((group, kind))
    if fn is not None:
        errs += fn(new, old)
    return errs


def validate_status_update(
    group: str,
    version: str,
    kind: str,
    new: dict[str, Any],
    old: dict[str, Any],
    *,
    include_generic: bool = True,
) -> list[FieldError]:
    """Upstream's validation of a write to the ``status`` subresource of this kind."""
    errs: list[FieldError] = []
    if include_generic:
        errs = generic_update(new, old, namespaced=namespaced(group, version, kind))
    return errs + status.validate_status_update(group, kind, new, old)
