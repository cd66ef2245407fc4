"""PodSecurity (upstream's admission plugin, ``k8s.io/pod-security-admission``).

A namespace's ``pod-security.kubernetes.io/{enforce,audit,warn}[-version]`` labels
(over the defaults of a PodSecurityConfiguration, ``privileged:latest`` without
one) choose, per mode, a level of the Pod Security Standards:

- **enforce**: a pod that violates it is refused (403, ``violates PodSecurity
  "restricted:latest": …``);
- **warn**: the violations come back as a ``Warning`` header (kubectl prints
  ``Warning: would violate PodSecurity …``), for pods and for the pod templates
  of workloads;
- **audit**: the violations are recorded as the audit annotation
  ``pod-security.kubernetes.io/audit-violations``.

Namespaces with bad labels are refused (422); setting a stricter enforce level
warns about the namespace's pods that would not pass it. Exempt users,
namespaces and runtime classes pass unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pilothouse.api import errors, resources
from pilothouse.api.podsecurity import evaluator as pss
from pilothouse.api.podsecurity import levels
from pilothouse.api.validation import names
from pilothouse.apiserver import requestcontext
from pilothouse.apiserver.admission import lookup
from pilothouse.apiserver.admission.chain import Deps
from pilothouse.apiserver.admission.interface import CREATE, UPDATE, Attributes, Plugin

Obj = dict[str, Any]

CONFIG_API_VERSIONS = (
    "pod-security.admission.config.k8s.io/v1",
    "pod-security.admission.config.k8s.io/v1beta1",
)
CONFIG_KIND = "PodSecurityConfiguration"

# Pod subresources that cannot change what the pod runs.
_IGNORED_POD_SUBRESOURCES = frozenset(
    {"exec", "attach", "binding", "eviction", "log", "portforward", "proxy", "status"}
)
# Resources whose objects hold a pod template (DefaultPodSpecExtractor).
POD_CONTROLLERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "replicationcontrollers"): ("spec", "template"),
    ("", "podtemplates"): ("template",),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}
MAX_PODS_TO_CHECK = 3000
ENFORCE_POLICY_KEY = levels.LABEL_PREFIX + levels.ENFORCE_POLICY
PRIVILEGED_LATEST = str(levels.PRIVILEGED_LATEST)


class ConfigError(ValueError):
    """A PodSecurityConfiguration that cannot be used."""


@dataclass(frozen=True)
class Configuration:
    defaults: levels.Policy = levels.DEFAULT_POLICY
    exempt_usernames: frozenset[str] = frozenset()
    exempt_namespaces: frozenset[str] = frozenset()
    exempt_runtime_classes: frozenset[str] = frozenset()
    problems: list[str] = field(default_factory=list, compare=False)


def parse_configuration(doc: dict[str, Any] | None) -> Configuration:
    """A PodSecurityConfiguration, checked as upstream checks it."""
    if doc is None:
        return Configuration()
    if doc.get("kind") != CONFIG_KIND or doc.get("apiVersion") not in CONFIG_API_VERSIONS:
        raise ConfigError(
            f"PodSecurity configuration must be a {CONFIG_KIND} of apiVersion "
            f"{' or '.join(CONFIG_API_VERSIONS)}"
        )
    d = doc.get("defaults") or {}
    e = doc.get("exemptions") or {}
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    for mode in ("enforce", "audit", "warn"):
        level = d.get(mode) or levels.PRIVILEGED
        ver = d.get(f"{mode}-version") or "latest"
        if levels.parse_level(level) is None:
            problems.append(f'defaults.{mode}: Invalid value: "{level}": {levels.LEVEL_ERROR}')
        v = levels.parse_version(ver)
        if v is None:
            problems.append(
                f'defaults.{mode}-version: Invalid value: "{ver}": {levels.VERSION_ERROR}'
            )
        parsed[mode] = levels.LevelVersion(levels.parse_level(level) or "", v or levels.LATEST)
    for key, check in (
        ("namespaces", names.name_is_dns_label),
        ("runtimeClasses", names.name_is_dns_subdomain),
    ):
        seen: set[str] = set()
        for i, value in enumerate(e.get(key) or []):
            bad = check(str(value), False)
            if bad:
                problems.append(
                    f'exemptions.{key}[{i}]: Invalid value: "{value}": {", ".join(bad)}'
                )
            elif value in seen:
                problems.append(f'exemptions.{key}[{i}]: Duplicate value: "{value}"')
            seen.add(str(value))
    seen_users: set[str] = set()
    for i, value in enumerate(e.get("usernames") or []):
        if not value:
            problems.append(
                f'exemptions.usernames[{i}]: Invalid value: "": username must not be empty'
            )
        elif value in seen_users:
            problems.append(f'exemptions.usernames[{i}]: Duplicate value: "{value}"')
        seen_users.add(str(value))
    if problems:
        raise ConfigError("PodSecurity invalid: " + ", ".join(problems))
    return Configuration(
        defaults=levels.Policy(parsed["enforce"], parsed["audit"], parsed["warn"]),
        exempt_usernames=frozenset(str(u) for u in e.get("usernames") or []),
        exempt_namespaces=frozenset(str(n) for n in e.get("namespaces") or []),
        exempt_runtime_classes=frozenset(str(r) for r in e.get("runtimeClasses") or []),
    )


def _template(obj: Obj, path: tuple[str, ...]) -> Obj | None:
    value: Any = obj
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else None


def _significant_update(new: Obj, old: Obj) -> bool:
    """Whether a pod update changes what it runs (isSignificantPodUpdate)."""
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    for key in ("containers", "initContainers"):
        cs, old_cs = spec.get(key) or [], old_spec.get(key) or []
        if len(cs) != len(old_cs):
            return True
        if any(
            (c or {}).get("image") != (o or {}).get("image")
            for c, o in zip(cs, old_cs, strict=True)
        ):
            return True
    old_ephemeral = {(c or {}).get("name"): c for c in old_spec.get("ephemeralContainers") or []}
    for c in spec.get("ephemeralContainers") or []:
        previous = old_ephemeral.get((c or {}).get("name"))
        if previous is None or (previous or {}).get("image") != (c or {}).get("image"):
            return True
    return False


class PodSecurity(Plugin):
    name = "PodSecurity"

    def __init__(self, deps: Deps) -> None:
        self.cache = deps.cache
        self.config = parse_configuration(deps.config.plugin(self.name))
        self.evaluator = pss.DEFAULT
        # Namespace name -> (its resourceVersion, the policy its labels select): every pod
        # of a namespace reads the same labels.
        self._policies: dict[str, tuple[str, levels.Policy, list[errors.FieldError]]] = {}

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        if operation not in (CREATE, UPDATE):
            return False
        key = (resource.group, resource.plural)
        if key == ("", "namespaces"):
            return not subresource
        if key == ("", "pods"):
            return subresource not in _IGNORED_POD_SUBRESOURCES
        return key in POD_CONTROLLERS and not subresource

    def _policy(self, ns: Obj | None) -> tuple[levels.Policy, list[errors.FieldError]]:
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
        return levels.policy_to_evaluate(labels, self.config.defaults)

    def _namespace_policy(self, name: str) -> tuple[levels.Policy, list[errors.FieldError]]:
        ns = lookup.namespace(self.cache, name)
        if ns is None:
            return self._policy(None)
        md = ns.get("metadata") or {}
        rv = md.get("resourceVersion") or ""
        known = self._policies.get(name)
        if known is not None and known[0] == rv and rv:
            return known[1], known[2]
        policy, problems = self._policy(ns)
        if len(self._policies) > 10_000:
            self._policies.clear()  # namespaces come and go; keep the memo small
        self._policies[name] = (rv, policy, problems)
        return policy, problems

    async def validate(self, a: Attributes) -> None:
        if a.obj is None:
            return
        if a.plural == "namespaces":
            self._namespace(a)
            return
        if a.namespace in self.config.exempt_namespaces:
            requestcontext.add_annotation(levels.LABEL_PREFIX + levels.EXEMPT, "namespace")
            return
        if a.user_name and a.user_name in self.config.exempt_usernames:
            requestcontext.add_annotation(levels.LABEL_PREFIX + levels.EXEMPT, "user")
            return
        policy, problems = self._namespace_policy(a.namespace)
        if a.plural == "pods":
            if not problems and policy.fully_privileged():
                requestcontext.add_annotation(ENFORCE_POLICY_KEY, PRIVILEGED_LATEST)
                return
            if (
                a.operation == UPDATE
                and a.old is not None
                and not _significant_update(a.obj, a.old)
            ):
                return
            self._evaluate(
                a,
                policy,
                problems,
                a.obj.get("metadata") or {},
                a.obj.get("spec") or {},
                enforce=True,
            )
            return
        if not problems and policy.warn.level == policy.audit.level == levels.PRIVILEGED:
            return
        template = _template(a.obj, POD_CONTROLLERS[(a.group, a.plural)])
        if template is None:
            return
        self._evaluate(
            a,
            policy,
            problems,
            template.get("metadata") or {},
            template.get("spec") or {},
            enforce=False,
        )

    def _evaluate(
        self,
        a: Attributes,
        policy: levels.Policy,
        problems: list[errors.FieldError],
        meta: Obj,
        spec: Obj,
        *,
        enforce: bool,
    ) -> None:
        if (
            spec.get("runtimeClassName")
            and spec["runtimeClassName"] in self.config.exempt_runtime_classes
        ):
            requestcontext.add_annotation(levels.LABEL_PREFIX + levels.EXEMPT, "runtimeClass")
            return
        if problems:
            requestcontext.add_annotation(
                levels.LABEL_PREFIX + "error",
                "Failed to parse policy: " + _aggregate([p.message() for p in problems]),
            )
        results: dict[levels.LevelVersion, pss.Result] = {}

        def result(lv: levels.LevelVersion) -> pss.Result:
            if lv not in results:
                results[lv] = self.evaluator.evaluate(lv, meta, spec)
            return results[lv]

        refused: errors.StatusError | None = None
        if enforce:
            requestcontext.add_annotation(ENFORCE_POLICY_KEY, str(policy.enforce))
            verdict = result(policy.enforce)
            if not verdict.allowed:
                refused = a.forbidden(
                    f'violates PodSecurity "{policy.enforce}": {verdict.detail()}'
                )
        audit = result(policy.audit)
        if not audit.allowed:
            requestcontext.add_annotation(
                levels.LABEL_PREFIX + levels.AUDIT_VIOLATIONS,
                f'would violate PodSecurity "{policy.audit}": {audit.detail()}',
            )
        if refused is not None:
            raise refused
        warn = result(policy.warn)
        if not warn.allowed:
            requestcontext.add_warning(
                f'would violate PodSecurity "{policy.warn}": {warn.detail()}'
            )

    def _namespace(self, a: Attributes) -> None:
        assert a.obj is not None
        new_policy, new_problems = self._policy(a.obj)
        name = (a.obj.get("metadata") or {}).get("name") or a.name
        if a.operation == CREATE:
            if new_problems:
                raise errors.invalid("Namespace", "", name, new_problems)
            self._exempt_namespace_warning(name, new_policy, a.obj)
            return
        old_policy, old_problems = self._policy(a.old)
        if new_problems and (
            not old_problems
            or [p.message() for p in new_problems] != [p.message() for p in old_problems]
        ):
            raise errors.invalid("Namespace", "", name, new_problems)
        if (
            new_policy.enforce == old_policy.enforce
            or new_policy.enforce.level == levels.PRIVILEGED
        ):
            return
        if (
            new_policy.enforce.version == old_policy.enforce.version
            and levels.compare_levels(new_policy.enforce.level, old_policy.enforce.level) < 1
        ):
            return
        if name in self.config.exempt_namespaces:
            self._exempt_namespace_warning(name, new_policy, a.obj)
            return
        for warning in self._check_existing_pods(name, new_policy.enforce):
            requestcontext.add_warning(warning)

    def _exempt_namespace_warning(self, name: str, policy: levels.Policy, ns: Obj) -> None:
        if name not in self.config.exempt_namespaces:
            return
        if policy.fully_privileged() or policy.equivalent(self.config.defaults):
            return
        labels = (ns.get("metadata") or {}).get("labels") or {}
        parts = []
        for mode, lv, keys in (
            ("enforce", policy.enforce, (levels.ENFORCE, levels.ENFORCE_VERSION)),
            ("audit", policy.audit, (levels.AUDIT, levels.AUDIT_VERSION)),
            ("warn", policy.warn, (levels.WARN, levels.WARN_VERSION)),
        ):
            if lv.level != levels.PRIVILEGED and any(k in labels for k in keys):
                parts.append(f"{mode}={lv}")
        requestcontext.add_warning(
            f'namespace "{name}" is exempt from Pod Security, and the policy '
            f"({', '.join(parts)}) will be ignored"
        )

    def _check_existing_pods(self, namespace: str, enforce: levels.LevelVersion) -> list[str]:
        """EvaluatePodsInNamespace: which pods the new enforce level would refuse, grouped
        by reason; one pod per controller first, as upstream prioritises them."""
        pods = [
            p
            for p in lookup.in_namespace(self.cache, lookup.PODS, namespace)
            if (p.get("spec") or {}).get("runtimeClassName")
            not in self.config.exempt_runtime_classes
        ]
        first: list[Obj] = []
        later: list[Obj] = []
        seen_owners: set[str] = set()
        for pod in pods:
            owner = next(
                (
                    r.get("uid")
                    for r in (pod.get("metadata") or {}).get("ownerReferences") or []
                    if r.get("controller")
                ),
                None,
            )
            if owner is None:
                first.append(pod)
            elif owner in seen_owners:
                later.append(pod)
            else:
                seen_owners.add(owner)
                first.append(pod)
        ordered = first + later
        total = len(ordered)
        checked = ordered[:MAX_PODS_TO_CHECK]
        by_reason: dict[str, list[str]] = {}
        for pod in checked:
            verdict = self.evaluator.evaluate(
                enforce, pod.get("metadata") or {}, pod.get("spec") or {}
            )
            if not verdict.allowed:
                by_reason.setdefault(verdict.reason(), []).append(pod["metadata"].get("name", ""))
        warnings: list[str] = []
        if len(checked) < total:
            warnings.append(
                f"new PodSecurity enforce level only checked against the first {len(checked)} "
                f"of {total} existing pods"
            )
        if by_reason:
            warnings.append(
                f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce '
                f'level "{enforce}"'
            )
        decorated = []
        for reason, pod_names in by_reason.items():
            first_name = min(pod_names)
            others = len(pod_names) - 1
            if others == 0:
                decorated.append(f"{first_name}: {reason}")
            elif others == 1:
                decorated.append(f"{first_name} (and 1 other pod): {reason}")
            else:
                decorated.append(f"{first_name} (and {others} other pods): {reason}")
        return warnings + sorted(decorated)


def _aggregate(messages: list[str]) -> str:
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
