"""Reviews: answered on POST, never stored (authentication.k8s.io, authorization.k8s.io).

* ``SelfSubjectReview`` — who am I (``kubectl auth whoami``);
* ``TokenReview`` — is this bearer token valid, and whose is it;
* ``SelfSubjectAccessReview``, ``SubjectAccessReview``, ``LocalSubjectAccessReview`` —
  may I (or they) do this (``kubectl auth can-i``, ``--as``);
* ``SelfSubjectRulesReview`` — what may I do in a namespace (``kubectl auth can-i --list``).

Each returns the posted object with its status filled in (201), as upstream's REST
handlers for these kinds do.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pilothouse.api import errors, rbac
from pilothouse.api.meta import Obj
from pilothouse.apiserver import negotiation
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver.authn import authenticator as authn
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes as attrs_module
from pilothouse.apiserver.authz import authorizer as authz
from pilothouse.apiserver.authz import rbac as rbac_authz
from pilothouse.apiserver.handlers import body, render
from pilothouse.apiserver.handlers.options import WriteParams

AUTHN = "authentication.k8s.io"
AUTHZ = "authorization.k8s.io"


class Reviews:
    """The handlers of both groups, over the server's authenticator and authorizer."""

    def __init__(
        self,
        *,
        authenticator: authn.RequestAuthenticator,
        authorizer: authz.Authorizer,
        index: rbac_authz.RBACIndex,
    ) -> None:
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.index = index

    async def handle(
        self, request: web.Request, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        r = info.resource
        if request.method != "POST" or info.name:
            raise errors.method_not_allowed("")
        write = WriteParams.parse(request.query, options_kind="CreateOptions")
        warnings: list[str] = []
        obj = body.decode_object(
            await body.read(request),
            request.headers.get("Content-Type", ""),
            resource=r,
            field_validation=write.field_validation,
            warnings=warnings,
        )
        requestor = user_module.current() or user_module.ANONYMOUS
        handlers = {
            "selfsubjectreviews": self._self_subject_review,
            "tokenreviews": self._token_review,
            "selfsubjectaccessreviews": self._self_access_review,
            "subjectaccessreviews": self._access_review,
            "localsubjectaccessreviews": self._local_access_review,
            "selfsubjectrulesreviews": self._rules_review,
        }
        answer = handlers[r.plural](obj, requestor, info)
        answer.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        output = negotiation.negotiate(request.headers.get("Accept"))
        return render.response(negotiation.encode(answer, output.media_type), output, 201, warnings)

    # --- authentication.k8s.io ------------------------------------------------------
    def _self_subject_review(self, obj: Obj, requestor: user_module.UserInfo, _: Any) -> Obj:
        obj["status"] = {"userInfo": requestor.to_api()}
        return obj

    def _token_review(self, obj: Obj, requestor: user_module.UserInfo, _: Any) -> Obj:
        spec = obj.get("spec") or {}
        token = spec.get("token") or ""
        if not token:
            raise errors.invalid(
                "TokenReview", AUTHN, "", [errors.required("spec.token", "token must not be empty")]
            )
        audiences = tuple(spec.get("audiences") or ())
        user, problem = self.authenticator.authenticate_token(token, audiences=audiences or None)
        status: dict[str, Any] = {}
        if user is not None:
            status["authenticated"] = True
            status["user"] = user.to_api()
            status["audiences"] = (
                list(audiences) if audiences else ["https://kubernetes.default.svc.cluster.local"]
            )
        else:
            status["user"] = {}
            status["error"] = problem
        obj["status"] = status
        return obj

    # --- authorization.k8s.io -------------------------------------------------------
    def _attributes(
        self, kind: str, spec: Obj, user: user_module.UserInfo
    ) -> attrs_module.Attributes:
        resource_attrs = spec.get("resourceAttributes")
        url_attrs = spec.get("nonResourceAttributes")
        if bool(resource_attrs) == bool(url_attrs):
            field = "spec.resourceAttributes"
            raise errors.invalid(
                kind,
                AUTHZ,
                "",
                [
                    errors.invalid_value(
                        field,
                        errors.GoValue(
                            "nil" if resource_attrs is None else "&ResourceAttributes{}"
                        ),
                        "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    )
                ],
            )
        if url_attrs:
            return attrs_module.Attributes(
                user, str(url_attrs.get("verb") or ""), False, str(url_attrs.get("path") or "")
            )
        ra = resource_attrs or {}
        return attrs_module.Attributes(
            user,
            str(ra.get("verb") or ""),
            True,
            "",
            str(ra.get("group") or ""),
            str(ra.get("version") or ""),
            str(ra.get("namespace") or ""),
            str(ra.get("resource") or ""),
            str(ra.get("subresource") or ""),
            str(ra.get("name") or ""),
        )

    def _decide(self, obj: Obj, a: attrs_module.Attributes) -> Obj:
        allowed, reason = self.authorizer.authorize(a)
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        obj["status"] = status
        return obj

    def _self_access_review(self, obj: Obj, requestor: user_module.UserInfo, _: Any) -> Obj:
        a = self._attributes("SelfSubjectAccessReview", obj.get("spec") or {}, requestor)
        return self._decide(obj, a)

    def _subject(self, kind: str, spec: Obj) -> user_module.UserInfo:
        name = str(spec.get("user") or "")
        groups = tuple(str(g) for g in spec.get("groups") or [])
        if not name and not groups:
            raise errors.invalid(
                kind,
                AUTHZ,
                "",
                [
                    errors.invalid_value(
                        "spec.user", name, "at least one of user or group must be specified"
                    )
                ],
            )
        extra = {k: tuple(v or ()) for k, v in (spec.get("extra") or {}).items()}
        return user_module.UserInfo(name, groups, str(spec.get("uid") or ""), extra)

    def _access_review(self, obj: Obj, requestor: user_module.UserInfo, _: Any) -> Obj:
        spec = obj.get("spec") or {}
        a = self._attributes(
            "SubjectAccessReview", spec, self._subject("SubjectAccessReview", spec)
        )
        return self._decide(obj, a)

    def _local_access_review(
        self, obj: Obj, requestor: user_module.UserInfo, info: request_info.RequestInfo
    ) -> Obj:
        spec = obj.get("spec") or {}
        namespace = info.namespace
        md = obj.setdefault("metadata", {})
        if md.get("namespace") and md["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        md["namespace"] = namespace
        a = self._attributes(
            "LocalSubjectAccessReview", spec, self._subject("LocalSubjectAccessReview", spec)
        )
        if a.resource_request and a.namespace != namespace:
            raise errors.bad_request(
                f"spec.resourceAttributes.namespace must match namespace: {namespace}"
            )
        return self._decide(obj, a)

    def _rules_review(self, obj: Obj, requestor: user_module.UserInfo, _: Any) -> Obj:
        namespace = str((obj.get("spec") or {}).get("namespace") or "")
        resource_rules: list[dict[str, Any]] = []
        url_rules: list[dict[str, Any]] = []
        problems: list[str] = []
        incomplete = False
        # Only RBAC and the Node authorizer enumerate rules (upstream's privileged-group
        # authorizer does not): an administrator sees what cluster-admin grants.
        if rbac.node_name(requestor.name, requestor.groups) is not None:
            incomplete = True
            problems.append("node authorizer does not support user rule resolution")
        rules, errs = self.index.rules_for(requestor, namespace)
        problems.extend(errs)
        for rule in rules:
            if rule.get("resources"):
                entry = {
                    "verbs": list(rule.get("verbs") or []),
                    "apiGroups": list(rule.get("apiGroups") or []),
                    "resources": list(rule["resources"]),
                }
                if rule.get("resourceNames"):
                    entry["resourceNames"] = list(rule["resourceNames"])
                resource_rules.append(entry)
            if rule.get("nonResourceURLs"):
                url_rules.append(
                    {
                        "verbs": list(rule.get("verbs") or []),
                        "nonResourceURLs": list(rule["nonResourceURLs"]),
                    }
                )
        status: dict[str, Any] = {
            "resourceRules": resource_rules,
            "nonResourceRules": url_rules,
            "incomplete": incomplete,
        }
        if problems:
            status["evaluationError"] = rbac_authz.aggregate_message(problems)
        obj["status"] = status
        return obj
