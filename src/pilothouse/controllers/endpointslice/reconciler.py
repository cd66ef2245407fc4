"""From the endpoints an owner wants and its current slices to the slices to write
(upstream's ``k8s.io/endpointslice`` Reconciler).

:func:`plan_desired` is pure: it reads the endpoints wanted per address type and
port set, and the slices the controller owns, and says which slices to create,
update and delete so that every desired endpoint is in exactly one slice of its
port set, with as few writes as possible — existing slices are trimmed and
refilled first, a slice that stays unchanged is only touched when the leftovers
fit in it, new slices are made last, and a create that would coincide with a
delete becomes an update of the slice being deleted. An owner with no endpoints
keeps one empty "placeholder" slice. The :class:`Owner` says whose slices they
are (a Service for the EndpointSlice controller, an Endpoints object for the
mirroring controller) and what labels they carry. :func:`plan` is the
EndpointSlice controller's entry: the desired endpoints of a Service's pods.
:func:`apply` performs a plan through the API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pilothouse.api import errors, resources
from pilothouse.api.meta import Obj
from pilothouse.client import rest
from pilothouse.controllers import podcontrol
from pilothouse.controllers.endpointslice import podendpoints as pe

MAX_ENDPOINTS_PER_SLICE = 100
NAMESPACE_TERMINATING = "NamespaceTerminating"


@dataclass
class Plan:
    """What one sync writes; ``errors`` are problems that warrant a retry later
    (a pod's Node not known yet) even though the rest of the plan is sound."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


PortKey = tuple[tuple[str, int, str, str], ...]
# Address type -> port set -> (the slice ports, endpoint identity -> endpoint).
Desired = dict[str, dict[PortKey, tuple[list[Obj], dict[tuple[str, ...], Obj]]]]


def owned_by(slice_: Obj, owner: Obj, kind: str = "Service") -> bool:
    uid = owner["metadata"].get("uid")
    return any(
        ref.get("uid") == uid and ref.get("kind") == kind and ref.get("apiVersion") == "v1"
        for ref in slice_["metadata"].get("ownerReferences") or []
    )


@dataclass(frozen=True)
class Owner:
    """Whose slices these are: the object, its kind, and its slices' labels."""

    obj: Obj
    kind: str
    labels: Callable[[dict[str, str] | None], tuple[dict[str, str], bool]]

    def owns(self, s: Obj) -> bool:
        return owned_by(s, self.obj, self.kind)

    def new_slice(self, ports: list[Obj], address_type: str) -> Obj:
        md = self.obj["metadata"]
        labels, _ = self.labels(None)
        ref = podcontrol.controller_ref({**self.obj, "apiVersion": "v1", "kind": self.kind})
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": f"{md['name']}-",
                "namespace": md.get("namespace", ""),
                "labels": labels,
                "ownerReferences": [ref],
            },
            "addressType": address_type,
            "endpoints": [],
            "ports": ports,
        }


def service_owner(service: Obj) -> Owner:
    return Owner(service, "Service", lambda current: pe.slice_labels(service, current))


def new_slice(service: Obj, ports: list[Obj], address_type: str) -> Obj:
    return service_owner(service).new_slice(ports, address_type)


def plan(
    service: Obj,
    pods: list[Obj],
    existing: list[Obj],
    *,
    node: Callable[[str], Obj | None],
    max_endpoints: int = MAX_ENDPOINTS_PER_SLICE,
) -> Plan:
    """The writes that make ``existing`` (the slices this controller manages for
    ``service``) hold exactly the endpoints of ``pods``."""
    errors_: list[str] = []
    desired: Desired = {}
    for address_type in pe.service_address_types(service):
        desired[address_type] = _desired_from_pods(service, pods, address_type, node, errors_)
    result = plan_desired(service_owner(service), desired, existing, max_endpoints=max_endpoints)
    result.errors += errors_
    return result


