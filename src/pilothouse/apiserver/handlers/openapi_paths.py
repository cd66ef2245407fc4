"""The ``paths`` of an OpenAPI v3 group-version document, shaped as upstream's.

One path item per REST path the resource table offers (collection, item,
all-namespaces list, the deprecated ``/watch/`` paths, subresources), with the
operations kube-apiserver's installer registers (``pkg/endpoints/installer.go``):
operation ids such as ``patchAppsV1NamespacedDeployment``, ``x-kubernetes-action``
(``get list watch watchlist post put patch delete deletecollection connect``),
``x-kubernetes-group-version-kind`` (the subresource's own kind for ``scale``,
``binding``, ``eviction`` … as upstream), the query parameters, request bodies and
responses. Media types are 1.32's defaults (CBOR is off).

Two clients read these closely. kubectl's ``QueryParamVerifierV3`` looks for a
PATCH operation carrying the kind's group-version-kind and a ``fieldValidation``
query parameter *on the operation*; without it kubectl falls back to client-side
validation, which needs OpenAPI v2 protobuf. ``kubectl apply`` computes
strategic-merge patches from these documents when that PATCH operation accepts
``application/strategic-merge-patch+json``. Parameters shared by every operation
of a path move to the path item, as upstream does — except ``fieldValidation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilothouse.api import resources, schema
from pilothouse.apiserver.handlers import openapi_parts

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
STATUS, DELETE_OPTIONS, PATCH, WATCH_EVENT = (
    META + k for k in ("Status", "DeleteOptions", "Patch", "WatchEvent")
)
API_RESOURCE_LIST = META + "APIResourceList"

CONNECT_METHODS = ("delete", "get", "head", "options", "patch", "post", "put")
NEVER_SHARED = frozenset({"fieldValidation"})  # kubectl reads it from the PATCH operation

_PROXY_KINDS = {
    "pods": "PodProxyOptions",
    "nodes": "NodeProxyOptions",
    "services": "ServiceProxyOptions",
}
_CONNECT_KINDS = {
    "exec": "PodExecOptions",
    "attach": "PodAttachOptions",
    "portforward": "PodPortForwardOptions",
}


def _article(kind: str) -> str:
    """Upstream's ``GetArticleForNoun(kind, " ")``."""
    if kind.endswith("s") and not kind.endswith("ss"):
        return " "
    return " an " if kind[0].lower() in "aeiou" else " a "


def friendly_group(group: str) -> str:
    """``""`` → ``core``, ``rbac.authorization.k8s.io`` → ``rbacAuthorization``."""
    if not group:
        return "core"
    parts = group.removesuffix(".k8s.io").split(".")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


@dataclass(frozen=True)
class _Kind:
    """A kind as operations name it: its definition and its group-version-kind."""

    group: str
    version: str
    kind: str

    @property
    def ref(self) -> str:
        return schema.definition_name(self.group, self.version, self.kind) or resources.schema_name(
            self.group, self.version, self.kind
        )

    @property
    def gvk(self) -> dict[str, str]:
        return {"group": self.group, "kind": self.kind, "version": self.version}


