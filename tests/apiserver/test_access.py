"""Authorization against a real API server: RBAC from its index, escalation checks,
the Node authorizer, impersonation and the access reviews.

Each test acts as users of its own: the server hands out component tokens for any
user (what it does for its own components), used over its private socket.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.apiserver.authn import user as user_module
from pilothouse.client import config, rest

R = resources.DEFAULT
NAMESPACES = R.by_path("", "v1", "namespaces")
PODS = R.by_path("", "v1", "pods")
SECRETS = R.by_path("", "v1", "secrets")
CONFIGMAPS = R.by_path("", "v1", "configmaps")
ROLES = R.by_path("rbac.authorization.k8s.io", "v1", "roles")
CLUSTER_ROLES = R.by_path("rbac.authorization.k8s.io", "v1", "clusterroles")
BINDINGS = R.by_path("rbac.authorization.k8s.io", "v1", "rolebindings")
CSRS = R.by_path("certificates.k8s.io", "v1", "certificatesigningrequests")
SSAR = R.by_path("authorization.k8s.io", "v1", "selfsubjectaccessreviews")
SAR = R.by_path("authorization.k8s.io", "v1", "subjectaccessreviews")
LSAR = R.by_path("authorization.k8s.io", "v1", "localsubjectaccessreviews")
RULES = R.by_path("authorization.k8s.io", "v1", "selfsubjectrulesreviews")
WHOAMI = R.by_path("authentication.k8s.io", "v1", "selfsubjectreviews")

Login = Callable[..., rest.Client]


@pytest.fixture
async def admin(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    async with rest.Client(config.local_socket(api_server.server.socket_path)) as c:
        yield c


@pytest.fixture
async def login(api_server: testing.ServerThread) -> AsyncIterator[Login]:
    made: list[rest.Client] = []

    def as_user(name: str, *groups: str, extra: dict | None = None) -> rest.Client:
        identity = api_server.server.identity
        assert identity is not None
        user = user_module.UserInfo(
            name, groups, extra={k: tuple(v) for k, v in (extra or {}).items()}
        )
        token = api_server.call(_token(identity, user))
        c = rest.Client(config.local_socket(api_server.server.socket_path).with_token(token))
        made.append(c)
        return c

    yield as_user
    for c in made:
        await c.close()


async def _token(identity, user) -> str:  # type: ignore[no-untyped-def]
    return str(identity.component_token(user))


async def _namespace(admin: rest.Client) -> str:
    ns = "acc-" + uuid.uuid4().hex[:8]
    await admin.create(NAMESPACES, {"metadata": {"name": ns}})
    return ns


def _binding(name: str, kind: str, role: str, subjects: list[dict]) -> dict:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects,
    }


async def test_rbac_follows_bindings_at_once(admin: rest.Client, login: Login) -> None:
    ns = await _namespace(admin)
    dana = login("dana", "qa")
    with pytest.raises(errors.StatusError) as exc:
        await dana.list(CONFIGMAPS, ns)
    assert exc.value.code == 403
    assert exc.value.message == (
        f'configmaps is forbidden: User "dana" cannot list resource "configmaps" in API group "" '
        f'in the namespace "{ns}"'
    )
    await admin.create(
        ROLES,
        {
            "metadata": {"name": "cm-reader"},
            "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["configmaps"]}],
        },
        ns,
    )
    await admin.create(
        BINDINGS, _binding("qa", "Role", "cm-reader", [{"kind": "Group", "name": "qa"}]), ns
    )
    assert (await dana.list(CONFIGMAPS, ns))["kind"] == "ConfigMapList"
    # The role loses the rule: refused again at once.
    await admin.patch(
        ROLES,
        "cm-reader",
        {"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]},
        ns,
    )
    with pytest.raises(errors.StatusError):
        await dana.list(CONFIGMAPS, ns)
    await admin.delete(BINDINGS, "qa", ns)
    # A binding to a role that does not exist says so in the 403.
    await admin.create(
        BINDINGS, _binding("dangling", "Role", "nowhere", [{"kind": "User", "name": "dana"}]), ns
    )
    with pytest.raises(errors.StatusError) as exc:
        await dana.list(CONFIGMAPS, ns)
    assert exc.value.message.endswith(
        f'in the namespace "{ns}": RBAC: role.rbac.authorization.k8s.io "nowhere" not found'
    )


async def test_the_index_looks_only_at_the_users_bindings(
    admin: rest.Client, login: Login, api_server: testing.ServerThread
) -> None:
    ns = await _namespace(admin)
    for i in range(300):
        await admin.create(
            BINDINGS,
            _binding(f"b{i}", "ClusterRole", "view", [{"kind": "User", "name": f"u{i}"}]),
            ns,
        )
    identity = api_server.server.identity
    assert identity is not None
    index = identity.index
    index.refresh()
    u7 = user_module.UserInfo("u7", ("system:authenticated",))
    mine = [b.name for b in index.bindings_for(u7, ns)]
    assert "b7" in mine and len([m for m in mine if m.startswith("b")]) == 1
    assert (await login("u7").list(PODS, ns))["items"] == []
    with pytest.raises(errors.StatusError):
        await login("u7").list(PODS, "default")


async def test_escalation_prevention(admin: rest.Client, login: Login) -> None:
    ns = await _namespace(admin)
    await admin.create(
        ROLES,
        {
            "metadata": {"name": "role-admin"},
            "rules": [
                {
                    "verbs": ["create", "update"],
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["roles", "rolebindings"],
                },
                {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            ],
        },
        ns,
    )
    await admin.create(
        BINDINGS, _binding("erin", "Role", "role-admin", [{"kind": "User", "name": "erin"}]), ns
    )
    erin = login("erin")
    await erin.create(
        ROLES,
        {
            "metadata": {"name": "ok"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
        },
        ns,
    )
    with pytest.raises(errors.StatusError) as exc:
        await erin.create(
            ROLES,
            {
                "metadata": {"name": "more"},
                "rules": [
                    {
                        "verbs": ["get", "delete"],
                        "apiGroups": [""],
                        "resources": ["pods", "secrets"],
                    }
                ],
            },
            ns,
        )
    assert exc.value.code == 403
    assert exc.value.message == (
        'roles.rbac.authorization.k8s.io "more" is forbidden: user "erin" (groups=["system:authenticated"]) '
        "is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete"]}'
    )
    with pytest.raises(errors.StatusError) as exc:
        await erin.create(
            BINDINGS, _binding("x", "ClusterRole", "nope", [{"kind": "User", "name": "erin"}]), ns
        )
    assert (
        exc.value.code == 404
        and exc.value.message == 'clusterroles.rbac.authorization.k8s.io "nope" not found'
    )
    # With the escalate and bind verbs, anything goes.
    await admin.create(
        ROLES,
        {
            "metadata": {"name": "escalator"},
            "rules": [
                {
                    "verbs": ["escalate", "bind"],
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["roles", "clusterroles"],
                }
            ],
        },
        ns,
    )
    await admin.create(
        BINDINGS, _binding("erin-esc", "Role", "escalator", [{"kind": "User", "name": "erin"}]), ns
    )
    await erin.create(
        ROLES,
        {
            "metadata": {"name": "more"},
            "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        },
        ns,
    )
    await erin.create(
        BINDINGS,
        _binding("erin-edit", "ClusterRole", "edit", [{"kind": "User", "name": "erin"}]),
        ns,
    )


async def test_aggregation_rule_needs_cluster_admin_and_aggregates(
    admin: rest.Client, login: Login
) -> None:
    name = "agg-" + uuid.uuid4().hex[:6]
    await admin.create(
        CLUSTER_ROLES,
        {
            "metadata": {"name": f"{name}-part", "labels": {"example.com/agg": name}},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}],
        },
    )
    await admin.create(
        CLUSTER_ROLES,
        {
            "metadata": {"name": name},
            "aggregationRule": {
                "clusterRoleSelectors": [{"matchLabels": {"example.com/agg": name}}]
            },
        },
    )

    async def aggregated() -> bool:
        role = await admin.get(CLUSTER_ROLES, name)
        return role.get("rules") == [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}]

    await testing.eventually(aggregated)


async def test_impersonation(api_server: testing.ServerThread) -> None:
    headers = {"Impersonate-User": "grace", "Impersonate-Group": "devs"}
    with pytest.raises(errors.StatusError) as exc:
        await _whoami(api_server, "frank", headers)
    assert exc.value.message == (
        'users "grace" is forbidden: User "frank" cannot impersonate resource "users" in API group "" at the cluster scope'
    )
    admin_view = await _whoami(
        api_server,
        None,
        {
            "Impersonate-User": "grace",
            "Impersonate-Group": "devs",
            "Impersonate-Extra-Scopes": "view",
        },
    )
    assert admin_view == {
        "username": "grace",
        "groups": ["devs", "system:authenticated"],
        "extra": {"scopes": ["view"]},
    }
    sa = await _whoami(
        api_server, None, {"Impersonate-User": "system:serviceaccount:kube-system:default"}
    )
    assert sa["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:kube-system",
        "system:authenticated",
    ]


async def _whoami(
    api_server: testing.ServerThread, user: str | None, headers: dict[str, str]
) -> dict:
    cfg = config.local_socket(api_server.server.socket_path)
    if user is not None:
        identity = api_server.server.identity
        assert identity is not None
        cfg = cfg.with_token(identity.component_token(user_module.UserInfo(user)))
    cfg = config.ClusterConfig(**{**cfg.__dict__, "extra_headers": headers})
    async with rest.Client(cfg) as c:
        got = await c.create(
            WHOAMI, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    return dict(got["status"]["userInfo"])


async def test_access_reviews(admin: rest.Client, login: Login) -> None:
    ns = await _namespace(admin)
    await admin.create(
        BINDINGS, _binding("hank", "ClusterRole", "view", [{"kind": "User", "name": "hank"}]), ns
    )
    hank = login("hank")

    def review(verb, res):
        return {"spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "resource": res}}}

    yes = await hank.create(SSAR, review("list", "pods"))
    assert yes["status"]["allowed"] is True
    assert (
        yes["status"]["reason"] == f'RBAC: allowed by RoleBinding "hank/{ns}" of ClusterRole "view"'
    )
    no = await hank.create(SSAR, review("delete", "pods"))
    assert no["status"] == {"allowed": False}
    about = await admin.create(SAR, {"spec": {"user": "hank", **review("get", "pods")["spec"]}})
    assert about["status"]["allowed"] is True
    with pytest.raises(errors.StatusError) as exc:
        await admin.create(SAR, {"spec": review("get", "pods")["spec"]})
    assert exc.value.code == 422
    assert exc.value.message == (
        'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": '
        "at least one of user or group must be specified"
    )
    with pytest.raises(errors.StatusError) as exc:
        await admin.create(
            LSAR,
            {
                "spec": {
                    "user": "hank",
                    "resourceAttributes": {"namespace": "other", "verb": "get", "resource": "pods"},
                }
            },
            ns,
        )
    assert exc.value.code == 400
    assert exc.value.message == f"spec.resourceAttributes.namespace must match namespace: {ns}"
    rules = await hank.create(RULES, {"spec": {"namespace": ns}})
    assert {
        "verbs": ["get", "list", "watch"],
        "apiGroups": [""],
        "resources": [
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "pods",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/status",
        ],
    } in rules["status"]["resourceRules"]
    assert rules["status"]["incomplete"] is False
    with pytest.raises(errors.StatusError) as exc:
        await hank.create(SAR, {"spec": {"user": "x", **review("get", "pods")["spec"]}})
    assert exc.value.code == 403


async def test_node_authorizer(admin: rest.Client, login: Login) -> None:
    ns = await _namespace(admin)
    await testing.namespace_set_up(admin, ns)
    for name in ("mine", "theirs"):
        await admin.create(SECRETS, {"metadata": {"name": name}, "stringData": {"k": "v"}}, ns)
    await admin.create(
        PODS,
        {
            "metadata": {"name": "p"},
            "spec": {
                "nodeName": "n1",
                "containers": [
                    {"name": "c", "image": "busybox", "envFrom": [{"secretRef": {"name": "mine"}}]}
                ],
            },
        },
        ns,
    )
    node = login("system:node:n1", "system:nodes")
    assert (await node.get(SECRETS, "mine", ns))["metadata"]["name"] == "mine"
    with pytest.raises(errors.StatusError) as exc:
        await node.get(SECRETS, "theirs", ns)
    assert exc.value.message == (
        f'secrets "theirs" is forbidden: User "system:node:n1" cannot get resource "secrets" in API '
        f'group "" in the namespace "{ns}": no relationship found between node \'n1\' and this object'
    )
    other = login("system:node:n2", "system:nodes")
    with pytest.raises(errors.StatusError):
        await other.get(SECRETS, "mine", ns)
    # kube-root-ca.crt is in the pod's token volume: the node may read it.
    assert await node.get(CONFIGMAPS, "kube-root-ca.crt", ns)
    assert (await node.list(PODS, ns))["items"]


def _csr(cn: str, groups: list[str]) -> dict:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    pem = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return {
        "metadata": {"name": f"{cn}-{uuid.uuid4().hex[:6]}"},
        "spec": {
            "request": base64.b64encode(pem.public_bytes(serialization.Encoding.PEM)).decode(),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"],
        },
    }


async def test_csr_admission(admin: rest.Client, login: Login) -> None:
    with pytest.raises(errors.StatusError) as exc:
        await admin.create(CSRS, _csr("root", ["system:masters"]))
    assert exc.value.code == 403
    assert exc.value.message.endswith(
        "is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters "
        "group is not allowed"
    )
    await admin.create(
        CLUSTER_ROLES,
        {
            "metadata": {"name": "csr-writer"},
            "rules": [
                {
                    "verbs": ["create", "get", "update"],
                    "apiGroups": ["certificates.k8s.io"],
                    "resources": [
                        "certificatesigningrequests",
                        "certificatesigningrequests/approval",
                    ],
                }
            ],
        },
    )
    crb = _binding("ivan-csr", "ClusterRole", "csr-writer", [{"kind": "User", "name": "ivan"}])
    await admin.create(R.by_path("rbac.authorization.k8s.io", "v1", "clusterrolebindings"), crb)
    ivan = login("ivan", "ops")
    made = await ivan.create(CSRS, _csr("ivan", []))
    # Who asked is recorded from the request, never from the body.
    assert made["spec"]["username"] == "ivan"
    assert made["spec"]["groups"] == ["ops", "system:authenticated"]
    made["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "Me"}]}
    with pytest.raises(errors.StatusError) as exc:
        await ivan.update(CSRS, made, subresource="approval")
    assert exc.value.message == (
        f'certificatesigningrequests.certificates.k8s.io "{made["metadata"]["name"]}" is forbidden: '
        'user not permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client"'
    )
    approved = await admin.update(CSRS, made, subresource="approval")
    condition = approved["status"]["conditions"][0]
    assert condition["type"] == "Approved" and condition["lastUpdateTime"]
    approved["status"]["conditions"].append({"type": "Denied", "status": "True"})
    with pytest.raises(errors.StatusError) as exc:
        await admin.update(CSRS, approved, subresource="approval")
    assert exc.value.code == 422
    assert "Approved and Denied conditions are mutually exclusive" in exc.value.message


async def test_node_restriction(admin: rest.Client, login: Login) -> None:
    ns = await _namespace(admin)
    await testing.namespace_set_up(admin, ns)
    nodes = R.by_path("", "v1", "nodes")
    for node in ("nr-1", "nr-2"):
        await admin.create(nodes, {"metadata": {"name": node}})
    for pod, node in (("on-1", "nr-1"), ("on-2", "nr-2")):
        await admin.create(
            PODS,
            {
                "metadata": {"name": pod},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
            },
            ns,
        )
    kubelet = login("system:node:nr-1", "system:nodes")
    # Its own Node, and its own pods' status: yes.
    await kubelet.patch(nodes, "nr-1", {"metadata": {"labels": {"a": "b"}}})
    await kubelet.patch(PODS, "on-1", {"status": {"message": "mine"}}, ns, subresource="status")
    with pytest.raises(errors.StatusError) as exc:
        await kubelet.patch(nodes, "nr-2", {"metadata": {"labels": {"a": "b"}}})
    assert (
        exc.value.message
        == 'nodes "nr-2" is forbidden: node "nr-1" is not allowed to modify node "nr-2"'
    )
    with pytest.raises(errors.StatusError) as exc:
        await kubelet.patch(
            PODS, "on-2", {"status": {"message": "theirs"}}, ns, subresource="status"
        )
    assert exc.value.message == (
        'pods "on-2" is forbidden: node "nr-1" can only update pod status for pods with '
        "spec.nodeName set to itself"
    )
    with pytest.raises(errors.StatusError) as exc:
        await kubelet.delete(PODS, "on-2", ns)
    assert exc.value.message == (
        'pods "on-2" is forbidden: node "nr-1" can only delete pods with spec.nodeName set to itself'
    )
    with pytest.raises(errors.StatusError) as exc:
        await kubelet.create(
            PODS,
            {
                "metadata": {"name": "new"},
                "spec": {"nodeName": "nr-1", "containers": [{"name": "c", "image": "busybox"}]},
            },
            ns,
        )
    assert exc.value.message == (
        'pods "new" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, '
        'node "nr-1" can only create mirror pods'
    )
    accounts = R.by_path("", "v1", "serviceaccounts")
    token_path = rest.resource_path(accounts, ns, "default", "token")
    pod = await admin.get(PODS, "on-2", ns)
    with pytest.raises(errors.StatusError) as exc:
        await kubelet.request(
            "POST",
            token_path,
            body={
                "spec": {
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": "on-2",
                        "uid": pod["metadata"]["uid"],
                    }
                }
            },
        )
    assert exc.value.code == 403
    mine = await admin.get(PODS, "on-1", ns)
    got = await kubelet.request(
        "POST",
        token_path,
        body={
            "spec": {
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": "on-1",
                    "uid": mine["metadata"]["uid"],
                }
            }
        },
    )
    assert got["status"]["token"]
