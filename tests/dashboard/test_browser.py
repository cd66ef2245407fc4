"""The dashboard in a real browser (Debian's chromium through chromedriver).

Against a server with the controllers and a hollow node (pods are scheduled and
reported Running without containers; the root e2e test in tests/node/e2e does the
logs and exec part with real pods): log in with a token, see the node's bars, create
a Deployment through the YAML editor, watch its pods appear without reloading, scale
it with the button, see the scale change with its diff in the history. And the first
page with 1,000 pods beside a static page of the same size from the same server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.client import config, rest
from pilothouse.dashboard.browser import load, log_in, ready, wait

pytestmark = [pytest.mark.browser, pytest.mark.kubectl, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
R = resources.DEFAULT
PODS = R.by_path("", "v1", "pods")
NODES = R.by_path("", "v1", "nodes")


def kubectl(server: testing.ServerThread, *args: str) -> str:
    proc = subprocess.run(
        ["kubectl", *args],
        env={**os.environ, "KUBECONFIG": str(server.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def kubectl_input(server: testing.ServerThread, text: str, *args: str) -> str:
    proc = subprocess.run(
        ["kubectl", *args],
        input=text,
        env={**os.environ, "KUBECONFIG": str(server.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def admin_token(server: testing.ServerThread) -> str:
    """A ServiceAccount bound to cluster-admin: what a person logs in with."""
    name = "dash-" + uuid.uuid4().hex[:6]
    kubectl(server, "create", "serviceaccount", name, "-n", "kube-system")
    kubectl(
        server,
        "create",
        "clusterrolebinding",
        name,
        "--clusterrole=cluster-admin",
        f"--serviceaccount=kube-system:{name}",
    )
    return kubectl(server, "create", "token", name, "-n", "kube-system").strip()


def shot(driver: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def deployment_yaml(ns: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: busybox:1.36
        command: ["sh", "-c", "while true; do date; sleep 1; done"]
        resources:
          requests:
            cpu: 250m
            memory: 64Mi
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing.ServerThread]:
    data = tmp_path_factory.mktemp("dash") / "data"
    with testing.server_thread(data, controllers=True) as srv, testing.hollow_nodes(srv, 1):
        yield srv


def test_the_dashboard_flow(cluster: testing.ServerThread, browser: Any) -> None:
    ns = "dash-" + uuid.uuid4().hex[:6]
    kubectl(cluster, "create", "namespace", ns)
    log_in(browser, cluster.url, admin_token(cluster))
    # The node and its bars: nothing of ours requested yet.
    card = browser.find_element(By.CSS_SELECTOR, "[data-node=hollow-0]")
    assert "Ready" in card.text
    cpu = card.find_element(By.CSS_SELECTOR, "[data-meter=cpu] [role=meter]")
    before = float(cpu.get_attribute("aria-valuenow"))
    assert float(cpu.get_attribute("aria-valuemax")) == 32  # the hollow node's allocatable
    browser.execute_script("window.notReloaded = true")

    # Create a Deployment through the YAML editor (server-side apply).
    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=new]").click()
    wait(browser, lambda d: ready(d, "yaml"), what="the YAML editor")
    editor = browser.find_element(By.ID, "yaml-editor")
    browser.execute_script("arguments[0].value = arguments[1]", editor, deployment_yaml(ns))
    browser.find_element(By.ID, "apply").click()
    wait(
        browser, lambda d: "applied" in d.find_element(By.ID, "apply-result").text, what="the apply"
    )
    shot(browser, "yaml-editor")

    # Its pods appear on the pods page without a reload.
    browser.execute_script("location.hash = arguments[0]", f"#/pods?ns={ns}")
    wait(browser, lambda d: ready(d, "pods"), what="the pods page")
    wait(
        browser,
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, "tr[data-pod^=web-]")) == 1
            and "Running" in d.find_element(By.CSS_SELECTOR, "tr[data-pod^=web-]").text
        ),
        what="the Deployment's pod, Running",
    )

    # Scale with the button on the workloads page; the new pods come in live.
    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=workloads]").click()
    wait(browser, lambda d: ready(d, "workloads"), what="the workloads page")
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-name=web][data-namespace={ns}]")
    replicas = row.find_element(By.CSS_SELECTOR, "input[type=number]")
    replicas.clear()
    replicas.send_keys("3")
    row.find_element(By.XPATH, ".//button[text()='Scale']").click()
    wait(
        browser,
        lambda d: (
            d.find_element(
                By.CSS_SELECTOR, f"tr[data-name=web][data-namespace={ns}] td[data-ready]"
            ).text
            == "3/3"
        ),
        what="3/3 ready on the workloads page",
    )
    shot(browser, "workloads")
    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=pods]").click()
    wait(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-pod^=web-]")) == 3,
        what="3 pods",
    )
    # A pod that fits nowhere: the scheduler's reason, live, on its row.
    greedy = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "greedy", "namespace": ns},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "64"}}}
            ]
        },
    }
    kubectl_input(cluster, json.dumps(greedy), "apply", "-f", "-")
    wait(
        browser,
        lambda d: (
            "Insufficient cpu"
            in d.find_element(By.CSS_SELECTOR, "tr[data-pod=greedy] .reason").text
        ),
        what="the scheduler's reason on the Pending pod",
    )
    reason = browser.find_element(By.CSS_SELECTOR, "tr[data-pod=greedy] .reason").text
    assert reason == (
        "Unschedulable: 0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are"
        " available: 1 Preemption is not helpful for scheduling.."  # upstream's words, both dots
    ), reason
    shot(browser, "pods")
    # Search on the server: a label selector.
    search = browser.find_element(By.ID, "search")
    search.clear()
    search.send_keys("app=web\n")
    wait(
        browser,
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, "tbody tr")) == 3
            and not d.find_elements(By.CSS_SELECTOR, "tr[data-pod=greedy]")
        ),
        what="the label selector's pods only",
    )
    assert browser.execute_script("return window.notReloaded") is True

    # The bars on the overview now hold the three pods' requests (250m each).
    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=overview]").click()
    wait(browser, lambda d: ready(d, "overview"), what="the overview")
    cpu = browser.find_element(
        By.CSS_SELECTOR, "[data-node=hollow-0] [data-meter=cpu] [role=meter]"
    )
    assert float(cpu.get_attribute("aria-valuenow")) == pytest.approx(before + 0.75)
    # The bar is drawn to scale: requested over allocatable (32 CPUs on a hollow node).
    total = float(cpu.get_attribute("aria-valuemax"))
    assert total == 32
    drawn = browser.execute_script(
        "const b = arguments[0]; return b.querySelector('.req').getBoundingClientRect().width"
        " / b.getBoundingClientRect().width",
        cpu,
    )
    assert drawn == pytest.approx((before + 0.75) / total, abs=0.01)
    shot(browser, "overview")

    # The history shows the scale, by the dashboard through /scale, with its diff.
    browser.execute_script(
        "location.hash = arguments[0]", f"#/history/apis/apps/v1/namespaces/{ns}/deployments/web"
    )
    wait(browser, lambda d: ready(d, "history"), what="the history page")
    entries = browser.find_elements(By.CSS_SELECTOR, ".timeline li")
    scaled = [li for li in entries if "pilothouse-dashboard" in li.text and "(scale)" in li.text]
    assert len(scaled) == 1, [li.text for li in entries]
    scaled[0].find_element(By.TAG_NAME, "button").click()
    diff = browser.find_element(By.ID, "history-diff").text
    assert "-   replicas: 1" in diff and "+   replicas: 3" in diff, diff
    assert entries[0].text.split()[1] == "created"
    shot(browser, "history")
    assert browser.execute_script("return window.notReloaded") is True

    # YAML edit through server-side apply: a field another manager owns is a conflict,
    # shown with its manager, until the user forces it.
    kubectl(cluster, "set", "image", "deployment/web", "web=busybox:1.37", "-n", ns)
    browser.execute_script(
        "location.hash = arguments[0]", f"#/yaml/apis/apps/v1/namespaces/{ns}/deployments/web"
    )
    wait(browser, lambda d: ready(d, "yaml"), what="the Deployment's YAML")
    editor = browser.find_element(By.ID, "yaml-editor")
    text = editor.get_attribute("value")
    assert "image: busybox:1.37" in text and "managedFields" not in text and "status:" not in text
    browser.execute_script(
        "arguments[0].value = arguments[1]", editor, text.replace("busybox:1.37", "busybox:1.38")
    )
    browser.find_element(By.ID, "apply").click()
    wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#apply-result .conflicts"),
        what="the conflict",
    )
    conflict = browser.find_element(By.CSS_SELECTOR, "#apply-result .conflicts").text
    assert (
        'conflict with "kubectl-set"' in conflict and ".spec.template.spec.containers" in conflict
    )
    shot(browser, "yaml-conflict")
    browser.find_element(By.ID, "force-apply").click()
    wait(
        browser,
        lambda d: "applied" in d.find_element(By.ID, "apply-result").text,
        what="the forced apply",
    )
    image = "{.spec.template.spec.containers[0].image}"
    assert (
        kubectl(cluster, "get", "deploy/web", "-n", ns, "-o", f"jsonpath={image}") == "busybox:1.38"
    )

    # Undo goes back to the previous revision's template; Restart stamps restartedAt.
    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=workloads]").click()
    wait(browser, lambda d: ready(d, "workloads"), what="the workloads page")

    def revision() -> str:
        path = "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        return kubectl(cluster, "get", "deploy/web", "-n", ns, "-o", f"jsonpath={path}")

    wait(browser, lambda d: revision() == "3", what="the third rollout revision")
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-name=web][data-namespace={ns}]")
    row.find_element(By.XPATH, ".//button[text()='Undo']").click()
    wait(
        browser,
        lambda d: "rolled back to revision 2" in d.find_element(By.ID, "toast").text,
        what="undo",
    )
    assert (
        kubectl(cluster, "get", "deploy/web", "-n", ns, "-o", f"jsonpath={image}") == "busybox:1.37"
    )
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-name=web][data-namespace={ns}]")
    row.find_element(By.XPATH, ".//button[text()='Restart']").click()
    wait(browser, lambda d: "restarted" in d.find_element(By.ID, "toast").text, what="restart")
    restarted = "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}"
    assert kubectl(cluster, "get", "deploy/web", "-n", ns, "-o", f"jsonpath={restarted}")

    # A StatefulSet is a workload too: its rollout, and Undo through its ControllerRevisions.
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": ns},
        "spec": {
            "replicas": 1,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "busybox:1.36"}]},
            },
        },
    }
    kubectl_input(cluster, json.dumps(sts), "apply", "-f", "-")
    selector = f"tr[data-kind=StatefulSet][data-name=db][data-namespace={ns}]"
    wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, f"{selector} td[data-ready]").text == "1/1",
        what="the StatefulSet ready on the workloads page",
    )
    kubectl(cluster, "set", "image", "statefulset/db", "db=busybox:1.37", "-n", ns)
    wait(
        browser,
        lambda d: "busybox:1.37" in d.find_element(By.CSS_SELECTOR, selector).text,
        what="1.37",
    )
    # Undo needs the controller to have recorded the new template as revision 2.
    revisions = ["get", "controllerrevisions", "-n", ns, "-l", "app=db", "-o", "name"]
    wait(
        browser,
        lambda d: len(kubectl(cluster, *revisions).split()) == 2,
        what="the StatefulSet's second ControllerRevision",
    )
    browser.find_element(By.CSS_SELECTOR, selector).find_element(
        By.XPATH, ".//button[text()='Undo']"
    ).click()
    wait(
        browser,
        lambda d: (
            "statefulsets.apps/db rolled back to revision 1" in d.find_element(By.ID, "toast").text
        ),
        what="sts undo",
    )
    wait(
        browser,
        lambda d: "busybox:1.36" in d.find_element(By.CSS_SELECTOR, selector).text,
        what="1.36 again",
    )
    shot(browser, "workloads")

    # Events stream and dark mode, for the screenshots.
    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=events]").click()
    wait(browser, lambda d: ready(d, "events"), what="the events page")
    assert "ScalingReplicaSet" in browser.find_element(By.CSS_SELECTOR, ".events").text
    browser.find_element(By.ID, "theme").click()
    assert browser.execute_script("return document.documentElement.dataset.theme") == "dark"
    shot(browser, "events-dark")
    browser.find_element(By.ID, "theme").click()


def test_keyboard_and_accessible_names(cluster: testing.ServerThread, browser: Any) -> None:
    log_in(browser, cluster.url, admin_token(cluster))
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("g", "p")
    wait(browser, lambda d: ready(d, "pods"), what="g p to open the pods page")
    assert browser.find_element(By.CSS_SELECTOR, "#nav a[aria-current=page]").text == "Pods"
    browser.find_element(By.TAG_NAME, "body").send_keys("/")
    assert browser.switch_to.active_element.get_attribute("id") == "search"
    # Every control has an accessible name.
    unnamed = browser.execute_script(
        """return [...document.querySelectorAll('button, input, select, textarea, a')]
          .filter(e => !(e.getAttribute('aria-label') || e.textContent.trim() || e.labels && e.labels.length))
          .map(e => e.outerHTML)"""
    )
    assert unnamed == []


async def _many_pods(server: testing.ServerThread, ns: str, count: int) -> None:
    """``count`` pods bound to a node no agent runs: they stay as created, so the
    measurement sees 1,000 pods and not the churn of 1,000 pods starting."""
    async with rest.Client(config.local_socket(server.server.socket_path)) as client:
        await client.create(R.by_path("", "v1", "namespaces"), {"metadata": {"name": ns}})
        with contextlib.suppress(errors.StatusError):
            await client.create(NODES, {"metadata": {"name": "perf-node"}})
            await client.request(
                "PATCH",
                "/api/v1/nodes/perf-node/status",
                body={
                    "status": {
                        "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "1100"},
                        "capacity": {"cpu": "8", "memory": "32Gi", "pods": "1100"},
                    }
                },
                content_type="application/merge-patch+json",
            )
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            pod = {
                "metadata": {"name": f"p-{i:04d}", "namespace": ns, "labels": {"app": "many"}},
                "spec": {
                    "nodeName": "perf-node",
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox:1.36",
                            "resources": {"requests": {"cpu": "1m"}},
                        }
                    ],
                },
            }
            async with sem:
                await client.create(PODS, pod, namespace=ns)

        await asyncio.gather(*(one(i) for i in range(count)))


def _navigation_ms(driver: Any, url: str, page: str) -> float:
    for _ in range(6):
        load(driver, url)
        # A network change can abandon the page's own requests too: then it shows an
        # error (or, for a load, chromium's error page), and the measurement is redone.
        with contextlib.suppress(AssertionError):
            wait(driver, lambda d: ready(d, page) or ready(d, "error"), 10, f"the {page} page")
        if ready(driver, page):
            return float(
                driver.execute_script(
                    "return performance.getEntriesByName('page-ready')[0].startTime"
                )
            )
    raise AssertionError(f"the {page} page failed six times")


def _baseline_ms(driver: Any, url: str) -> float:
    load(driver, url)
    wait(
        driver,
        lambda d: d.execute_script("return document.readyState") == "complete",
        what="baseline",
    )
    return float(
        driver.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd")
    )


def test_first_page_with_1000_pods(cluster: testing.ServerThread, browser: Any) -> None:
    ns = "many-" + uuid.uuid4().hex[:6]
    started = time.monotonic()
    asyncio.run(_many_pods(cluster, ns, 1000))
    print(f"1000 pods created in {time.monotonic() - started:.1f}s")
    log_in(browser, cluster.url, admin_token(cluster))
    pods_url = cluster.url + f"/ui/#/pods?ns={ns}"
    _navigation_ms(browser, pods_url, "pods")  # warm: the server's caches, the browser's
    size = int(browser.execute_script("return document.documentElement.outerHTML.length"))
    runs = 7
    pods = [_navigation_ms(browser, pods_url, "pods") for _ in range(runs)]
    overview = [
        _navigation_ms(browser, cluster.url + "/ui/#/overview", "overview") for _ in range(runs)
    ]
    baseline_url = cluster.url + f"/ui/baseline.html?bytes={size}"
    _baseline_ms(browser, baseline_url)
    baseline = [_baseline_ms(browser, baseline_url) for _ in range(runs)]
    figures = {
        "pods_in_cluster": len(asyncio.run(_count_pods(cluster))),
        "page_bytes": size,
        "pods_page_first_render_ms_median": round(statistics.median(pods), 1),
        "overview_all_pods_first_render_ms_median": round(statistics.median(overview), 1),
        "static_page_same_size_ms_median": round(statistics.median(baseline), 1),
    }
    print(json.dumps(figures))
    (SCREENSHOTS.parent / "dashboard-first-page.json").write_text(
        json.dumps(figures, indent=2) + "\n"
    )
    # The goal is 300 ms; on a machine so loaded that a static page of the same size
    # takes longer than that, the dashboard may not be more than 300 ms behind it.
    budget = max(300.0, figures["static_page_same_size_ms_median"] + 300.0)
    assert figures["pods_page_first_render_ms_median"] <= budget, figures
    # The overview reads every pod (each one's requests count towards its node's
    # bars): measured and recorded, held to twice the budget.
    assert figures["overview_all_pods_first_render_ms_median"] <= 2 * budget, figures


async def _count_pods(server: testing.ServerThread) -> list[Any]:
    async with rest.Client(config.local_socket(server.server.socket_path)) as client:
        listed = await client.list(PODS)
    return list(listed["items"])
