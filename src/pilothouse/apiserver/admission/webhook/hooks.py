"""The webhooks in effect, compiled from their configurations (upstream's
``webhook.WebhookAccessor`` and the configuration managers).

A :class:`Source` reads the MutatingWebhookConfigurations or the
ValidatingWebhookConfigurations from the watch cache and compiles them into
:class:`Hook` values, ordered as upstream orders them: configurations by name, the
webhooks of each in their order. The compiled list is kept until the
configurations change (the resource cache's last event says so), so a request
pays for nothing but a comparison; a configuration just written applies to the
very next request, because the server's own writes are in the cache before they
are answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pilothouse.api.selectors import error as selector_error
from pilothouse.api.selectors import labels
from pilothouse.apiserver import watchcache

MUTATING_PREFIX = "/registry/admissionregistration.k8s.io/mutatingwebhookconfigurations/"
VALIDATING_PREFIX = "/registry/admissionregistration.k8s.io/validatingwebhookconfigurations/"

# A compiled match-condition program: (request view) -> bool, raising on evaluation errors.
ConditionProgram = Callable[[dict[str, Any]], bool]
ConditionCompiler = Callable[[list[dict[str, Any]]], "CompiledConditions"]


@dataclass(frozen=True, slots=True)
class CompiledConditions:
    """Match conditions ready to evaluate, or the compile error upstream reports."""

    programs: tuple[tuple[str, ConditionProgram], ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed label selector, or the error parsing it gave (reported on use)."""

    selector: labels.LabelSelector
    error: str = ""

    @classmethod
    def parse(cls, value: Any) -> Selector:
        if not isinstance(value, dict):
            return cls(labels.EVERYTHING)
        try:
            return cls(labels.from_label_selector_dict(value))
        except selector_error.SelectorError as exc:
            return cls(labels.NOTHING, str(exc))


@dataclass(frozen=True, slots=True)
class Hook:
    """One webhook of one configuration, as the dispatchers use it."""

    uid: str
    configuration: str
    name: str
    mutating: bool
    rules: tuple[dict[str, Any], ...]
    failure_policy: str
    match_policy: str
    namespace_selector: Selector
    object_selector: Selector
    side_effects: str
    timeout: float
    review_versions: tuple[str, ...]
    reinvocation_policy: str
    client_config: dict[str, Any]
    match_conditions: tuple[dict[str, Any], ...] = ()
    conditions: CompiledConditions = field(default_factory=CompiledConditions)

    @property
    def ignores_failures(self) -> bool:
        return self.failure_policy == "Ignore"


def compile_hooks(
    configuration: dict[str, Any],
    *,
    mutating: bool,
    conditions: ConditionCompiler | None = None,
) -> list[Hook]:
    name = str((configuration.get("metadata") or {}).get("name") or "")
    out: list[Hook] = []
    for index, hook in enumerate(configuration.get("webhooks") or []):
        if not isinstance(hook, dict):
            continue
        match_conditions = tuple(
            c for c in hook.get("matchConditions") or [] if isinstance(c, dict)
        )
        compiled = (
            conditions(list(match_conditions))
            if conditions is not None and match_conditions
            else CompiledConditions()
        )
        out.append(
            Hook(
                uid=f"{name}/{hook.get('name', '')}/{index}",
                configuration=name,
                name=str(hook.get("name") or ""),
                mutating=mutating,
                rules=tuple(r for r in hook.get("rules") or [] if isinstance(r, dict)),
                failure_policy=str(hook.get("failurePolicy") or "Fail"),
                match_policy=str(hook.get("matchPolicy") or "Equivalent"),
                namespace_selector=Selector.parse(hook.get("namespaceSelector")),
                object_selector=Selector.parse(hook.get("objectSelector")),
                side_effects=str(hook.get("sideEffects") or ""),
                timeout=float(hook.get("timeoutSeconds") or 10),
                review_versions=tuple(str(v) for v in hook.get("admissionReviewVersions") or ()),
                reinvocation_policy=str(hook.get("reinvocationPolicy") or "Never"),
                client_config=dict(hook.get("clientConfig") or {}),
                match_conditions=match_conditions,
                conditions=compiled,
            )
        )
    return out


class Source:
    """The compiled webhooks of one kind of configuration, rebuilt on change."""

    def __init__(
        self,
        cache: watchcache.WatchCache,
        *,
        mutating: bool,
        conditions: ConditionCompiler | None = None,
    ) -> None:
        self.cache = cache
        self.mutating = mutating
        self.prefix = MUTATING_PREFIX if mutating else VALIDATING_PREFIX
        self.conditions = conditions
        self._seen: tuple[int, int] | None = None
        self._hooks: list[Hook] = []

    def hooks(self) -> list[Hook]:
        resource = self.cache.caches.get(self.prefix)
        if resource is None:
            return []
        # Every change appends an event; the last one's revision and the count of
        # objects tell whether anything changed since the last compile.
        last = resource.events[-1].revision if resource.events else resource.floor
        seen = (last, len(resource.objects))
        if seen != self._seen:
            hooks: list[Hook] = []
            for entry in resource.snapshot(self.prefix):
                hooks.extend(
                    compile_hooks(entry.obj, mutating=self.mutating, conditions=self.conditions)
                )
            self._hooks, self._seen = hooks, seen
        return self._hooks
