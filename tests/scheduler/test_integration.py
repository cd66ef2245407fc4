"""The scheduler against a real API server with three hollow nodes of different sizes."""

from __future__ import annotations

import collections
from pathlib import Path

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import rest
from pilothouse.scheduler import config as scheduler_config
from pilothouse.scheduler import scheduler as scheduler_module

from .conftest import (
    PODS,
    create_pods,
    pod,
    running_scheduler,
    scheduled_condition,
    three_nodes,
    wait_bound,
)

EVENTS = resources.Resource("", "v1", "Event", "events", True)
PRIORITY_CLASSES = resources.Resource(
    "scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False
)


async def test_least_allocated_spreads(client: rest.Client, ns: str, unique: str) -> None:
    name = f"sched-{unique}"
    async with three_nodes(client, unique) as nodes, running_scheduler(client, name):
        names = [f"p{i}" for i in range(7)]
        await create_pods(client, ns, [pod(n, name) for n in names])
        placed = await wait_bound(client, ns, names)
    per_node = collections.Counter(placed.values())
    assert set(per_node) == set(nodes.values()), per_node
    assert per_node[nodes["large"]] > per_node[nodes["small"]]


async def test_most_allocated_packs(
    client: rest.Client, ns: str, unique: str, tmp_path: Path
) -> None:
    name = f"sched-{unique}"
    config_file = tmp_path / "scheduler.yaml"
    config_file.write_text(
        f"""
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: {name}
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources:
        - name: cpu
          weight: 1
        - name: memory
          weight: 1
"""
    )
    configuration = scheduler_config.load(config_file)
    async with three_nodes(client, unique), running_scheduler(client, name, configuration):
        names = [f"p{i}" for i in range(4)]
        for n in names:  # one at a time: each sees the last one's placement
            await create_pods(client, ns, [pod(n, name)])
            await wait_bound(client, ns, [n])
        placed = await wait_bound(client, ns, names)
    assert len(set(placed.values())) == 1, placed


async def test_taints_and_tolerations(client: rest.Client, ns: str, unique: str) -> None:
    name = f"sched-{unique}"
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    taints = {"small": [taint], "medium": [taint]}
    async with three_nodes(client, unique, taints=taints) as nodes, running_scheduler(client, name):
        plain = [f"plain{i}" for i in range(3)]
        await create_pods(client, ns, [pod(n, name) for n in plain])
        tolerant = pod(
            "tolerant",
            name,
            tolerations=[
                {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
            ],
            nodeSelector={"kubernetes.io/hostname": nodes["small"]},
        )
        await create_pods(client, ns, [tolerant])
        placed = await wait_bound(client, ns, [*plain, "tolerant"])
    assert {placed[n] for n in plain} == {nodes["large"]}
    assert placed["tolerant"] == nodes["small"]


async def test_required_and_preferred_node_affinity(
    client: rest.Client, ns: str, unique: str
) -> None:
    name = f"sched-{unique}"
    labels = {"medium": {"disktype": "ssd"}, "small": {"tier": "gold"}}
    async with three_nodes(client, unique, labels=labels) as nodes, running_scheduler(client, name):
        required = pod(
            "required",
            name,
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "disktype", "operator": "In", "values": ["ssd"]}
                                ]
                            }
                        ]
                    }
                }
            },
        )
        preferred = pod(
            "preferred",
            name,
            affinity={
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "preference": {
                                "matchExpressions": [
                                    {"key": "tier", "operator": "In", "values": ["gold"]}
                                ]
                            },
                        }
                    ]
                }
            },
        )
        await create_pods(client, ns, [required, preferred])
        placed = await wait_bound(client, ns, ["required", "preferred"])
    assert placed["required"] == nodes["medium"]
    assert placed["preferred"] == nodes["small"]


async def test_pod_anti_affinity_keeps_replicas_apart(
    client: rest.Client, ns: str, unique: str
) -> None:
    name = f"sched-{unique}"
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    async with three_nodes(client, unique), running_scheduler(client, name):
        names = [f"web{i}" for i in range(4)]
        await create_pods(
            client, ns, [pod(n, name, labels={"app": "web"}, affinity=anti) for n in names]
        )
        condition = await scheduled_condition(client, ns, "web3")
        pods = (await client.list(PODS, ns))["items"]
    placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}
    bound = [n for n in placed.values() if n]
    assert len(bound) == 3 and len(set(bound)) == 3, placed
    unplaced = [n for n, node in placed.items() if not node]
    assert len(unplaced) == 1
    assert condition["reason"] == "Unschedulable"
    assert condition["message"] == (
        # The replicas' own anti-affinity rejects the fourth first; the doubled period is
        # upstream's too (the preemption message is itself a sentence).
        "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules. "
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.."
    )


