"""Strategies of workload kinds: generation tracking, generated selectors, create-on-update."""

from __future__ import annotations

from pilothouse.api.defaults import prepare
from pilothouse.api.meta import Obj
from pilothouse.apiserver.registry.strategy import Strategy

DAEMONSET_TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"


class GenerationStrategy(Strategy):
    """Workloads whose controllers report ``status.observedGeneration``."""

    tracks_generation = True


class DeploymentStrategy(GenerationStrategy):
    def spec_changed(self, new: Obj, old: Obj) -> bool:
        # Upstream bumps the generation on annotation changes too (rollbacks
        # were once requested through an annotation).
        if (new.get("metadata") or {}).get("annotations") != (old.get("metadata") or {}).get(
            "annotations"
        ):
            return True
        return super().spec_changed(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        # Upstream's deploymentStatusStrategy resets only spec and labels: the
        # deployment controller writes the revision annotation through /status.
        annotations = (new.get("metadata") or {}).get("annotations")
        super().prepare_for_status_update(new, old)
        md = new["metadata"]
        if annotations:
            md["annotations"] = annotations
        else:
            md.pop("annotations", None)


class JobStrategy(GenerationStrategy):
    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        # Label the template with the job's name and uid, and select on them,
        # unless the user manages the selector (spec.manualSelector).
        prepare.generate_job_selector(obj)


class DaemonSetStrategy(GenerationStrategy):
    """DaemonSets count template changes. Upstream keeps the count in the internal
    ``spec.templateGeneration`` and serves it in apps/v1 only as the annotation
    ``deprecated.daemonset.template.generation`` (apps/v1 has no such spec field), so
    the annotation is where it lives here: 1 on create, one more for every template
    change, and not settable by clients."""

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj.setdefault("spec", {}).pop("templateGeneration", None)
        self._annotate(obj, 1)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
        spec.pop("templateGeneration", None)
        generation = _template_generation(old)
        if spec.get("template") != old_spec.get("template"):
            generation += 1
        self._annotate(new, generation)

    @staticmethod
    def _annotate(obj: Obj, generation: int) -> None:
        md = obj.setdefault("metadata", {})
        annotations = dict(md.get("annotations") or {})
        annotations[DAEMONSET_TEMPLATE_GENERATION] = str(generation)
        md["annotations"] = annotations


def _template_generation(ds: Obj) -> int:
    value = ((ds.get("metadata") or {}).get("annotations") or {}).get(DAEMONSET_TEMPLATE_GENERATION)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


class CreateOnUpdateStrategy(Strategy):
    """Kinds whose PUT creates a missing object (upstream: Endpoints)."""

    allow_create_on_update = True
