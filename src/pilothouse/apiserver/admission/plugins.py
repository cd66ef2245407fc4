"""Every admission plugin this server can run, by upstream name: the one table
``--enable-admission-plugins`` and ``--disable-admission-plugins`` choose from
(the order they run in is :data:`~pilothouse.apiserver.admission.chain.ORDER`)."""

from __future__ import annotations

from pilothouse.apiserver.admission import (
    certificates,
    limitranger,
    namespace_lifecycle,
    noderestriction,
    podsecurity,
    priority,
    resourcequota,
    serviceaccount,
    simple,
    storage,
    tolerations,
)
from pilothouse.apiserver.admission.chain import Deps, Factory
from pilothouse.apiserver.admission.interface import CREATE, UPDATE, FunctionPlugin, Plugin
from pilothouse.apiserver.admission.policy import plugin as policy_plugin
from pilothouse.apiserver.admission.webhook import plugins as webhook_plugins


def _service_account(deps: Deps) -> Plugin:
    return FunctionPlugin(
        "ServiceAccount",
        serviceaccount.service_account_admission,
        mutating=True,
        operations=frozenset({CREATE}),
        only=frozenset({("", "pods")}),
    )


def _node_restriction(deps: Deps) -> Plugin:
    # Upstream's NodeRestriction refuses in its Admit (mutating) phase.
    return FunctionPlugin(
        "NodeRestriction",
        noderestriction.node_restriction,
        mutating=True,
        only=frozenset({("", "nodes"), ("", "pods")}),
    )


_CLAIMS = frozenset({("", "persistentvolumeclaims")})
_VOLUMES_AND_CLAIMS = _CLAIMS | {("", "persistentvolumes")}


def _default_storage_class(deps: Deps) -> Plugin:
    return FunctionPlugin(
        "DefaultStorageClass",
        storage.default_storage_class,
        mutating=True,
        operations=frozenset({CREATE}),
        only=_CLAIMS,
    )


def _storage_object_in_use_protection(deps: Deps) -> Plugin:
    return FunctionPlugin(
        "StorageObjectInUseProtection",
        storage.object_in_use_protection,
        mutating=True,
        operations=frozenset({CREATE}),
        only=_VOLUMES_AND_CLAIMS,
    )


def _claim_resize(deps: Deps) -> Plugin:
    # Upstream's PersistentVolumeClaimResize is a validating plugin.
    return FunctionPlugin(
        "PersistentVolumeClaimResize",
        storage.claim_resize,
        mutating=False,
        operations=frozenset({UPDATE}),
        only=_CLAIMS,
    )


def _webhooks(deps: Deps) -> webhook_plugins.Webhooks:
    return webhook_plugins.Webhooks(
        cache=deps.cache, registry=deps.registry, authorizer=deps.authorizer
    )


def factories() -> dict[str, Factory]:
    return {
        "AlwaysAdmit": simple.AlwaysAdmit,
        "NamespaceAutoProvision": namespace_lifecycle.NamespaceAutoProvision,
        "NamespaceLifecycle": namespace_lifecycle.NamespaceLifecycle,
        "NamespaceExists": namespace_lifecycle.NamespaceExists,
        "LimitPodHardAntiAffinityTopology": simple.LimitPodHardAntiAffinityTopology,
        "LimitRanger": limitranger.LimitRanger,
        "ServiceAccount": _service_account,
        "NodeRestriction": _node_restriction,
        "AlwaysPullImages": simple.AlwaysPullImages,
        "PodSecurity": podsecurity.PodSecurity,
        "Priority": priority.Priority,
        "DefaultTolerationSeconds": tolerations.DefaultTolerationSeconds,
        "DefaultStorageClass": _default_storage_class,
        "StorageObjectInUseProtection": _storage_object_in_use_protection,
        "PersistentVolumeClaimResize": _claim_resize,
        "CertificateApproval": lambda deps: certificates.CertificateApproval(deps.authorizer),
        "CertificateSigning": lambda deps: certificates.CertificateSigning(deps.authorizer),
        "CertificateSubjectRestriction": lambda deps: certificates.CertificateSubjectRestriction(
            deps.authorizer
        ),
        "DenyServiceExternalIPs": simple.DenyServiceExternalIPs,
        "MutatingAdmissionWebhook": lambda deps: webhook_plugins.MutatingWebhookPlugin(
            _webhooks(deps)
        ),
        "ValidatingAdmissionPolicy": lambda deps: policy_plugin.ValidatingAdmissionPolicy(
            cache=deps.cache, registry=deps.registry, authorizer=deps.authorizer
        ),
        "ValidatingAdmissionWebhook": lambda deps: webhook_plugins.ValidatingWebhookPlugin(
            _webhooks(deps)
        ),
        "ResourceQuota": resourcequota.ResourceQuota,
        "AlwaysDeny": simple.AlwaysDeny,
    }
