"""API discovery: what groups, versions and resources this server offers.

Both forms kubectl understands are served: the legacy walk (``/api``,
``/api/v1``, ``/apis``, ``/apis/<group>/<version>``) and aggregated discovery
(``apidiscovery.k8s.io/v2``, one document for ``/api`` and one for ``/apis``),
chosen by the Accept header as upstream does. Documents are built once at
start; they change only when the resource table does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from pilothouse.api import errors, resources

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"

_SUB_KIND_OVERRIDES: dict[tuple[str, str], str] = {
    ("services", "proxy"): "ServiceProxyOptions",
    ("nodes", "proxy"): "NodeProxyOptions",
    ("pods", "proxy"): "PodProxyOptions",
}


def _json(doc: Any) -> bytes:
    """Discovery documents are API objects: upstream's serializer ends them with a newline."""
    return orjson.dumps(doc) + b"\n"


def _sub_kind(r: resources.Resource, sub: str) -> tuple[str, str, str]:
    if (r.plural, sub) in _SUB_KIND_OVERRIDES:
        return "", "v1", _SUB_KIND_OVERRIDES[(r.plural, sub)]
    if sub in resources.SUBRESOURCE_KINDS:
        return resources.SUBRESOURCE_KINDS[sub]
    return r.group, r.version, r.kind


def _storage_hash(r: resources.Resource) -> str:
    digest = hashlib.sha256(f"{r.group}/{r.version}/{r.plural}".encode()).digest()
    import base64

    return base64.b64encode(digest[:8]).decode()


def resource_list(registry: resources.Registry, group: str, version: str) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for r in registry.in_group_version(group, version):
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular_name,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        if r.stored and "list" in r.verbs:
            entry["storageVersionHash"] = _storage_hash(r)
        out.append(entry)
        for sub in r.subresources:
            g, v, k = _sub_kind(r, sub)
            sub_entry: dict[str, Any] = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": list(resources.SUBRESOURCE_VERBS.get(sub, ("get",))),
            }
            if (g, v) != (r.group, r.version):
                sub_entry["group"] = g
                sub_entry["version"] = v
            out.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


