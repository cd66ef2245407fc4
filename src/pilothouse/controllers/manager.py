"""The controller manager: builds the controllers, shares informers, elects a leader.

Every controller gets a :class:`Context` with its client, the shared informer
factory (one watch per resource for all controllers), an event recorder and the
clock. With ``use_service_account_credentials`` each controller's client acts as
its own ServiceAccount (``SERVICE_ACCOUNTS``, upstream's names), so it holds only
its ``system:controller:<name>`` role; the informers use the manager's client. The
informers drop ``managedFields`` as upstream's do. Given a process-wide factory
(``informers``, the all-in-one server shares one with the scheduler), each term
takes a scope of it instead of a factory of its own. The
list of controllers is explicit. With
``leader_elect`` (several servers on one etcd), only the holder of the
``kube-controller-manager`` Lease runs them; a single SQLite server
skips the election.

:meth:`ControllerManager.run` is the manager's own loop (a child of the
supervisor it is given). Each term — all of it, without an election — runs the
informers, the event recorders and every controller as children of a nested
supervisor ``controllers``: a controller that fails is logged and restarted on
its own, and losing leadership stops the whole term at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pilothouse import supervisor as supervision
from pilothouse.api import resources
from pilothouse.client import events, informer, informerscope, leaderelection, rest
from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock
from pilothouse.controllers import base, credentials

log = logging.getLogger(__name__)

LEASE_NAME = "kube-controller-manager"  # upstream's name (RBAC grants it by name)


@dataclass
class Context:
    client: rest.Client
    informers: informer.InformerFactory
    supervisor: supervision.Supervisor
    clock: Clock = DEFAULT_CLOCK
    registry: resources.Registry = resources.DEFAULT
    # The cluster CA (PEM) that root-ca-cert-publisher puts in every namespace, and the
    # CA certificate and key files the CSR signer signs with (--cluster-signing-*-file).
    root_ca: bytes = b""
    signing_files: tuple[Path, Path] | None = None
    _recorders: dict[str, events.EventRecorder] = field(default_factory=dict)

    def resource(self, group: str, version: str, plural: str) -> resources.Resource:
        r = self.registry.by_path(group, version, plural)
        if r is None:
            raise KeyError(f"{group}/{version}/{plural}")
        return r

    def recorder(self, component: str) -> events.EventRecorder:
        rec = self._recorders.get(component)
        if rec is None:
            rec = self._recorders[component] = events.EventRecorder(
                self.client, component=component, clock=self.clock
            )
            rec.start(self.supervisor)
        return rec

    async def close(self) -> None:
        for rec in self._recorders.values():
            await rec.stop()


Factory = Callable[[Context], base.Controller]

# Controller -> the kube-system ServiceAccount it acts as (upstream's names; several
# controllers may share one, as nodeipam and nodelifecycle share node-controller).
SERVICE_ACCOUNTS: dict[str, str] = {
    "replicaset": "replicaset-controller",
    "replicationcontroller": "replication-controller",
    "deployment": "deployment-controller",
    "garbagecollector": "generic-garbage-collector",
    "namespace": "namespace-controller",
    "disruption": "disruption-controller",
    "podgc": "pod-garbage-collector",
    "nodeipam": "node-controller",
    "nodelifecycle": "node-controller",
    "serviceaccount": "service-account-controller",
    "root-ca-cert-publisher": "root-ca-cert-publisher",
    "clusterrole-aggregation": "clusterrole-aggregation-controller",
    "csrsigning": "certificate-controller",
    "csrapproving": "certificate-controller",
    "csrcleaner": "certificate-controller",
    "tokencleaner": "token-cleaner",
    "resourcequota": "resourcequota-controller",
    "endpointslice": "endpointslice-controller",
    "endpoints": "endpoint-controller",
    "endpointslicemirroring": "endpointslicemirroring-controller",
    "servicelb": "service-controller",
    "statefulset": "statefulset-controller",
    "daemonset": "daemon-set-controller",
    "job": "job-controller",
    "cronjob": "cronjob-controller",
    "ttl-after-finished": "ttl-after-finished-controller",
    "horizontalpodautoscaling": "horizontal-pod-autoscaler",
    "persistentvolume-binder": "persistent-volume-binder",
    "pvc-protection": "pvc-protection-controller",
    "pv-protection": "pv-protection-controller",
    "ephemeral-volume": "ephemeral-volume-controller",
    "validatingadmissionpolicy-status": "validatingadmissionpolicy-status-controller",
}


def default_controllers() -> dict[str, Factory]:
    # Imported here: each controller module pulls in only what it needs, and
    # the list stays the one place that names them all.
    from pilothouse.controllers import (
        bootstraptokens,
        certificates,
        clusterroleaggregation,
        cronjob,
        daemonset,
        deployment,
        disruption,
        endpoints,
        endpointslice,
        endpointslicemirroring,
        garbagecollector,
        job,
        namespace,
        nodeipam,
        nodelifecycle,
        podautoscaler,
        podgc,
        replicaset,
        replicationcontroller,
        resourcequota,
        serviceaccounts,
        servicelb,
        statefulset,
        ttlafterfinished,
        validatingadmissionpolicystatus,
    )
    from pilothouse.controllers.volume import (
        ephemeral,
        persistentvolume,
        pvcprotection,
        pvprotection,
    )

    return {
        "replicaset": replicaset.ReplicaSetController,
        "replicationcontroller": replicationcontroller.ReplicationManager,
        "deployment": deployment.DeploymentController,
        "job": job.JobController,
        "ttl-after-finished": ttlafterfinished.TTLAfterFinishedController,
        "cronjob": cronjob.CronJobController,
        "horizontalpodautoscaling": podautoscaler.HorizontalPodAutoscalerController,
        "garbagecollector": garbagecollector.GarbageCollector,
        "namespace": namespace.NamespaceController,
        "disruption": disruption.DisruptionController,
        "endpointslice": endpointslice.EndpointSliceController,
        "endpoints": endpoints.EndpointsController,
        "endpointslicemirroring": endpointslicemirroring.EndpointSliceMirroringController,
        "podgc": podgc.PodGCController,
        "nodeipam": nodeipam.NodeIPAMController,
        "nodelifecycle": nodelifecycle.NodeLifecycleController,
        "statefulset": statefulset.StatefulSetController,
        "daemonset": daemonset.DaemonSetController,
        "serviceaccount": serviceaccounts.ServiceAccountsController,
        "root-ca-cert-publisher": serviceaccounts.RootCACertPublisher,
        "clusterrole-aggregation": clusterroleaggregation.ClusterRoleAggregationController,
        "csrsigning": certificates.CSRSigningController,
        "csrapproving": certificates.CSRApprovingController,
        "csrcleaner": certificates.CSRCleanerController,
        "tokencleaner": bootstraptokens.TokenCleanerController,
        "servicelb": servicelb.ServiceLBController,
        "persistentvolume-binder": persistentvolume.PersistentVolumeController,
        "pvc-protection": pvcprotection.PVCProtectionController,
        "pv-protection": pvprotection.PVProtectionController,
        "ephemeral-volume": ephemeral.EphemeralVolumeController,
        "resourcequota": resourcequota.ResourceQuotaController,
        "validatingadmissionpolicy-status": (
            validatingadmissionpolicystatus.ValidatingAdmissionPolicyStatusController
        ),
    }


class ControllerManager:
    def _context(
        self,
        client: rest.Client,
        shared: informer.InformerFactory,
        term: supervision.Supervisor,
    ) -> Context:
        return Context(
            client=client,
            informers=shared,
            supervisor=term,
            clock=self.clock,
            root_ca=self.root_ca,
            signing_files=self.signing_files,
        )

    def __init__(
        self,
        client: rest.Client,
        *,
        supervisor: supervision.Supervisor | None = None,
        enabled: list[str] | None = None,
        leader_elect: bool = False,
        clock: Clock = DEFAULT_CLOCK,
        factories: dict[str, Factory] | None = None,
        use_service_account_credentials: bool = False,
        root_ca: bytes = b"",
        signing_files: tuple[Path, Path] | None = None,
        informers: informer.InformerFactory | None = None,
    ) -> None:
        self.client = client
        # A factory shared with other components of the process (started by its owner).
        self.informers = informers
        # The process's supervisor (a component's child of it); a private one when none
        # is given (a test or a benchmark that runs :meth:`run` as a task of its own).
        self.supervisor = supervisor or supervision.Supervisor("controller-manager")
        self.use_service_account_credentials = use_service_account_credentials
        self.root_ca = root_ca
        self.signing_files = signing_files
        self.factories = factories or default_controllers()
        unknown = set(enabled or []) - set(self.factories)
        if unknown:
            raise ValueError(
                f"unknown controllers: {', '.join(sorted(unknown))}; known: {', '.join(self.factories)}"
            )
        self.enabled = enabled or list(self.factories)
        self.leader_elect = leader_elect
        self.clock = clock
        self.controllers: dict[str, base.Controller] = {}
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Run until cancelled."""
        if self.leader_elect:
            elector = leaderelection.LeaderElector(
                self.client, name=LEASE_NAME, clock=self.clock, release_on_cancel=True
            )
            while True:
                await elector.run(self._run_controllers)
                log.warning("controller manager lost leadership; campaigning again")
        else:
            await self._run_controllers()

    async def _run_controllers(self) -> None:
        term = self.supervisor.nest("controllers")
        shared = (
            informerscope.InformerScope(self.informers)
            if self.informers is not None
            else informer.InformerFactory(self.client, transform=informer.trim_managed_fields)
        )
        ctx = self._context(self.client, shared, term)
        contexts = [ctx]
        creds = (
            credentials.ControllerCredentials(self.client, clock=self.clock)
            if self.use_service_account_credentials
            else None
        )
        try:
            self.controllers = {}
            for name in self.enabled:
                account = SERVICE_ACCOUNTS.get(name)
                if creds is not None and account is not None:
                    own = self._context(await creds.client_for(account), shared, term)
                    contexts.append(own)
                    self.controllers[name] = self.factories[name](own)
                else:
                    if creds is not None:
                        log.warning("controller %s has no ServiceAccount of its own", name)
                    self.controllers[name] = self.factories[name](ctx)
            shared.start(term)
            for name, c in self.controllers.items():
                term.start(name, c.run)
            if creds is not None:
                term.start("controller-credentials", creds.run)
            await shared.wait_synced()
            self.ready.set()
            log.info("controllers running: %s", ", ".join(self.controllers))
            await term.wait()  # until cancelled
        finally:
            self.ready.clear()
            try:
                await self.supervisor.unnest("controllers")  # controllers and informers stop first
            finally:
                if self.informers is not None:
                    await shared.stop()  # this term's handlers off the shared informers
            for context in contexts:
                await context.close()
            if creds is not None:
                await creds.close()
