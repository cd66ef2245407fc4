"""LimitRange defaults and constraints, with upstream's LimitRanger messages."""

from __future__ import annotations

from typing import Any

from pilothouse.api import defaults, limitrange

Obj = dict[str, Any]


def lr(*items: Obj) -> Obj:
    obj = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "l"},
        "spec": {"limits": list(items)},
    }
    defaults.apply_defaults("", "v1", "LimitRange", obj)
    return obj


def pod(*containers: Obj, init: list[Obj] | None = None) -> Obj:
    spec: Obj = {"containers": list(containers)}
    if init:
        spec["initContainers"] = init
    return {"metadata": {"name": "p"}, "spec": spec}


def test_defaults_fill_only_what_containers_leave_out_and_say_so() -> None:
    r = lr(
        {
            "type": "Container",
            "default": {"cpu": "500m", "memory": "128Mi"},
            "defaultRequest": {"cpu": "250m"},
        }
    )
    p = pod(
        {"name": "a"},
        {"name": "b", "resources": {"limits": {"memory": "1Gi"}}},
        init=[
            {
                "name": "i",
                "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
            }
        ],
    )
    limitrange.default_pod(r, p)
    a, b = p["spec"]["containers"]
    assert a["resources"] == {
        "limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "250m", "memory": "128Mi"},
    }
    # b keeps its own memory limit; the request defaults come from the range.
    assert b["resources"]["limits"] == {"memory": "1Gi", "cpu": "500m"}
    assert b["resources"]["requests"] == {"cpu": "250m", "memory": "128Mi"}
    assert p["metadata"]["annotations"][limitrange.ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for "
        "container a; cpu, memory request for container b; cpu limit for container b"
    )


def test_max_defaults_the_limit_and_min_the_request() -> None:
    r = lr({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}})
    item = r["spec"]["limits"][0]
    assert item["default"] == {"cpu": "2"}
    assert item["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}
    p = pod({"name": "a"})
    limitrange.default_pod(r, p)
    assert p["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "2"},
        "requests": {"cpu": "2", "memory": "64Mi"},
    }


def test_no_defaults_no_annotation() -> None:
    r = lr({"type": "Pod", "max": {"cpu": "2"}})
    p = pod({"name": "a"})
    limitrange.default_pod(r, p)
    assert "annotations" not in p["metadata"]


def test_container_constraints() -> None:
    r = {
        "spec": {
            "limits": [
                {"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1", "memory": "1Gi"}}
            ]
        }
    }
    p = pod({"name": "a", "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "2"}}})
    assert limitrange.validate_pod(r, p) == [
        "minimum cpu usage per Container is 100m, but request is 50m",
        "maximum cpu usage per Container is 1, but limit is 2",
        "maximum memory usage per Container is 1Gi.  No limit is specified",
    ]
    assert limitrange.aggregate(limitrange.validate_pod(r, p)).startswith("[minimum cpu usage")
    assert limitrange.validate_pod(r, pod({"name": "a"})) == [
        "minimum cpu usage per Container is 100m.  No request is specified",
        "maximum cpu usage per Container is 1.  No limit is specified",
        "maximum memory usage per Container is 1Gi.  No limit is specified",
    ]


def test_ratio() -> None:
    r = {"spec": {"limits": [{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]}}
    over = pod({"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "500m"}}})
    assert limitrange.validate_pod(r, over) == [
        "cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000"
    ]
    fine = pod({"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}}})
    assert limitrange.validate_pod(r, fine) == []
    assert limitrange.validate_pod(
        r, pod({"name": "a", "resources": {"limits": {"cpu": "1"}}})
    ) == [
        "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"
    ]


def test_pod_type_sums_containers() -> None:
    r = {"spec": {"limits": [{"type": "Pod", "max": {"memory": "1Gi"}}]}}
    p = pod(
        {"name": "a", "resources": {"limits": {"memory": "512Mi"}}},
        {"name": "b", "resources": {"limits": {"memory": "768Mi"}}},
    )
    assert limitrange.validate_pod(r, p) == [
        "maximum memory usage per Pod is 1Gi, but limit is 1280Mi"
    ]


def test_claims() -> None:
    r = {
        "spec": {
            "limits": [
                {
                    "type": "PersistentVolumeClaim",
                    "min": {"storage": "1Gi"},
                    "max": {"storage": "10Gi"},
                }
            ]
        }
    }
    small = {"spec": {"resources": {"requests": {"storage": "500Mi"}}}}
    big = {"spec": {"resources": {"requests": {"storage": "20Gi"}}}}
    assert limitrange.validate_claim(r, small) == [
        "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
    ]
    assert limitrange.validate_claim(r, big) == [
        "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
    ]
    assert limitrange.aggregate(["x", "x"]) == "x"
