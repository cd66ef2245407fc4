"""Strategy building blocks: gated pods, Job selectors, Service cluster IPs, namespaces."""

from __future__ import annotations

from typing import Any

from pilothouse.api.defaults import prepare


def test_scheduling_gated_condition() -> None:
    pod: dict[str, Any] = {"spec": {"schedulingGates": [{"name": "wait"}]}}
    prepare.scheduling_gated_condition(pod)
    prepare.scheduling_gated_condition(pod)
    assert pod["status"]["conditions"] == [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "SchedulingGated",
            "message": prepare.SCHEDULING_GATED_MESSAGE,
        }
    ]


def test_generate_job_selector_keeps_user_labels_and_manual_selectors() -> None:
    job: dict[str, Any] = {
        "metadata": {"name": "pi", "uid": "u1"},
        "spec": {"template": {"metadata": {"labels": {"job-name": "mine"}}}},
    }
    prepare.generate_job_selector(job)
    assert job["spec"]["template"]["metadata"]["labels"]["job-name"] == "mine"
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}
    manual: dict[str, Any] = {
        "metadata": {"name": "pi", "uid": "u1"},
        "spec": {"manualSelector": True, "template": {}},
    }
    prepare.generate_job_selector(manual)
    assert "selector" not in manual["spec"]


def test_normalize_cluster_ips() -> None:
    created: dict[str, Any] = {"spec": {"clusterIP": "10.43.0.5"}}
    prepare.normalize_cluster_ips(created)
    assert created["spec"]["clusterIPs"] == ["10.43.0.5"]
    old = {"spec": {"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"]}}
    patched: dict[str, Any] = {"spec": {"clusterIP": "10.43.0.5"}}
    prepare.normalize_cluster_ips(patched, old)
    assert patched["spec"]["clusterIPs"] == ["10.43.0.5"]
    cleared: dict[str, Any] = {"spec": {"clusterIP": "", "clusterIPs": ["10.43.0.5"]}}
    prepare.normalize_cluster_ips(cleared, old)
    assert "clusterIPs" not in cleared["spec"]
    moved: dict[str, Any] = {"spec": {"clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.5"]}}
    prepare.normalize_cluster_ips(moved, old)
    assert moved["spec"]["clusterIPs"] == ["10.43.0.9"]


def test_namespace_finalizer() -> None:
    ns: dict[str, Any] = {"metadata": {"name": "a"}}
    prepare.ensure_namespace_finalizer(ns)
    prepare.ensure_namespace_finalizer(ns)
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
