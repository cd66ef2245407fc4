"""What an admission plugin sees and implements (upstream ``admission.Attributes`` and
``admission.Interface``).

A plugin says which requests it wants (:meth:`Plugin.handles`, asked once per
resource, subresource and operation and remembered by the chain) and implements
``admit`` (mutating), ``validate`` (validating) or both. Plugins are called
concurrently for different requests; one that keeps state guards it itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pilothouse.api import errors, resources
from pilothouse.api.meta import Obj
from pilothouse.apiserver import requestcontext

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

CREATE = "CREATE"
UPDATE = "UPDATE"
DELETE = "DELETE"
CONNECT = "CONNECT"
WRITES = frozenset({CREATE, UPDATE})


@dataclass(slots=True)
class Attributes:
    """One request, as admission sees it."""

    operation: str
    resource: resources.Resource
    namespace: str
    name: str
    obj: Obj | None
    old: Obj | None = None
    subresource: str = ""
    dry_run: bool = False
    # The store the request writes to (plugins that need others reach them through it).
    store: ResourceStore | None = field(default=None, repr=False)
    user: requestcontext.UserInfo | None = None

    @property
    def group(self) -> str:
        return self.resource.group

    @property
    def plural(self) -> str:
        return self.resource.plural

    @property
    def kind(self) -> str:
        if self.subresource:
            sub = resources.SUBRESOURCE_KINDS.get(self.subresource)
            if sub is not None:
                return sub[2]
        return self.resource.kind

    @property
    def user_name(self) -> str:
        return self.user.name if self.user is not None else ""

    def object_name(self) -> str:
        """``extractResourceName``: the request's name, else the object's name or
        generateName (a name may not be generated yet), else ``Unknown``."""
        if self.name:
            return self.name
        md: Any = (self.obj or {}).get("metadata") or {}
        return str(md.get("name") or md.get("generateName") or "Unknown")

    def forbidden(self, message: str) -> errors.StatusError:
        """``admission.NewForbidden``: ``<resource> "<name>" is forbidden: <message>``."""
        return errors.forbidden(
            self.resource.plural, self.resource.group, self.object_name(), message
        )


class Plugin:
    """An admission plugin; subclasses override ``admit``, ``validate`` or both."""

    name = "Plugin"
    # Operations the plugin cares about (upstream's ``admission.NewHandler(…)``).
    operations: frozenset[str] = WRITES

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        """Whether requests of this shape concern the plugin (asked once per shape)."""
        return operation in self.operations

    @property
    def mutating(self) -> bool:
        return type(self).admit is not Plugin.admit

    @property
    def validating(self) -> bool:
        return type(self).validate is not Plugin.validate

    async def admit(self, a: Attributes) -> None:
        """Mutating phase: may change ``a.obj`` or refuse."""

    async def validate(self, a: Attributes) -> None:
        """Validating phase: may only refuse."""

    async def start(self) -> None:
        """Called once the server's stores exist (plugins with background work start it)."""

    async def stop(self) -> None:
        """Called when the server stops."""


LegacyCheck = Callable[["ResourceStore", str, Obj], Awaitable[None]]


class FunctionPlugin(Plugin):
    """A plugin written as ``fn(store, "create"|"update"|"delete", obj)`` (the registry
    hook shape), run in the phase given: mutating ones may change ``obj``."""

    def __init__(
        self,
        name: str,
        fn: LegacyCheck,
        *,
        mutating: bool,
        operations: frozenset[str] = frozenset({CREATE, UPDATE, DELETE}),
        only: frozenset[tuple[str, str]] | None = None,
    ) -> None:
        self.name = name
        self.fn = fn
        self._mutating = mutating
        self.operations = operations
        # (group, plural) pairs the function looks at; None: every resource.
        self.only = only

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        if self.only is not None and (resource.group, resource.plural) not in self.only:
            return False
        return operation in self.operations

    @property
    def mutating(self) -> bool:
        return self._mutating

    @property
    def validating(self) -> bool:
        return not self._mutating

    async def _call(self, a: Attributes) -> None:
        obj = a.obj if a.obj is not None else a.old
        if a.store is None or obj is None:
            return
        await self.fn(a.store, a.operation.lower(), obj)

    async def admit(self, a: Attributes) -> None:
        await self._call(a)

    async def validate(self, a: Attributes) -> None:
        await self._call(a)
