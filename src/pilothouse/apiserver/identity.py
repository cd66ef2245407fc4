"""One API server's identity and access machinery, built once at start.

:class:`Identity` holds the service-account signing key, the token authenticators
(component tokens, ``--token-auth-file``, bootstrap tokens, ServiceAccount JWTs),
the request authenticator, the RBAC index and the authorizer chain, and hands the
rest of the server what it needs from them: RBAC's escalation checks (the
CertificateSigningRequest plugins are in the admission chain, built with this
authorizer), the review and TokenRequest handlers, the OIDC
discovery documents, and tokens for the components inside ``pilothouse server``
(each gets a random bearer token for its own user, kept in memory only, as
kube-apiserver's loopback token).

Everything reads the watch cache; nothing here awaits except the bootstrap of the
RBAC policy at start.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from pilothouse.apiserver import watchcache
from pilothouse.apiserver.admission import rbac as rbac_admission
from pilothouse.apiserver.authn import authenticator as authn
from pilothouse.apiserver.authn import bootstrap, serviceaccount, tokenfile
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import authorizer as authz
from pilothouse.apiserver.authz import bootstrap as policy
from pilothouse.apiserver.authz import node as node_authz
from pilothouse.apiserver.authz import rbac as rbac_authz
from pilothouse.apiserver.handlers import reviews, tokenrequest
from pilothouse.apiserver.registry.store import Admission, ResourceStore

OPENID_CONFIGURATION = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"


class Identity:
    def __init__(
        self,
        *,
        pki_dir: Path,
        cache: watchcache.WatchCache,
        token_auth_file: Path | None = None,
        anonymous: bool = True,
    ) -> None:
        self.cache = cache
        self.key = serviceaccount.SigningKey.ensure(pki_dir)
        self.issuer = serviceaccount.TokenIssuer(self.key)
        self.component_tokens = authn.StaticTokens()
        tokens: list[authn.TokenAuthenticator] = [self.component_tokens]
        if token_auth_file is not None:
            tokens.append(authn.TokenFileAdapter(tokenfile.TokenFile.load(token_auth_file)))
        tokens.append(bootstrap.BootstrapTokenAuthenticator(self._get_secret))
        self.validator = serviceaccount.TokenValidator(self.key, self.get)
        tokens.append(self.validator)
        self.authenticator = authn.RequestAuthenticator(tokens=tokens, anonymous=anonymous)
        self.index = rbac_authz.RBACIndex(cache)
        self.node = node_authz.NodeAuthorizer(
            pods_in=self._pods_in, all_pods=self._all_pods, get=self.get
        )
        self.authorizer = authz.Authorizer([self.node, rbac_authz.RBACAuthorizer(self.index)])
        self.reviews = reviews.Reviews(
            authenticator=self.authenticator, authorizer=self.authorizer, index=self.index
        )

    # --- the watch cache, by resource ------------------------------------------------
    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A core/v1 object from the watch cache (None when absent)."""
        cache = self.cache.caches.get(f"/registry/{plural}/")
        if cache is None:
            return None
        key = (
            f"/registry/{plural}/{namespace}/{name}" if namespace else f"/registry/{plural}/{name}"
        )
        entry = cache.objects.get(key)
        return entry.obj if entry is not None else None

    def _get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("secrets", namespace, name)

    def _pods_in(self, namespace: str) -> list[dict[str, Any]]:
        cache = self.cache.caches.get("/registry/pods/")
        if cache is None or not namespace:
            return []
        return [e.obj for e in cache.snapshot(f"/registry/pods/{namespace}/")]

    def _all_pods(self) -> list[dict[str, Any]]:
        cache = self.cache.caches.get("/registry/pods/")
        return [e.obj for e in cache.objects.values()] if cache is not None else []

    # --- what the server wires in ------------------------------------------------------
    def component_token(self, user: user_module.UserInfo) -> str:
        """A fresh bearer token for a component of this server acting as ``user``."""
        token = secrets.token_urlsafe(32)
        self.component_tokens.add(token, user)
        return token

    def registry_checks(self) -> list[Admission]:
        """What RBAC's registries check on every write (not admission plugins upstream)."""
        return [rbac_admission.EscalationCheck(self.authorizer, self.index)]

    def subresources(self, stores: dict[tuple[str, str], ResourceStore]) -> dict[str, Any]:
        token_api = tokenrequest.TokenRequestAPI(
            issuer=self.issuer,
            pods=stores[("", "pods")],
            secrets=stores[("", "secrets")],
            nodes=stores[("", "nodes")],
        )
        return {
            "token": token_api.handle,
            "approval": tokenrequest.ApprovalAPI().handle,
        }

    def api_services(self) -> dict[tuple[str, str], Any]:
        return {
            ("authentication.k8s.io", "v1"): self.reviews.handle,
            ("authorization.k8s.io", "v1"): self.reviews.handle,
        }

    def routes(self) -> dict[str, Any]:
        async def configuration(request: web.Request) -> web.Response:
            # The address the caller reached us on (upstream: --service-account-jwks-uri,
            # or its external address).
            doc = {
                "issuer": self.issuer.issuer,
                "jwks_uri": f"https://{request.host}{JWKS_PATH}",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
            return web.Response(body=orjson.dumps(doc), content_type="application/json")

        async def jwks(request: web.Request) -> web.Response:
            return web.Response(
                body=orjson.dumps(self.key.jwks()), content_type="application/jwk-set+json"
            )

        return {OPENID_CONFIGURATION: configuration, JWKS_PATH: jwks}

    async def ensure_policy(self, store_for: Any) -> None:
        group = "rbac.authorization.k8s.io"
        await policy.ensure_policy(
            cluster_role_store=store_for(group, "v1", "clusterroles"),
            cluster_role_binding_store=store_for(group, "v1", "clusterrolebindings"),
            role_store=store_for(group, "v1", "roles"),
            role_binding_store=store_for(group, "v1", "rolebindings"),
        )