def _desired_from_pods(
    service: Obj,
    pods: list[Obj],
    address_type: str,
    node: Callable[[str], Obj | None],
    problems: list[str],
) -> dict[PortKey, tuple[list[Obj], dict[tuple[str, ...], Obj]]]:
    out: dict[PortKey, tuple[list[Obj], dict[tuple[str, ...], Obj]]] = {}
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    for pod in pods:
        if not pe.should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        ports = pe.endpoint_ports(service, pod)
        _, bucket = out.setdefault(pe.port_map_key(ports), (ports, {}))
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        node_obj = node(node_name) if node_name else None
        if node_name and node_obj is None and not publish:
            # Retried later; meanwhile the slice is written without the pod.
            problems.append(
                f"skipping Pod {pod['metadata']['name']} for Service "
                f"{service['metadata'].get('namespace')}/{service['metadata']['name']}: "
                f"Node {node_name} Not Found"
            )
            continue
        endpoint = pe.pod_to_endpoint(pod, node_obj, service, address_type)
        if endpoint["addresses"]:
            bucket[pe.endpoint_key(endpoint)] = endpoint
    return out


def plan_desired(
    owner: Owner,
    desired: Desired,
    existing: list[Obj],
    *,
    max_endpoints: int = MAX_ENDPOINTS_PER_SLICE,
) -> Plan:
    """The writes that make ``existing`` hold exactly ``desired`` (by address type)."""
    result = Plan()
    by_type: dict[str, list[Obj]] = {}
    for s in existing:
        if s.get("addressType") not in desired:
            result.delete.append(s)
        else:
            by_type.setdefault(str(s["addressType"]), []).append(s)
    for address_type, wanted in desired.items():
        _plan_address_type(
            result, owner, wanted, by_type.get(address_type, []), address_type, max_endpoints
        )
    _creates_become_updates(result, owner)
    return result


def _plan_address_type(
    result: Plan,
    owner: Owner,
    desired: dict[PortKey, tuple[list[Obj], dict[tuple[str, ...], Obj]]],
    existing: list[Obj],
    address_type: str,
    max_endpoints: int,
) -> None:
    to_delete: list[Obj] = []
    existing_by_ports: dict[PortKey, list[Obj]] = {}
    for s in existing:
        if owner.owns(s):
            existing_by_ports.setdefault(pe.port_map_key(s.get("ports") or []), []).append(s)
        else:
            to_delete.append(s)  # left by an earlier owner of the same name
    created: list[Obj] = []
    for key, (ports, wanted) in desired.items():
        c, u, d = _plan_port_map(
            owner, existing_by_ports.get(key, []), dict(wanted), ports, address_type,
            max_endpoints,
        )  # fmt: skip
        created += c
        result.update += u
        to_delete += d
    for key, slices in existing_by_ports.items():
        if key not in desired:
            to_delete += slices
    if len(existing) == len(to_delete) and not created:
        placeholder = owner.new_slice([], address_type)
        if len(to_delete) == 1 and _same_placeholder(to_delete[0], placeholder):
            to_delete = []  # the placeholder is already there
        else:
            created.append(placeholder)
    result.create += created
    result.delete += to_delete


def _same_placeholder(current: Obj, placeholder: Obj) -> bool:
    cm, pm = current["metadata"], placeholder["metadata"]
    return (
        cm.get("namespace") == pm.get("namespace")
        and (cm.get("labels") or {}) == pm["labels"]
        and (cm.get("ownerReferences") or []) == pm["ownerReferences"]
        and not current.get("endpoints")
        and not current.get("ports")
        and current.get("addressType") == placeholder["addressType"]
    )


