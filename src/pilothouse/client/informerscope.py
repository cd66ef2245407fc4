"""One informer factory shared by several components of a process.

Upstream's control-plane components are separate processes, each with informers of
its own; the all-in-one server runs the controller manager and the scheduler in one
process, and they read through one :class:`~pilothouse.client.informer.InformerFactory`.
Each component's leadership term takes an :class:`InformerScope` of it: the scope
hands out an :class:`InformerView` of the factory's one informer per resource, so the
cache, the watch and the decoding exist once, and the handlers the term registered
are removed when it stops, while the informers run on for the others (and for the
next term, which is replayed what the caches hold). Everything runs on the one event
loop; a view holds no state of its own but its handler registrations.
"""

from __future__ import annotations

from pilothouse import supervisor as supervision
from pilothouse.api import resources
from pilothouse.client import informer

# Inside InformerScope the method ``informer`` shadows the module's name.
Informer = informer.Informer
informer_key = informer.informer_key


class InformerView(informer.Informer):
    """One consumer's handle on a shared :class:`Informer`: the same cache, watch and
    synced state, with handler registrations of its own.

    The view runs no loop (the shared informer does, under its factory's supervisor);
    :meth:`stop` removes the handlers added through it and leaves the informer
    running for its other consumers.
    """

    def __init__(self, shared: informer.Informer) -> None:
        # No Informer.__init__: every piece of state is the shared informer's own
        # object (the indexer, the handler list, the synced event), not a copy.
        self.shared = shared
        self.client = shared.client
        self.metadata_only = shared.metadata_only
        self.resource = shared.resource
        self.namespace = shared.namespace
        self.label_selector = shared.label_selector
        self.field_selector = shared.field_selector
        self.transform = shared.transform
        self.local = shared.local
        self.indexer = shared.indexer
        self.resync_period = shared.resync_period
        self._registrations = shared._registrations
        self._synced = shared._synced
        self._supervisor = None
        self._fingerprints = None  # the shared informer's detector does the checking
        self.mutations = shared.mutations
        self._own: list[informer.Registration] = []

    @property
    def resource_version(self) -> str:
        return self.shared.resource_version

    @resource_version.setter
    def resource_version(self, value: str) -> None:
        self.shared.resource_version = value

    @property
    def served_locally(self) -> bool:
        return self.shared.served_locally

    @served_locally.setter
    def served_locally(self, value: bool) -> None:
        self.shared.served_locally = value

    @property
    def lists(self) -> int:
        return self.shared.lists

    @lists.setter
    def lists(self, value: int) -> None:
        self.shared.lists = value

    def add_handlers(
        self,
        *,
        on_add: informer.AddHandler | None = None,
        on_update: informer.UpdateHandler | None = None,
        on_delete: informer.DeleteHandler | None = None,
    ) -> informer.Registration:
        reg = super().add_handlers(on_add=on_add, on_update=on_update, on_delete=on_delete)
        self._own.append(reg)
        return reg

    def start(self, supervisor: supervision.Supervisor) -> None:
        """Start the shared informer if nobody has (a consumer outside any factory)."""
        self.shared.start(supervisor)

    async def stop(self) -> None:
        """Remove this view's handlers; the shared informer runs on."""
        own, self._own = self._own, []
        for reg in own:
            self.shared.remove_handlers(reg)

    async def run(self) -> None:
        raise RuntimeError("a view runs no loop; its shared informer does")


class InformerScope(informer.InformerFactory):
    """One consumer's term on a factory shared in the process: what the consumer asks
    for is a view (:class:`InformerView`) of the factory's one informer for it.

    The informers run under the shared factory's supervisor, whatever supervisor the
    scope is started with, so they outlive the term; :meth:`stop` removes the handlers
    the term registered. The shared factory must have been started first.
    """

    def __init__(self, shared: informer.InformerFactory) -> None:
        super().__init__(shared.client, shared.resync_period, shared.transform, shared.local)
        self.shared = shared

    def _has_full(self, resource: resources.Resource) -> bool:
        return self.shared._has_full(resource)

    def informer(
        self,
        resource: resources.Resource,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
        metadata_only: bool = False,
    ) -> Informer:
        key = informer_key(resource, namespace, label_selector, field_selector, metadata_only)
        view = self._informers.get(key)
        if view is None:
            view = self._informers[key] = InformerView(
                self.shared.informer(
                    resource,
                    namespace=namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    metadata_only=metadata_only,
                )
            )
        return view

    def start(self, supervisor: supervision.Supervisor) -> None:
        self._supervisor = supervisor
        self.shared.start_late()

    def start_late(self) -> None:
        if self._supervisor is None:
            raise RuntimeError("the informer scope has not started")
        self.shared.start_late()
