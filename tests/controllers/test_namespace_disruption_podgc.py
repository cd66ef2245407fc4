"""Namespace deletion empties the namespace; PDB status; pods on missing nodes are collected."""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, resources
from pilothouse.client import rest
from pilothouse.controllers import disruption, namespace, podgc
from pilothouse.testing import eventually, running_controllers


def r(group: str, plural: str) -> resources.Resource:
    res = resources.DEFAULT.by_path(group, "v1", plural)
    assert res is not None
    return res


POD = {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def test_deleting_a_namespace_removes_everything_in_it(client: rest.Client, ns: str) -> None:
    await client.create(r("", "configmaps"), {"metadata": {"name": "cm"}}, ns)
    await client.create(r("", "secrets"), {"metadata": {"name": "s"}, "stringData": {"a": "b"}}, ns)
    await client.create(
        r("apps", "deployments"),
        {
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, **POD},
            },
        },
        ns,
    )
    held = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    await client.create(r("", "configmaps"), held, ns)
    async with running_controllers(client, {"namespace": namespace.NamespaceController}):
        await client.delete(r("", "namespaces"), ns)

        async def reports_finalizer() -> bool:
            got = await client.get(r("", "namespaces"), ns)
            conds = {c["type"]: c for c in (got.get("status") or {}).get("conditions") or []}
            c = conds.get("NamespaceFinalizersRemaining")
            return c is not None and c["status"] == "True" and "example.com/hold" in c["message"]

        await eventually(reports_finalizer)
        cm = await client.get(r("", "configmaps"), "held", ns)
        cm["metadata"]["finalizers"] = []
        await client.update(r("", "configmaps"), cm)

        async def namespace_gone() -> bool:
            try:
                await client.get(r("", "namespaces"), ns)
            except errors.StatusError as exc:
                return exc.code == 404
            return False

        await eventually(namespace_gone)


async def _ready_pod(
    client: rest.Client, ns: str, name: str, labels: dict[str, str], ready: bool
) -> None:
    await client.create(r("", "pods"), {"metadata": {"name": name, "labels": labels}, **POD}, ns)
    pod = await client.get(r("", "pods"), name, ns)
    pod["status"]["phase"] = "Running"
    pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    await client.update_status(r("", "pods"), pod)


async def test_disruption_budget_status(client: rest.Client, ns: str) -> None:
    await _ready_pod(client, ns, "a", {"app": "db"}, True)
    await _ready_pod(client, ns, "b", {"app": "db"}, True)
    await _ready_pod(client, ns, "c", {"app": "db"}, False)
    pdbs = r("policy", "poddisruptionbudgets")
    await client.create(
        pdbs,
        {
            "metadata": {"name": "db"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
        },
        ns,
    )
    async with running_controllers(client, {"disruption": disruption.DisruptionController}):

        async def status() -> dict[str, Any] | None:
            got = await client.get(pdbs, "db", ns)
            st = got.get("status") or {}
            return st if st.get("observedGeneration") == got["metadata"]["generation"] else None

        st = await eventually(status)
        assert (
            st["currentHealthy"],
            st["desiredHealthy"],
            st["expectedPods"],
            st["disruptionsAllowed"],
        ) == (2, 1, 3, 1)
        assert (
            st["conditions"][0]["type"] == "DisruptionAllowed"
            and st["conditions"][0]["status"] == "True"
        )
        # A pod becoming unready takes the only allowed disruption away.
        pod = await client.get(r("", "pods"), "b", ns)
        pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
        await client.update_status(r("", "pods"), pod)

        async def none_allowed() -> bool:
            got = (await client.get(pdbs, "db", ns)).get("status") or {}
            return (
                got.get("disruptionsAllowed") == 0
                and got["conditions"][0]["reason"] == "InsufficientPods"
            )

        await eventually(none_allowed)


async def test_pods_on_missing_nodes_are_collected(client: rest.Client, ns: str) -> None:
    pods = r("", "pods")
    await client.create(
        pods,
        {"metadata": {"name": "stranded"}, "spec": {**POD["spec"], "nodeName": "no-such-node"}},
        ns,
    )

    def fast(ctx: Any) -> podgc.PodGCController:
        return podgc.PodGCController(ctx, interval=0.1, quarantine=0.3)

    async with running_controllers(client, {"podgc": fast}):

        async def gone() -> bool:
            try:
                await client.get(pods, "stranded", ns)
            except errors.StatusError as exc:
                return exc.code == 404
            return False

        await eventually(gone)