def _aggregated_resources(
    registry: resources.Registry, group: str, version: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in registry.in_group_version(group, version):
        entry: dict[str, Any] = {
            "resource": r.plural,
            "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
            "scope": "Namespaced" if r.namespaced else "Cluster",
            "singularResource": r.singular_name,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        subs = []
        for sub in r.subresources:
            g, v, k = _sub_kind(r, sub)
            subs.append(
                {
                    "subresource": sub,
                    "responseKind": {"group": g, "version": v, "kind": k},
                    "verbs": list(resources.SUBRESOURCE_VERBS.get(sub, ("get",))),
                }
            )
        if subs:
            entry["subresources"] = subs
        out.append(entry)
    return out


@dataclass(frozen=True, slots=True)
class ExtensionVersion:
    """A group-version another API server serves behind this one (an APIService):
    its resources in the aggregated-discovery shape, and whether its server answered
    the last time it was asked."""

    version: str
    resources: tuple[dict[str, Any], ...]
    fresh: bool = True


# Groups served by aggregated API servers, in the order discovery lists them.
Extensions = list[tuple[str, list[ExtensionVersion]]]


class Discovery:
    """Prebuilt discovery documents and their handlers."""

    def __init__(self, registry: resources.Registry, *, server_address: str = "") -> None:
        self.registry = registry
        self.server_address = server_address
        self._legacy: dict[str, bytes] = {}
        self._aggregated: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.extensions: Extensions = []
        self._build()

    def refresh(self) -> None:
        """The resource table changed (a CRD): rebuild the documents."""
        self._build()

    def set_extensions(self, extensions: Extensions) -> None:
        """The aggregated API servers' groups changed: rebuild the documents."""
        self.extensions = extensions
        self._build()

    def _extension_groups(self) -> Extensions:
        """Extension versions of groups this server does not serve itself."""
        served = set(self.registry.group_versions)
        out: Extensions = []
        for group, versions in self.extensions:
            extra = [v for v in versions if (group, v.version) not in served]
            if extra:
                out.append((group, extra))
        return out

    def _build(self) -> None:
        reg = self.registry
        legacy: dict[str, bytes] = {}
        aggregated: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._fill(reg, legacy, aggregated)
        # Swapped whole, so a request never sees half a rebuild.
        self._legacy, self._aggregated = legacy, aggregated

    def _fill(
        self,
        reg: resources.Registry,
        legacy_out: dict[str, bytes],
        aggregated_out: dict[tuple[str, str], tuple[bytes, str]],
    ) -> None:
        api_versions: dict[str, Any] = {"kind": "APIVersions", "versions": ["v1"]}
        if self.server_address:
            api_versions["serverAddressByClientCIDRs"] = [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}
            ]
        legacy_out["/api"] = _json(api_versions)
        legacy_out["/api/v1"] = _json(resource_list(reg, "", "v1"))
        groups = []
        for group, versions in reg.groups().items():
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            g = {"name": group, "versions": gvs, "preferredVersion": gvs[0]}
            groups.append(g)
            legacy_out[f"/apis/{group}"] = _json({"kind": "APIGroup", "apiVersion": "v1", **g})
            for v in versions:
                legacy_out[f"/apis/{group}/{v}"] = _json(resource_list(reg, group, v))
        known = {g["name"]: g for g in groups}
        extensions = self._extension_groups()
        for group, ext_versions in extensions:
            gvs = [
                {"groupVersion": f"{group}/{v.version}", "version": v.version} for v in ext_versions
            ]
            if group in known:
                known[group]["versions"] = [*known[group]["versions"], *gvs]
                g = known[group]
            else:
                g = {"name": group, "versions": gvs, "preferredVersion": gvs[0]}
                groups.append(g)
            legacy_out[f"/apis/{group}"] = _json({"kind": "APIGroup", "apiVersion": "v1", **g})
        legacy_out["/apis"] = _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

        for version in ("v2", "v2beta1"):
            core = [
                {
                    "metadata": {"creationTimestamp": None},
                    "versions": [
                        {
                            "version": "v1",
                            "resources": _aggregated_resources(reg, "", "v1"),
                            "freshness": "Current",
                        }
                    ],
                }
            ]
            named: list[dict[str, Any]] = []
            for group, versions in reg.groups().items():
                named.append(
                    {
                        "metadata": {"name": group, "creationTimestamp": None},
                        "versions": [
                            {
                                "version": v,
                                "resources": _aggregated_resources(reg, group, v),
                                "freshness": "Current",
                            }
                            for v in versions
                        ],
                    }
                )
            by_name = {item["metadata"]["name"]: item for item in named}
            for group, ext_versions in extensions:
                entries = [
                    {
                        "version": v.version,
                        "resources": [dict(r) for r in v.resources],
                        "freshness": "Current" if v.fresh else "Stale",
                    }
                    for v in ext_versions
                ]
                if group in by_name:
                    by_name[group]["versions"].extend(entries)
                else:
                    named.append(
                        {
                            "metadata": {"name": group, "creationTimestamp": None},
                            "versions": entries,
                        }
                    )
            for path, items in (("/api", core), ("/apis", named)):
                doc: dict[str, Any] = {
                    "kind": "APIGroupDiscoveryList",
                    "apiVersion": f"apidiscovery.k8s.io/{version}",
                    "metadata": {},
                    "items": items,
                }
                raw = _json(doc)
                etag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
                aggregated_out[(path, version)] = (raw, etag)

    @staticmethod
    def _wants_aggregated(accept: str) -> str | None:
        for part in accept.split(","):
            fields = {
                f.split("=", 1)[0].strip(): f.split("=", 1)[1].strip()
                for f in part.split(";")[1:]
                if "=" in f
            }
            if (
                fields.get("g") == "apidiscovery.k8s.io"
                and fields.get("as") == "APIGroupDiscoveryList"
                and fields.get("v") in ("v2", "v2beta1")
            ):
                return fields["v"]
        return None

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/") or "/"
        if path in ("/api", "/apis"):
            version = self._wants_aggregated(request.headers.get("Accept", ""))
            if version is not None:
                raw, etag = self._aggregated[(path, version)]
                headers = {"ETag": etag, "Vary": "Accept"}
                if request.headers.get("If-None-Match") == etag:
                    return web.Response(status=304, headers=headers)
                return web.Response(
                    body=raw, headers={**headers, "Content-Type": AGGREGATED.format(v=version)}
                )
        raw_legacy = self._legacy.get(path)
        if raw_legacy is None:
            raise errors.StatusError(
                404, errors.NOT_FOUND, "the server could not find the requested resource"
            )
        return web.Response(body=raw_legacy, content_type="application/json")

    def is_discovery_path(self, path: str) -> bool:
        return (path.rstrip("/") or "/") in self._legacy
