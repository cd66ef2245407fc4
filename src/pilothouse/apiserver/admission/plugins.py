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
    tolerations,
)
from pilothouse.apiserver.admission.chain import Deps, Factory
from pilothouse.apiserver.admission.interface import CREATE, FunctionPlugin, Plugin


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
        "CertificateApproval": lambda deps: certificates.CertificateApproval(deps.authorizer),
        "CertificateSigning": lambda deps: certificates.CertificateSigning(deps.authorizer),
        "CertificateSubjectRestriction": lambda deps: certificates.CertificateSubjectRestriction(
            deps.authorizer
        ),
        "DenyServiceExternalIPs": simple.DenyServiceExternalIPs,
        "ResourceQuota": resourcequota.ResourceQuota,
        "AlwaysDeny": simple.AlwaysDeny,
    }