async def test_topology_spread_across_zones(client: rest.Client, ns: str, unique: str) -> None:
    name = f"sched-{unique}"
    labels = {
        size: {"topology.kubernetes.io/zone": f"zone-{size}"}
        for size in ("small", "medium", "large")
    }
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "spread"}},
        }
    ]
    async with three_nodes(client, unique, labels=labels) as nodes, running_scheduler(client, name):
        names = [f"s{i}" for i in range(6)]
        await create_pods(
            client,
            ns,
            [
                pod(
                    n,
                    name,
                    cpu="100m",
                    memory="128Mi",
                    labels={"app": "spread"},
                    topologySpreadConstraints=spread,
                )
                for n in names
            ],
        )
        placed = await wait_bound(client, ns, names)
    per_node = collections.Counter(placed.values())
    assert per_node == {nodes["small"]: 2, nodes["medium"]: 2, nodes["large"]: 2}


async def test_preemption_evicts_lower_priority_pod(
    client: rest.Client, ns: str, unique: str
) -> None:
    name = f"sched-{unique}"
    low, high = f"low-{unique}", f"high-{unique}"
    await client.create(PRIORITY_CLASSES, {"metadata": {"name": low}, "value": 100})
    await client.create(PRIORITY_CLASSES, {"metadata": {"name": high}, "value": 1000})
    try:
        async with three_nodes(client, unique) as nodes, running_scheduler(client, name) as sched:
            # Fill every node with one low-priority pod that takes all its cpu.
            fillers = {}
            for size, node in nodes.items():
                cpu = {"small": "2", "medium": "4", "large": "8"}[size]
                fillers[f"low-{size}"] = node
                await create_pods(
                    client,
                    ns,
                    [
                        pod(
                            f"low-{size}",
                            name,
                            cpu=cpu,
                            memory="1Gi",
                            priorityClassName=low,
                            nodeSelector={"kubernetes.io/hostname": node},
                        )
                    ],
                )
            await wait_bound(client, ns, list(fillers))
            await create_pods(
                client, ns, [pod("preemptor", name, cpu="1500m", priorityClassName=high)]
            )

            async def nominated() -> str | None:
                p = await client.get(PODS, "preemptor", ns)
                return (p.get("status") or {}).get("nominatedNodeName") or p["spec"].get("nodeName")

            target = await testing.eventually(nominated, timeout=20)
            placed = await wait_bound(client, ns, ["preemptor"], timeout=40)
            remaining = {p["metadata"]["name"] for p in (await client.list(PODS, ns))["items"]}
            assert sched.metrics.preemptions >= 1
    finally:
        for pc in (low, high):
            await client.delete(PRIORITY_CLASSES, pc)
    assert placed["preemptor"] == target
    victims = [n for n, node in fillers.items() if node == target]
    assert victims and not (set(victims) & remaining), remaining


async def test_impossible_pod_gets_upstream_message_and_event(
    client: rest.Client, ns: str, unique: str
) -> None:
    name = f"sched-{unique}"
    async with three_nodes(client, unique), running_scheduler(client, name):
        await create_pods(client, ns, [pod("huge", name, cpu="100")])
        condition = await scheduled_condition(client, ns, "huge")

        async def failed_event() -> list[dict[str, object]]:
            items = (await client.list(EVENTS, ns))["items"]
            return [e for e in items if e.get("reason") == "FailedScheduling"]

        found = await testing.eventually(failed_event)
    expected = (
        "0/3 nodes are available: 3 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    )
    assert condition["reason"] == "Unschedulable"
    assert condition["message"] == expected
    assert found[0]["message"] == expected
    assert found[0]["type"] == "Warning"
    assert found[0]["source"]["component"] == name


async def test_leader_election_holds_the_lease_while_scheduling(
    client: rest.Client, ns: str, unique: str
) -> None:
    name = f"sched-{unique}"
    configuration = scheduler_config.parse(
        {"leaderElection": {"leaderElect": True}, "profiles": [{"schedulerName": name}]}
    )
    leases = resources.Resource("coordination.k8s.io", "v1", "Lease", "leases", True)
    async with three_nodes(client, unique), running_scheduler(client, name, configuration) as sched:
        assert sched.leader_elect
        await create_pods(client, ns, [pod("p", name)])
        await wait_bound(client, ns, ["p"])
        lease = await client.get(leases, scheduler_module.LEASE_NAME, "kube-system")
    assert lease["spec"]["holderIdentity"]
