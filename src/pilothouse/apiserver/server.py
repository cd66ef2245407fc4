"""The API server's life cycle: certificates, store, watch cache, HTTPS.

Start-up order is explicit: PKI, then the store, then the watch cache (which
loads every object), then the registries and the system objects, and only then
the listening socket — so the first request already sees a complete cache.
``start`` returns when the server is ready.

What runs as supervised children (of the supervisor given, the process's):
the store's writer watchdog and the two listeners (HTTPS and the private Unix
socket) are FATAL — without them the server cannot do its job; the store's
compactor, the watch cache's feed, the reconciler of the ``kubernetes`` Service,
flow control's event-loop lag monitor, and (in supervisors nested under this one)
the CRD reconciler and the aggregator's APIService followers are restarted when they
fail, and ``/readyz`` fails while one is down.

Shutdown comes in two steps, as upstream's graceful termination: ``begin_shutdown``
makes ``/readyz`` fail, closes the HTTPS listener (no new connections), ends
every watch, closes the connections to the node agents (ending ``logs -f``,
exec, attach and port-forward sessions) and cancels what long-running handler
remains; the Unix socket and the in-process transport (:mod:`inprocess`, what the
components in this process send their requests to) stay open so those components
can still stop cleanly. ``stop`` then closes both, lets in-flight requests finish
for at most ``grace`` seconds, and closes the cache and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from pilothouse import supervisor as supervision
from pilothouse.api import errors, resources
from pilothouse.apiserver import (
    adaptivelimit,
    bootstrap,
    eagertasks,
    flowcontrol,
    health,
    inprocess,
    join,
    kubernetes_service,
    masterleases,
    requestcontext,
    startup,
    systemobjects,
    watchcache,
)
from pilothouse.apiserver import app as app_module
from pilothouse.apiserver import identity as identity_module
from pilothouse.apiserver import metrics as api_metrics
from pilothouse.apiserver.admission import chain as admission_chain
from pilothouse.apiserver.admission import config as admission_config
from pilothouse.apiserver.admission import plugins as admission_plugins
from pilothouse.apiserver.admission import podsecurity, resourcequota
from pilothouse.apiserver.aggregator import aggregator as aggregator_module
from pilothouse.apiserver.audit import auditor as audit_auditor
from pilothouse.apiserver.audit import backend as audit_backend
from pilothouse.apiserver.audit import policy as audit_policy
from pilothouse.apiserver.auth import certs, kubeconfig
from pilothouse.apiserver.crd import serving as crd_serving
from pilothouse.apiserver.encryption import config as encryption_config
from pilothouse.apiserver.encryption import handler as encryption_handler
from pilothouse.apiserver.encryption import manager as encryption_manager
from pilothouse.apiserver.handlers import (
    discovery,
    nodeproxy,
    openapi,
    resource_metrics,
    rest,
    streaming,
    subresources,
)
from pilothouse.apiserver.handlers import history as history_handler
from pilothouse.apiserver.registry import strategies
from pilothouse.apiserver.registry.store import Admission, ResourceStore
from pilothouse.apiserver.registry.strategies import service as service_strategy
from pilothouse.apiserver.serverconfig import ServerConfig, StartupError
from pilothouse.dashboard import pages as dashboard_pages
from pilothouse.storage import factory, transform
from pilothouse.storage import interface as storage
from pilothouse.storage import value as values

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = systemobjects.SYSTEM_NAMESPACES
kube_dns_service = systemobjects.kube_dns_service
KUBERNETES_SERVICE_IP = kubernetes_service.SERVICE_IP


def _local_address() -> str:
    """The address other machines would reach us on (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        address: str = s.getsockname()[0]
        return address
    return "127.0.0.1"


class APIServer:
    """One API server process's worth of state."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        registry: resources.Registry = resources.DEFAULT,
        supervisor: supervision.Supervisor | None = None,
    ) -> None:
        self.config = config
        # A registry of our own: the resources of CRDs join it while we run.
        self.registry = registry.copy()
        registry = self.registry
        self.supervisor = supervisor or supervision.Supervisor("apiserver")
        self.store: storage.Store | None = None
        self.cache: watchcache.WatchCache | None = None
        self.stores: dict[resources.Resource, ResourceStore] = {}
        self.pki: certs.PKI | None = None
        self._runner: web.AppRunner | None = None
        self._task_factory: Callable[..., Any] | None = None
        self.node_proxy: nodeproxy.NodeProxy | None = None
        self.token = ""
        self.join_service: join.JoinService | None = None
        self.identity: identity_module.Identity | None = None
        self.metrics = api_metrics.APIMetrics(registry)
        self.encryption = encryption_manager.Encryption(
            data_dir=config.data_dir,
            registry=registry,
            user_file=config.encryption_provider_config,
        )
        self.transforming: transform.TransformingStore | None = None
        self.flow_control = flowcontrol.FlowControl(
            max_requests_inflight=config.max_requests_inflight,
            max_mutating_requests_inflight=config.max_mutating_requests_inflight,
            adaptive=(
                adaptivelimit.AdaptiveLimit(target=config.flow_control_target_lag)
                if config.flow_control_target_lag > 0
                else None
            ),
        )
        self.metrics.registry.register(flowcontrol.Collector(self.flow_control))
        self.app: app_module.APIApp | None = None
        # Checks the process adds for its components, before "shutdown".
        self.component_checks: list[health.Check] = []
        self.admission: admission_chain.Chain | None = None
        self.auditor: audit_auditor.Auditor | None = None
        self.custom_resources: crd_serving.CustomResources | None = None
        self.discovery: discovery.Discovery | None = None
        self.openapi: openapi.OpenAPIV3 | None = None
        self.aggregator: aggregator_module.Aggregator | None = None
        self._ready = False
        self.shutting_down = False
        self.port = config.https_port
        self.kubernetes_service: kubernetes_service.KubernetesServiceReconciler | None = None
        self.advertise_address = config.advertise_address or _local_address()
        self._passphrase = ""
        self._backend: storage.Store | None = None
        self._listen_sock: socket.socket | None = None
        self._starting: startup.StartingListener | None = None
        # What the components in this process send their requests to (made by start).
        self.in_process: inprocess.InProcess | None = None

    # --- addresses ---------------------------------------------------------------
    @property
    def url(self) -> str:
        host = self.config.bind_address
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"https://{host}:{self.port}"

    @property
    def socket_path(self) -> Path:
        return self.config.data_dir / "run" / "apiserver.sock"

    @property
    def kubeconfig_path(self) -> Path:
        return self.config.data_dir / "kubeconfig.yaml"

    def is_ready(self) -> bool:
        return self._ready and not self.shutting_down

    def health_checks(self) -> list[health.Check]:
        """Upstream's checks (ping, log, etcd, etcd-readiness, informer-sync), ours for
        the server's loops and the process's components, and shutdown last."""
        own = health.component(self.supervisor)
        required = health.component(self.supervisor, fatal_only=True)
        return [
            health.Check("ping", health.ping),
            health.Check("log", health.ping),
            health.Check("etcd", self._store_check),
            health.Check("etcd-readiness", self._store_check, livez=False),
            health.Check("informer-sync", self._cache_check, livez=False),
            health.Check("apiserver", own, livez=False),
            health.Check("apiserver", required, readyz=False),
            *self.component_checks,
            health.Check("shutdown", self._shutdown_check, livez=False),
        ]

    def _store_check(self) -> str:
        if self.store is None:
            return "the store has not started"
        if not self.datastore_ok():
            return "the datastore is not reachable"
        for path, st in self.supervisor.walk():
            if path.startswith(("store-", "etcd-store/")) and not st.healthy:
                return f"the store's {path} is {st.state} ({st.last_error})"
        return ""

    def _cache_check(self) -> str:
        if not self._ready:
            return "not ready yet"
        for path, st in self.supervisor.walk():
            if path == "watch-cache" and not st.healthy:
                return f"the watch cache's feed is {st.state} ({st.last_error})"
        return ""

    def _shutdown_check(self) -> str:
        return "process is shutting down" if self.shutting_down else ""

    def datastore_ok(self) -> bool:
        """The backend's own health where it has one (etcd: its watch is up)."""
        healthy = getattr(self._backend, "healthy", None)
        return bool(healthy()) if healthy is not None else True

    # --- life cycle --------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        plugin_config = self._admission_config()
        self.auditor = self._audit_log()
        backend = factory.open_store(
            cfg.datastore_endpoint or "sqlite://",
            data_dir=cfg.data_dir,
            compact_interval=cfg.compact_interval,
            history_retention=cfg.history_retention,
            tls=factory.TLSFiles(
                cafile=cfg.datastore_cafile,
                certfile=cfg.datastore_certfile,
                keyfile=cfg.datastore_keyfile,
            ),
            prefix=cfg.datastore_prefix,
            supervisor=self.supervisor,
        )
        # The store first: on a shared datastore the cluster's CA and keys come from it.
        self._backend = backend
        await self._start_backend(backend)
        try:
            new_cluster = not (await backend.list("/registry/", limit=1)).items
            self.pki, self._passphrase = await startup.shared_files(
                backend,
                config=cfg,
                advertise_address=self.advertise_address,
                encryption=self.encryption,
                new_cluster=new_cluster,
            )
            transformers = self.encryption.load()
        except encryption_config.ConfigError as exc:
            await backend.close()
            raise StartupError(f"cannot use the encryption configuration: {exc}") from None
        except (bootstrap.BootstrapError, StartupError) as exc:
            await backend.close()
            raise StartupError(str(exc)) from None
        # Encryption sits between the store and everything that reads it, the
        # watch cache included: nothing above this line sees ciphertext.
        self.transforming = transform.TransformingStore(backend, transformers=transformers)
        shared = None
        if factory.is_shared(cfg.datastore_endpoint):
            shared = startup.SharedEncryption(
                backend, passphrase=self._passphrase, encryption=self.encryption
            )
            self.encryption.publish = shared.publish
            self.transforming.on_unreadable = shared.refresh
        self.store = self.metrics.instrument(self.transforming)
        await self.encryption.attach(self.transforming, new_cluster=new_cluster)
        prefixes = sorted(
            {r.storage_prefix for r in self.registry.resources if r.stored and "list" in r.verbs}
        )
        self.cache = watchcache.WatchCache(self.store, prefixes, supervisor=self.supervisor)
        try:
            await self.cache.start()
        except values.TransformError as exc:
            await self.store.close()
            raise StartupError(self.encryption.explain(exc)) from None
        except ValueError as exc:
            # AES-CBC has no integrity check: a wrong key can decrypt to garbage.
            await self.store.close()
            raise StartupError(
                f"stored data cannot be decoded ({exc}); if it is an encrypted Secret,"
                f" the key in {self.encryption.path} is not the one that encrypted it"
            ) from None
        self.identity = identity_module.Identity(
            pki_dir=self.pki.directory,
            cache=self.cache,
            token_auth_file=cfg.token_auth_file,
            anonymous=cfg.anonymous_auth,
        )
        self.admission = self._admission_chain(plugin_config)
        # Checks that are not admission plugins upstream: the Service registry's
        # address allocation and RBAC's escalation checks (its registries make them).
        before_write: list[Admission] = [
            service_strategy.ServiceAllocator(),
            *self.identity.registry_checks(),
        ]
        for r in self.registry.resources:
            if "list" not in r.verbs or not r.stored:
                continue
            self.stores[r] = ResourceStore(
                resource=r,
                strategy=strategies.for_resource(r, self.registry),
                store=self.store,
                cache=self.cache,
                admission=self.admission,
                before_write=before_write,
            )
        await self.admission.start()
        await self._bootstrap()
        self.discovery = discovery.Discovery(
            self.registry, server_address=f"{self.advertise_address}:{self.config.https_port}"
        )
        self.custom_resources = crd_serving.CustomResources(
            registry=self.registry,
            stores=self.stores,
            store=self.store,
            cache=self.cache,
            admission=self.admission,
            before_write=before_write,
            supervisor=self.supervisor.nest("customresources"),
        )
        self.openapi = openapi.OpenAPIV3(self.registry, custom=self.custom_resources)
        self.custom_resources.changed = self._resources_changed
        await self.custom_resources.start()
        await self.identity.ensure_policy(self.resource_store)
        self.token = await join.ensure_token(
            cfg.data_dir,
            self.pki,
            secrets=self.resource_store("", "v1", "secrets"),
            join_secret=self._passphrase,
        )
        if factory.is_shared(cfg.datastore_endpoint):
            # What changed here since the bootstrap data was written (secrets-encrypt).
            await bootstrap.publish(backend, cfg.data_dir, passphrase=self._passphrase)
        self.join_service = join.JoinService(
            pki=self.pki, token=self.token, authenticator=self.identity.authenticator
        )
        await self._listen()
        self.kubernetes_service = kubernetes_service.KubernetesServiceReconciler(
            services=self.resource_store("", "v1", "services"),
            endpoints=self.resource_store("", "v1", "endpoints"),
            slices=self.resource_store("discovery.k8s.io", "v1", "endpointslices"),
            address=self.advertise_address,
            port=self.port,
            leases=masterleases.MasterLeases(self.store),
        )
        try:  # the Service exists before anyone asks, unless admission refuses it
            await self.kubernetes_service.reconcile()
        except errors.StatusError as exc:
            log.warning("the kubernetes Service is not in place yet: %s", exc.message)
        self.supervisor.start("kubernetes-service", self.kubernetes_service.run)
        if shared is not None:
            self.supervisor.start("shared-encryption", shared.run)
        self._ready = True
        self._write_kubeconfigs()

    async def _start_backend(self, backend: storage.Store) -> None:
        """Start the store; until the API listens, a server that has run before answers on
        its port (``/readyz`` false, ``/livez`` true, the API a 503) — as a load balancer
        or a service manager expects of a server that is up but not ready. The listening
        socket is made once and handed to the API when it starts: no moment refuses."""
        pki = certs.PKI.at(self.config.data_dir / "pki")
        shared = factory.is_shared(self.config.datastore_endpoint)
        if shared and pki.server_cert.exists() and pki.server_key.exists():
            try:
                self._listen_sock = startup.listening_socket(
                    self.config.bind_address, self.config.https_port
                )
            except OSError:
                self._listen_sock = None  # the API's own listener will say what is wrong
            if self._listen_sock is not None:
                self._starting = startup.StartingListener(
                    sock=self._listen_sock.dup(),
                    ssl=pki.ssl_server_context(require_client_cert=False),
                    what=self.config.datastore_endpoint,
                )
                await self._starting.start()
        try:
            await backend.start()
        except BaseException:
            await self._stop_starting()
            raise
        if self._starting is not None:
            self._starting.datastore_up = True

    async def _stop_starting(self) -> None:
        if self._starting is not None:
            await self._starting.stop()
            self._starting = None

    def _audit_log(self) -> audit_auditor.Auditor | None:
        """The audit log the flags ask for: a policy and a path, or none at all."""
        cfg = self.config
        if cfg.audit_policy_file is None:
            if cfg.audit_log.path:
                log.warning(
                    "no audit policy file (--audit-policy-file): nothing is written to %s",
                    cfg.audit_log.path,
                )
            return None
        try:
            loaded = audit_policy.load(cfg.audit_policy_file)
        except audit_policy.PolicyError as exc:
            raise StartupError(f"loading audit policy file: {exc}") from None
        if not cfg.audit_log.path:
            log.warning("an audit policy but no --audit-log-path: no audit log is written")
            return None
        backend = audit_backend.LogBackend(cfg.audit_log)
        try:
            backend.open()
        except OSError as exc:
            raise StartupError(f"cannot open the audit log {cfg.audit_log.path}: {exc}") from None
        if backend.batch:
            self.supervisor.start("audit-log-batches", backend.run_batches)
        return audit_auditor.Auditor(loaded, backend, registry=self.registry)

    def _admission_config(self) -> admission_config.AdmissionConfig:
        """The admission flags and configuration, checked before anything is touched."""
        cfg = self.config
        try:
            admission_chain.plugin_names(
                cfg.enable_admission_plugins,
                cfg.disable_admission_plugins,
                available=admission_plugins.factories(),
            )
            loaded = (
                admission_config.load(cfg.admission_control_config_file)
                if cfg.admission_control_config_file is not None
                else admission_config.AdmissionConfig()
            )
            podsecurity.parse_configuration(loaded.plugin("PodSecurity"))
            resourcequota.parse_configuration(loaded.plugin("ResourceQuota"))
        except (
            admission_config.ConfigError,
            admission_chain.ChainError,
            podsecurity.ConfigError,
            resourcequota.ConfigError,
        ) as exc:
            raise StartupError(f"admission: {exc}") from None
        return loaded

    def _admission_chain(
        self, plugin_config: admission_config.AdmissionConfig
    ) -> admission_chain.Chain:
        """The admission plugins the flags choose, in upstream's order."""
        assert self.cache is not None
        cfg = self.config
        deps = admission_chain.Deps(
            registry=self.registry,
            cache=self.cache,
            store_for=lambda group, plural: self._store_by_name(group, plural),
            config=plugin_config,
            authorizer=self.identity.authorizer if self.identity is not None else None,
        )
        return admission_chain.build(
            deps,
            admission_plugins.factories(),
            enable=cfg.enable_admission_plugins,
            disable=cfg.disable_admission_plugins,
        )

    def _store_by_name(self, group: str, plural: str) -> ResourceStore:
        for r, s in self.stores.items():
            if r.group == group and r.plural == plural:
                return s
        raise KeyError(f"{plural}.{group}")

    def _resources_changed(self) -> None:
        if self.discovery is not None:
            self.discovery.refresh()
        if self.openapi is not None:
            self.openapi.refresh()

    async def _listen(self) -> None:
        assert self.pki is not None
        assert self.join_service is not None
        assert self.discovery is not None
        assert self.openapi is not None
        pdbs = self.resource_store("policy", "v1", "poddisruptionbudgets")
        kubelet_cert, kubelet_key = certs.ensure_client_pair(
            self.pki,
            "kubelet-client",
            common_name="kube-apiserver-kubelet-client",
            organizations=["system:masters"],
        )
        self.node_proxy = nodeproxy.NodeProxy(
            nodes=self.resource_store("", "v1", "nodes"),
            client_ssl=self.pki.ssl_client_context(kubelet_cert, kubelet_key),
        )
        metrics_api = resource_metrics.ResourceMetricsAPI(
            nodes=self.resource_store("", "v1", "nodes"),
            pods=self.resource_store("", "v1", "pods"),
            session=self.node_proxy.session,
        )
        assert self.identity is not None
        identity_subresources = self.identity.subresources(
            {(r.group, r.plural): s for r, s in self.stores.items()}
        )
        resource_api = rest.ResourceAPI(
            registry=self.registry,
            stores=self.stores,
            subresources={
                **identity_subresources,
                "scale": subresources.scale,
                "binding": subresources.binding,
                "bindings": subresources.binding,
                "eviction": functools.partial(subresources.eviction, pdbs=pdbs),
                "finalize": subresources.finalize,
                "log": self.node_proxy.logs,
                **streaming.subresources(self.node_proxy),
            },
        )
        assert self.cache is not None
        assert self.discovery is not None and self.openapi is not None
        self.aggregator = aggregator_module.Aggregator(
            registry=self.registry,
            cache=self.cache,
            api_services=self.resource_store("apiregistration.k8s.io", "v1", "apiservices"),
            config_maps=self.resource_store("", "v1", "configmaps"),
            pki_dir=self.pki.directory,
            client_ca=self.pki.ca_cert.read_bytes(),
            discovery_docs=self.discovery,
            openapi_docs=self.openapi,
            children=self.supervisor.nest("aggregator"),
        )
        await self.aggregator.start()
        api = self.app = app_module.APIApp(
            registry=self.registry,
            resource_api=resource_api,
            discovery_docs=self.discovery,
            openapi_docs=self.openapi,
            aggregated=self.aggregator.route,
            authenticator=self.identity.authenticator,
            authorizer=self.identity.authorizer,
            extra_routes={
                **self.identity.routes(),
                join.CACERTS_PATH: self.join_service.cacerts,
                join.JOIN_PATH: self.join_service.join,
                "/metrics": self.metrics.handle,
                **encryption_handler.EncryptionAPI(self.encryption).routes(),
            },
            api_services={
                (resource_metrics.GROUP, resource_metrics.VERSION): metrics_api.handle,
                **self.identity.api_services(),
            },
            static_routes={dashboard_pages.PREFIX: dashboard_pages.Pages().handle},
            history_api=history_handler.HistoryAPI(
                registry=self.registry, stores=self.stores, backend=self.store
            ),
            middlewares=[self.metrics.middleware, requestcontext.Requests(self.auditor).middleware],
            health_checks=self.health_checks,
            flow_control=self.flow_control,
        )
        app_module.quiet_client_protocol_errors()
        self._runner = web.AppRunner(
            api.build(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.config.shutdown_grace,
        )
        await self._runner.setup()
        # Python 3.11: a request's task starts in the loop turn its connection's task
        # creates it, as aiohttp does on 3.12 (see eagertasks). On a laned loop the
        # connections and their requests start in the fast lane (see lanes).
        self._task_factory = eagertasks.install(
            asyncio.get_running_loop(),
            [eagertasks.aiohttp_request_code()],
            [eagertasks.aiohttp_connection_code()],
        )
        # The components in this process reach the same handler without the socket.
        assert self._runner.server is not None
        self.in_process = inprocess.InProcess(self._runner.server)
        site: web.BaseSite
        ssl_context = self.pki.ssl_server_context(require_client_cert=False)
        if self._listen_sock is not None:
            # Connections queue on the socket while the starting listener hands over.
            await self._stop_starting()
            site = web.SockSite(self._runner, self._listen_sock, ssl_context=ssl_context)
        else:
            site = web.TCPSite(
                self._runner,
                self.config.bind_address or None,
                self.config.https_port,
                ssl_context=ssl_context,
                backlog=1024,
                reuse_address=True,
            )
        await site.start()
        # Components inside this process (controllers, scheduler, agent) talk to
        # the API over a private Unix socket: same HTTP API, no TLS.
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        unix_site = web.UnixSite(self._runner, str(self.socket_path))
        await unix_site.start()
        self.socket_path.chmod(0o600)
        server = site._server
        if server is not None and self.config.https_port == 0:
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]
        if self.flow_control.adaptive is not None:
            self.supervisor.start("flowcontrol-lag", self.flow_control.run_adaptive)
        for name, listening in (("https", site._server), ("unix-socket", unix_site._server)):
            assert isinstance(listening, asyncio.Server)
            self.supervisor.start(
                name,
                functools.partial(supervision.listening, listening, name),
                policy=supervision.Policy.FATAL,
            )

    def _write_kubeconfigs(self) -> None:
        assert self.pki is not None
        targets = [self.kubeconfig_path]
        if self.config.write_kubeconfig:
            targets.append(self.config.write_kubeconfig)
        for path in targets:
            kubeconfig.write_kubeconfig(path, server=self.url, pki=self.pki)

    async def begin_shutdown(self) -> None:
        """Stop taking new work from outside and end every long-running request; see the
        module docstring. The Unix socket keeps serving until :meth:`stop`."""
        if self.shutting_down:
            return
        self.shutting_down = True
        await self._stop_starting()
        await self.supervisor.stop_child("https")  # closes the listening socket
        # The server's own watchers of the cache (CRDs, APIService availability) stop
        # first: the watches ending below would look to them like a failure.
        if self.custom_resources is not None:
            await self.custom_resources.stop()
        if self.aggregator is not None:
            await self.aggregator.stop()
        if self.cache is not None:
            self.cache.close_watchers()  # each watch ends its response cleanly
        if self.node_proxy is not None:
            await self.node_proxy.close()  # logs -f, exec, attach, port-forward to agents
        if self.app is not None:
            await self.app.end_long_running(timeout=min(2.0, self.config.shutdown_grace))

    async def stop(self) -> None:
        """Finish shutting down: the Unix socket, in-flight requests (at most
        ``shutdown_grace`` seconds), the watch cache, the store."""
        await self.begin_shutdown()
        self._ready = False
        await self.supervisor.stop_child("unix-socket")
        if self.in_process is not None:
            self.in_process.close()  # as the socket: no new requests from the components
        await self.supervisor.stop_child("kubernetes-service")  # it writes to the store
        await self.supervisor.stop_child("shared-encryption")
        if self.kubernetes_service is not None:
            try:  # other servers' clients stop being sent here
                await self.kubernetes_service.remove_self()
            except (errors.StatusError, storage.StoreError) as exc:
                log.warning("could not take this server out of the kubernetes Endpoints: %s", exc)
        if self.app is not None:
            await self.app.end_long_running(timeout=1.0)  # any that started since
        if self.in_process is not None:
            await self.in_process.shutdown(timeout=self.config.shutdown_grace)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        loop = asyncio.get_running_loop()
        if self._task_factory is not None and loop.get_task_factory() is self._task_factory:
            loop.set_task_factory(None)
        if self.admission is not None:
            await self.admission.stop()
        await self.encryption.stop()  # a re-encryption in progress resumes at the next start
        if self.cache is not None:
            await self.cache.stop()
        if self.auditor is not None:
            # After the last request: what ends during shutdown is still recorded.
            await self.supervisor.stop_child("audit-log-batches")
            await self.auditor.backend.close()
        if self.store is not None:
            await self.store.close()

    # --- system objects ----------------------------------------------------------
    def resource_store(self, group: str, version: str, plural: str) -> ResourceStore:
        r = self.registry.by_path(group, version, plural)
        assert r is not None, (group, version, plural)
        return self.stores[r]

    async def _bootstrap(self) -> None:
        await systemobjects.ensure(
            self.resource_store,
            cluster_dns=self.config.cluster_dns,
            default_storage_class=self.config.default_storage_class,
        )