def _plan_port_map(
    owner: Owner,
    existing: list[Obj],
    desired: dict[tuple[str, ...], Obj],
    ports: list[Obj],
    address_type: str,
    max_endpoints: int,
) -> tuple[list[Obj], list[Obj], list[Obj]]:
    by_name: dict[str, Obj] = {}
    unchanged: list[str] = []
    to_update: list[str] = []
    to_delete: list[str] = []
    # 1. Keep what is still wanted in each slice; note the slices that changed.
    for s in existing:
        name = s["metadata"]["name"]
        by_name[name] = s
        kept: list[Obj] = []
        changed = False
        for endpoint in s.get("endpoints") or []:
            want = desired.pop(pe.endpoint_key(endpoint), None)
            if want is not None:
                kept.append(want)
                changed = changed or not pe.endpoints_equal(want, endpoint)
        labels, labels_changed = owner.labels(s["metadata"].get("labels"))
        if changed or len(kept) != len(s.get("endpoints") or []):
            if not kept:
                to_delete.append(name)
            else:
                by_name[name] = _with(s, endpoints=kept, labels=labels)
                to_update.append(name)
        elif labels_changed:
            by_name[name] = _with(s, endpoints=list(s.get("endpoints") or []), labels=labels)
            to_update.append(name)
        else:
            unchanged.append(name)
    remaining = list(desired.values())
    # 2. Fill the slices being written anyway, fullest first.
    if remaining and to_update:
        for name in sorted(to_update, key=lambda n: -len(by_name[n]["endpoints"])):
            eps = by_name[name]["endpoints"]
            while remaining and len(eps) < max_endpoints:
                eps.append(remaining.pop())
    # 3. The rest goes into one unchanged slice it fits in, or into new slices.
    creates: list[Obj] = []
    while remaining:
        target: Obj | None = None
        if len(remaining) < max_endpoints and unchanged:
            best = None
            for name in unchanged:
                room = max_endpoints - len(remaining) - len(by_name[name].get("endpoints") or [])
                if room >= 0 and (best is None or room < best[0]):
                    best = (room, name)
            if best is not None:
                name = best[1]
                target = _with(by_name[name], endpoints=list(by_name[name].get("endpoints") or []))
                by_name[name] = target
                unchanged.remove(name)
                to_update.append(name)
        if target is None:
            target = owner.new_slice(ports, address_type)
            creates.append(target)
        eps = target["endpoints"]
        while remaining and len(eps) < max_endpoints:
            eps.append(remaining.pop())
    return creates, [by_name[n] for n in to_update], [by_name[n] for n in to_delete]


def _with(s: Obj, *, endpoints: list[Obj], labels: dict[str, str] | None = None) -> Obj:
    """A copy of the cached slice ``s`` to write (the cache's objects are read-only)."""
    md = dict(s["metadata"])
    if labels is not None:
        md["labels"] = labels
    return {**s, "metadata": md, "endpoints": endpoints}


def _creates_become_updates(result: Plan, owner: Owner) -> None:
    """A slice about to be deleted is reused for a slice about to be created."""
    i = 0
    while i < len(result.delete) and result.create:
        doomed = result.delete[i]
        fresh = result.create[-1]
        if doomed.get("addressType") == fresh["addressType"] and owner.owns(doomed):
            md = dict(doomed["metadata"])
            md["labels"] = fresh["metadata"]["labels"]
            md["ownerReferences"] = doomed["metadata"].get("ownerReferences")
            result.create.pop()
            result.update.append({**fresh, "metadata": md})
            result.delete.pop(i)
        else:
            i += 1


async def apply(
    client: rest.Client,
    resource: resources.Resource,
    owner: Obj,
    p: Plan,
    *,
    trigger_time: str,
    on_written: Callable[[Obj], None],
    on_deleted: Callable[[Obj], None],
) -> None:
    """Create, update and delete as planned. A terminating namespace drops the
    creates (they would keep failing); an owner being deleted gets none."""
    ns = owner["metadata"].get("namespace", "")
    if not owner["metadata"].get("deletionTimestamp"):
        for s in p.create:
            _stamp(s, trigger_time)
            try:
                on_written(await client.create(resource, s, ns))
            except errors.StatusError as exc:
                if errors.has_cause(exc, NAMESPACE_TERMINATING):
                    return
                raise
    for s in p.update:
        _stamp(s, trigger_time)
        on_written(await client.update(resource, s))
    for s in p.delete:
        try:
            await client.delete(resource, s["metadata"]["name"], ns)
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
        on_deleted(s)


def _stamp(s: Obj, trigger_time: str) -> None:
    md = s["metadata"]
    annotations = dict(md.get("annotations") or {})
    if trigger_time:
        annotations[pe.TRIGGER_TIME_ANNOTATION] = trigger_time
    else:
        annotations.pop(pe.TRIGGER_TIME_ANNOTATION, None)
    if annotations:
        md["annotations"] = annotations
    else:
        md.pop("annotations", None)
