"""TokenRequest (``serviceaccounts/NAME/token``) and CSR approval (``…/approval``).

``POST …/serviceaccounts/NAME/token`` mints a JWT for the account (``kubectl create
token``), optionally bound to a Pod, Secret or Node the account may be bound to;
the node agent asks for one per pod that mounts a token. A request for 3607 s with
the API's audience and a pod — what ServiceAccount admission writes — gets a
year-long token whose ``warnafter`` is an hour, as upstream extends them.

``PUT …/certificatesigningrequests/NAME/approval`` sets the Approved or Denied
condition (``kubectl certificate approve|deny``) for a user allowed to approve for
the request's signer.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pilothouse.api import errors, meta, resources
from pilothouse.api.meta import Obj
from pilothouse.apiserver import negotiation
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver.admission import noderestriction
from pilothouse.apiserver.authn import serviceaccount
from pilothouse.apiserver.handlers import body, render
from pilothouse.apiserver.handlers.options import WriteParams
from pilothouse.apiserver.registry.store import ResourceStore
from pilothouse.apiserver.registry.strategies import certificates as csr_strategy

TOKEN_REQUEST = resources.Resource("authentication.k8s.io", "v1", "TokenRequest", "token", True)
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 2**32 - 1


class TokenRequestAPI:
    def __init__(
        self,
        *,
        issuer: serviceaccount.TokenIssuer,
        pods: ResourceStore,
        secrets: ResourceStore,
        nodes: ResourceStore,
        audiences: tuple[str, ...] = serviceaccount.API_AUDIENCES,
        extend_expiration: bool = True,
    ) -> None:
        self.issuer = issuer
        self.pods = pods
        self.secrets = secrets
        self.nodes = nodes
        self.audiences = audiences
        self.extend_expiration = extend_expiration

    async def handle(
        self, request: web.Request, store: ResourceStore, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        if request.method != "POST":
            raise errors.method_not_allowed("")
        write = WriteParams.parse(request.query, options_kind="CreateOptions")
        warnings: list[str] = []
        obj = body.decode_object(
            await body.read(request),
            request.headers.get("Content-Type", ""),
            resource=store.resource,
            kind="TokenRequest",
            api_version="authentication.k8s.io/v1",
            field_validation=write.field_validation,
            warnings=warnings,
        )
        spec: dict[str, Any] = obj.setdefault("spec", {})
        if spec.get("expirationSeconds") is None:
            spec["expirationSeconds"] = DEFAULT_EXPIRATION
        seconds = spec["expirationSeconds"]
        problems = []
        if not isinstance(seconds, int) or seconds < MIN_EXPIRATION:
            problems.append(
                errors.invalid_value(
                    "spec.expirationSeconds",
                    seconds,
                    "may not specify a duration less than 10 minutes",
                )
            )
        elif seconds > MAX_EXPIRATION:
            problems.append(errors.too_long("spec.expirationSeconds", MAX_EXPIRATION))
        if problems:
            raise errors.invalid("TokenRequest", "authentication.k8s.io", info.name, problems)
        account = await store.get(info.namespace, info.name)
        pod = secret = node = None
        ref = spec.get("boundObjectRef")
        if isinstance(ref, dict) and ref:
            pod, secret, node = await self._bound(ref, info)
        self._node_restriction(info, pod)
        audiences = list(spec.get("audiences") or []) or list(self.audiences)
        spec["audiences"] = audiences
        expiration, warn_after = seconds, 0
        if (
            self.extend_expiration
            and pod is not None
            and seconds == serviceaccount.WARN_ONLY_EXPIRATION
            and set(audiences) <= set(self.audiences)
        ):
            expiration, warn_after = serviceaccount.EXTENDED_EXPIRATION, seconds
        now = meta.parse_time(meta.now()) or 0.0
        issued = self.issuer.issue(
            account,
            audiences=audiences,
            expiration_seconds=expiration,
            pod=pod,
            secret=secret,
            node=node,
            warn_after_seconds=warn_after,
            now=now,
        )
        answer = {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": info.name,
                "namespace": info.namespace,
                "creationTimestamp": None,
            },
            "spec": {**spec, "boundObjectRef": ref if isinstance(ref, dict) and ref else None},
            "status": {
                "token": issued.token,
                "expirationTimestamp": meta.format_time(now + seconds),
            },
        }
        output = negotiation.negotiate(request.headers.get("Accept"))
        return render.response(negotiation.encode(answer, output.media_type), output, 201, warnings)

    def _node_restriction(self, info: request_info.RequestInfo, pod: Obj | None) -> None:
        """A node asks only for tokens bound to pods bound to it (NodeRestriction)."""
        requester = noderestriction.requesting_node()
        if requester is None:
            return
        if pod is None:
            why = "node requested token not bound to a pod"
        elif (pod.get("spec") or {}).get("nodeName") != requester:
            why = "node requested token bound to a pod scheduled on a different node"
        else:
            return
        raise errors.forbidden("serviceaccounts", "", info.name, why)

    async def _bound(
        self, ref: dict[str, Any], info: request_info.RequestInfo
    ) -> tuple[Obj | None, Obj | None, Obj | None]:
        api_version = str(ref.get("apiVersion") or "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        version = api_version.rpartition("/")[2]
        kind = str(ref.get("kind") or "")
        name = str(ref.get("name") or "")
        pod = secret = node = None
        if group == "" and kind == "Pod":
            pod = await self.pods.get(info.namespace, name)
            runs_as = (pod.get("spec") or {}).get("serviceAccountName") or ""
            if runs_as != info.name:
                raise errors.bad_request(
                    f'cannot bind token for serviceaccount "{info.name}" to pod running with '
                    f'serviceaccount "{runs_as}"'
                )
            uid = pod["metadata"].get("uid")
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name:
                node_entry = await self.nodes.current("", node_name)
                node = node_entry.obj if node_entry is not None else None
        elif group == "" and kind == "Secret":
            secret = await self.secrets.get(info.namespace, name)
            uid = secret["metadata"].get("uid")
        elif group == "" and kind == "Node":
            node = await self.nodes.get("", name)
            uid = node["metadata"].get("uid")
        else:
            raise errors.bad_request(
                f"cannot bind token to object of type {group}/{version}, Kind={kind}"
            )
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.conflict(
                kind,
                group,
                name,
                f"the UID in the bound object reference ({ref['uid']}) does not match the UID in "
                f"record ({uid}). The object might have been deleted and then recreated",
            )
        return pod, secret, node


class ApprovalAPI:
    """``certificatesigningrequests/NAME/approval``: GET, and PUT of the conditions
    (who may approve is CertificateApproval's question, in the admission chain)."""

    async def handle(
        self, request: web.Request, store: ResourceStore, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        output = negotiation.negotiate(request.headers.get("Accept"))
        if request.method == "GET":
            obj = await store.get("", info.name)
            return render.response(render.object_body(store.resource, obj, output), output)
        if request.method != "PUT":
            raise errors.method_not_allowed("")
        write = WriteParams.parse(request.query, options_kind="UpdateOptions")
        warnings: list[str] = []
        wanted = body.decode_object(
            await body.read(request),
            request.headers.get("Content-Type", ""),
            resource=store.resource,
            field_validation=write.field_validation,
            warnings=warnings,
        )
        body_name = (wanted.get("metadata") or {}).get("name")
        if body_name and body_name != info.name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({info.name})"
            )

        async def mutate(old: Obj) -> Obj:
            return csr_strategy.approval_update(wanted, old)

        updated = await store.guaranteed_update(
            "", info.name, mutate, dry_run=write.dry_run, subresource="approval"
        )
        return render.response(
            render.object_body(store.resource, updated, output), output, 200, warnings
        )