class GroupVersionPaths:
    """Builds the ``paths`` object of one group-version document."""

    def __init__(self, group: str, version: str) -> None:
        self.group, self.version = group, version
        self.prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        friendly = friendly_group(group)
        self.tag = f"{friendly}_{version}"
        self.infix = friendly[:1].upper() + friendly[1:] + version[:1].upper() + version[1:]
        self.paths: dict[str, dict[str, Any]] = {}
        self.refs: set[str] = {STATUS, DELETE_OPTIONS, PATCH, WATCH_EVENT, API_RESOURCE_LIST}

    def op_id(self, verb: str, rest: str) -> str:
        if verb == "deletecollection":
            return f"delete{self.infix}Collection{rest}"
        return f"{verb}{self.infix}{rest}"

    def add(self, path: str, method: str, operation: dict[str, Any]) -> None:
        self.paths.setdefault(path, {})[method] = operation

    def operation(
        self,
        *,
        verb: str,
        rest: str,
        action: str,
        description: str,
        kind: _Kind,
        params: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
        body: dict[str, Any] | None = None,
        responses: dict[str, Any],
    ) -> dict[str, Any]:
        op: dict[str, Any] = {
            "description": description,
            "operationId": self.op_id(verb, rest),
            "parameters": list(params),
            "responses": responses,
            "tags": [self.tag],
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": kind.gvk,
        }
        if body is not None:
            op["requestBody"] = body
        return op

    def body(self, ref: str, *, required: bool = True) -> dict[str, Any]:
        self.refs.add(ref)
        out: dict[str, Any] = {"content": openapi_parts.content(ref, ("*/*",))}
        if required:
            out["required"] = True
        return out

    def resource_list_path(self) -> None:
        self.add(
            self.prefix + "/",
            "get",
            {
                "description": "get available resources",
                "operationId": f"get{self.infix}APIResources",
                "responses": openapi_parts.responses(API_RESOURCE_LIST, ("200",)),
                "tags": [self.tag],
            },
        )

    def resource(self, r: resources.Resource) -> None:
        kind = _Kind(r.group, r.version, r.kind)
        list_kind = _Kind(r.group, r.version, r.list_kind)
        self.refs.update((kind.ref, list_kind.ref))
        ns = "Namespaced" if r.namespaced else ""
        scope = "/namespaces/{namespace}" if r.namespaced else ""
        collection = f"{self.prefix}{scope}/{r.plural}"
        item = f"{collection}/{{name}}"
        verbs = set(r.verbs)
        path_params = (
            [
                openapi_parts.path_param(
                    "namespace", "object name and auth scope, such as for teams and projects"
                )
            ]
            if r.namespaced
            else []
        )
        name_param = openapi_parts.path_param("name", f"name of the {r.kind}")
        lists = "list or watch" if "watch" in verbs else "list"
        if "list" in verbs:
            self.add(
                collection,
                "get",
                self.operation(
                    verb="list",
                    rest=ns + r.kind,
                    action="list",
                    kind=kind,
                    description=f"{lists} objects of kind {r.kind}",
                    params=[
                        *path_params,
                        openapi_parts.P["pretty"],
                        *(openapi_parts.P[p] for p in openapi_parts.LIST_PARAMS),
                    ],
                    responses=openapi_parts.responses(
                        list_kind.ref, ("200",), openapi_parts.STREAM_MEDIA
                    ),
                ),
            )
            if r.namespaced:
                self.add(
                    f"{self.prefix}/{r.plural}",
                    "get",
                    self.operation(
                        verb="list",
                        rest=r.kind + "ForAllNamespaces",
                        action="list",
                        kind=kind,
                        description=f"{lists} objects of kind {r.kind}",
                        params=[
                            openapi_parts.P["pretty"],
                            *(openapi_parts.P[p] for p in openapi_parts.LIST_PARAMS),
                        ],
                        responses=openapi_parts.responses(
                            list_kind.ref, ("200",), openapi_parts.STREAM_MEDIA
                        ),
                    ),
                )
        if "create" in verbs:
            self.add(
                collection,
                "post",
                self.operation(
                    verb="create",
                    rest=ns + r.kind,
                    action="post",
                    kind=kind,
                    description=f"create{_article(r.kind)}{r.kind}",
                    params=[
                        *path_params,
                        openapi_parts.P["pretty"],
                        *(openapi_parts.P[p] for p in openapi_parts.WRITE_PARAMS),
                    ],
                    body=self.body(kind.ref),
                    responses=openapi_parts.responses(kind.ref, ("200", "201", "202")),
                ),
            )
        if "deletecollection" in verbs:
            self.add(
                collection,
                "delete",
                self.operation(
                    verb="deletecollection",
                    rest=ns + r.kind,
                    action="deletecollection",
                    kind=kind,
                    description=f"delete collection of {r.kind}",
                    params=[
                        *path_params,
                        openapi_parts.P["pretty"],
                        *(openapi_parts.P[p] for p in openapi_parts.COLLECTION_DELETE_PARAMS),
                    ],
                    body=self.body(DELETE_OPTIONS, required=False),
                    responses=openapi_parts.responses(STATUS, ("200",)),
                ),
            )
        item_params = [name_param, *path_params, openapi_parts.P["pretty"]]
        if "get" in verbs:
            self.add(
                item,
                "get",
                self.operation(
                    verb="read",
                    rest=ns + r.kind,
                    action="get",
                    kind=kind,
                    description=f"read the specified {r.kind}",
                    params=item_params,
                    responses=openapi_parts.responses(kind.ref, ("200",)),
                ),
            )
        if "update" in verbs:
            self.add(
                item,
                "put",
                self.replace(
                    kind, kind, rest=ns + r.kind, what=f"the specified {r.kind}", params=item_params
                ),
            )
        if "patch" in verbs:
            self.add(
                item,
                "patch",
                self.patch(
                    kind, kind, rest=ns + r.kind, what=f"the specified {r.kind}", params=item_params
                ),
            )
        if "delete" in verbs:
            self.add(
                item,
                "delete",
                self.operation(
                    verb="delete",
                    rest=ns + r.kind,
                    action="delete",
                    kind=kind,
                    description=f"delete{_article(r.kind)}{r.kind}",
                    params=[
                        *item_params,
                        *(openapi_parts.P[p] for p in openapi_parts.DELETE_PARAMS),
                    ],
                    body=self.body(DELETE_OPTIONS, required=False),
                    responses=openapi_parts.responses(STATUS, ("200", "202")),
                ),
            )
        if "watch" in verbs:
            self.watch_paths(r, kind, ns, scope, path_params, name_param)
        for sub in r.subresources:
            self.subresource(r, sub, kind, ns, item, item_params)

    def replace(
        self, kind: _Kind, sub_kind: _Kind, *, rest: str, what: str, params: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return self.operation(
            verb="replace",
            rest=rest,
            action="put",
            kind=sub_kind,
            description=f"replace {what}",
            params=[*params, *(openapi_parts.P[p] for p in openapi_parts.WRITE_PARAMS)],
            body=self.body(sub_kind.ref),
            responses=openapi_parts.responses(sub_kind.ref, ("200", "201")),
        )

    def patch(
        self, kind: _Kind, sub_kind: _Kind, *, rest: str, what: str, params: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return self.operation(
            verb="patch",
            rest=rest,
            action="patch",
            kind=sub_kind,
            description=f"partially update {what}",
            params=[
                *params,
                openapi_parts.P["dryRun"],
                openapi_parts.PATCH_FIELD_MANAGER,
                openapi_parts.P["fieldValidation"],
                openapi_parts.P["force"],
            ],
            body={
                "content": openapi_parts.content(PATCH, openapi_parts.PATCH_MEDIA),
                "required": True,
            },
            responses=openapi_parts.responses(sub_kind.ref, ("200", "201")),
        )

    def watch_paths(
        self,
        r: resources.Resource,
        kind: _Kind,
        ns: str,
        scope: str,
        path_params: list[dict[str, Any]],
        name_param: dict[str, Any],
    ) -> None:
        watch_params = [
            openapi_parts.P["pretty"],
            *(openapi_parts.P[p] for p in openapi_parts.LIST_PARAMS),
        ]
        events = openapi_parts.responses(WATCH_EVENT, ("200",), openapi_parts.STREAM_MEDIA)
        deprecated = ". deprecated: use the 'watch' parameter with a list operation instead"
        self.add(
            f"{self.prefix}/watch{scope}/{r.plural}",
            "get",
            self.operation(
                verb="watch",
                rest=f"{ns}{r.kind}List",
                action="watchlist",
                kind=kind,
                description=f"watch individual changes to a list of {r.kind}{deprecated}.",
                params=[*path_params, *watch_params],
                responses=events,
            ),
        )
        self.add(
            f"{self.prefix}/watch{scope}/{r.plural}/{{name}}",
            "get",
            self.operation(
                verb="watch",
                rest=ns + r.kind,
                action="watch",
                kind=kind,
                description=f"watch changes to an object of kind {r.kind}{deprecated}, "
                "filtered to a single item with the 'fieldSelector' parameter.",
                params=[name_param, *path_params, *watch_params],
                responses=events,
            ),
        )
        if r.namespaced:
            self.add(
                f"{self.prefix}/watch/{r.plural}",
                "get",
                self.operation(
                    verb="watch",
                    rest=f"{r.kind}ListForAllNamespaces",
                    action="watchlist",
                    kind=kind,
                    description=f"watch individual changes to a list of {r.kind}{deprecated}.",
                    params=watch_params,
                    responses=events,
                ),
            )

    def subresource(
        self,
        r: resources.Resource,
        sub: str,
        kind: _Kind,
        ns: str,
        item: str,
        item_params: list[dict[str, Any]],
    ) -> None:
        verbs = resources.SUBRESOURCE_VERBS.get(sub, ())
        path = f"{item}/{sub}"
        rest = ns + r.kind + sub[:1].upper() + sub[1:]
        what = f"{sub} of the specified {r.kind}"
        if sub in ("exec", "attach", "portforward", "proxy"):
            self.connect(r, sub, ns, path, item_params)
            return
        sub_kind = (
            _Kind(*resources.SUBRESOURCE_KINDS[sub]) if sub in resources.SUBRESOURCE_KINDS else kind
        )
        self.refs.add(sub_kind.ref)
        if sub == "log":
            self.add(
                path,
                "get",
                self.operation(
                    verb="read",
                    rest=rest,
                    action="get",
                    kind=kind,
                    description=f"read {what}",
                    params=[*item_params, *openapi_parts.LOG_PARAMS],
                    responses=openapi_parts.string_responses(
                        (
                            "application/json",
                            "application/vnd.kubernetes.protobuf",
                            "application/yaml",
                            "text/plain",
                        )
                    ),
                ),
            )
            return
        if "get" in verbs:
            self.add(
                path,
                "get",
                self.operation(
                    verb="read",
                    rest=rest,
                    action="get",
                    kind=sub_kind,
                    description=f"read {what}",
                    params=item_params,
                    responses=openapi_parts.responses(sub_kind.ref, ("200",)),
                ),
            )
        if "update" in verbs:
            self.add(
                path, "put", self.replace(kind, sub_kind, rest=rest, what=what, params=item_params)
            )
        if "patch" in verbs:
            self.add(
                path, "patch", self.patch(kind, sub_kind, rest=rest, what=what, params=item_params)
            )
        if "create" in verbs:
            self.add(
                path,
                "post",
                self.operation(
                    verb="create",
                    rest=rest,
                    action="post",
                    kind=sub_kind,
                    description=f"create {sub} of{_article(r.kind)}{r.kind}",
                    params=[
                        *item_params,
                        *(openapi_parts.P[p] for p in openapi_parts.WRITE_PARAMS),
                    ],
                    body=self.body(sub_kind.ref),
                    responses=openapi_parts.responses(sub_kind.ref, ("200", "201", "202")),
                ),
            )

    def connect(
        self, r: resources.Resource, sub: str, ns: str, path: str, item_params: list[dict[str, Any]]
    ) -> None:
        options = _PROXY_KINDS.get(r.plural, "") if sub == "proxy" else _CONNECT_KINDS[sub]
        kind = _Kind("", "v1", options or r.kind)
        self.refs.add(kind.ref)
        params = [p for p in item_params if p["name"] != "pretty"]
        methods = CONNECT_METHODS if sub == "proxy" else ("get", "post")
        targets = [(path, "", [*params, *openapi_parts.CONNECT_PARAMS[sub]])]
        if sub == "proxy":
            with_path = [*params, openapi_parts.path_param("path", "path to the resource")]
            targets.append((path + "/{path}", "WithPath", with_path))
        for target, suffix, target_params in targets:
            for method in methods:
                rest = method.title() + ns + r.kind + sub[:1].upper() + sub[1:] + suffix
                self.add(
                    target,
                    method,
                    self.operation(
                        verb="connect",
                        rest=rest,
                        action="connect",
                        kind=kind,
                        description=f"connect {method.upper()} requests to {sub} of {r.kind}",
                        params=target_params,
                        responses=openapi_parts.string_responses(("*/*",)),
                    ),
                )

    def finish(self) -> dict[str, dict[str, Any]]:
        """The paths, sorted, with parameters shared by all operations moved up."""
        out: dict[str, dict[str, Any]] = {}
        for path in sorted(self.paths):
            item = self.paths[path]
            operations = list(item.values())
            shared = [
                p
                for p in operations[0].get("parameters", [])
                if p["name"] not in NEVER_SHARED
                and all(
                    any(q is p or q == p for q in op.get("parameters", [])) for op in operations[1:]
                )
            ]
            shared_keys = {(p["name"], p["in"]) for p in shared}
            for op in operations:
                own = [
                    p for p in op.pop("parameters", []) if (p["name"], p["in"]) not in shared_keys
                ]
                if own:
                    op["parameters"] = sorted(own, key=lambda p: p["name"])
            if shared:
                item["parameters"] = sorted(shared, key=lambda p: p["name"])
            out[path] = item
        return out


def build(
    registry: resources.Registry, group: str, version: str
) -> tuple[dict[str, Any], set[str]]:
    """The paths of one group-version and the definitions they refer to."""
    builder = GroupVersionPaths(group, version)
    builder.resource_list_path()
    for r in registry.in_group_version(group, version):
        builder.resource(r)
    return builder.finish(), builder.refs
