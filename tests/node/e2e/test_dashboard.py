"""The dashboard against a real cluster, in a real browser: the whole flow of issue 20
with real containers — log in, the node's bars, a Deployment created in the YAML
editor, its pods appearing live, scale with the button, a pod's logs showing a line
printed after the page was opened, ``echo hi`` in the exec terminal, the scale in the
Deployment's history with its diff — and the same exec through ``pilothouse dashboard``
(the 127.0.0.1 proxy with the kubeconfig, no login).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse.dashboard import browser as browser_module
from pilothouse.dashboard.browser import load, log_in, ready, wait

from .realcluster import Cluster

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.browser,
    pytest.mark.slow,
]

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


@pytest.fixture
def browser() -> Iterator[Any]:
    why = browser_module.available()
    if why:
        pytest.fail(why)
    driver = browser_module.chromium()
    try:
        yield driver
    finally:
        driver.quit()


def _token(cluster: Cluster) -> str:
    name = "dash-" + uuid.uuid4().hex[:6]
    cluster.kubectl("create", "serviceaccount", name, "-n", "kube-system")
    cluster.kubectl(
        "create",
        "clusterrolebinding",
        name,
        "--clusterrole=cluster-admin",
        f"--serviceaccount=kube-system:{name}",
    )
    return cluster.kubectl("create", "token", name, "-n", "kube-system").stdout.strip()


def _manifest(ns: str, image: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: ticker
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: ticker
  template:
    metadata:
      labels:
        app: ticker
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: ticker
        image: {image}
        command: ["sh", "-c", "while true; do echo tick $(date +%s); sleep 1; done"]
        resources:
          requests:
            cpu: 100m
            memory: 32Mi
"""


def _exec_echo(driver: Any) -> None:
    from selenium.webdriver.common.by import By

    wait(
        driver,
        lambda d: (
            "connected" in d.find_element(By.CSS_SELECTOR, ".term [role=status]").text
            and not d.find_element(By.ID, "terminal-input").get_attribute("disabled")
        ),
        60,
        "the exec session",
    )
    line = driver.find_element(By.ID, "terminal-input")
    line.send_keys("echo hi\n")
    wait(
        driver,
        lambda d: re.search(r"^hi$", d.find_element(By.ID, "terminal-output").text, re.M),
        30,
        "hi from the container",
    )


def test_the_dashboard_with_real_pods(cluster: Cluster, ns: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    url = cluster.srv.url
    log_in(browser, url, _token(cluster))
    node = browser.find_element(By.CSS_SELECTOR, "[data-node]")
    assert "Ready" in node.text
    assert (
        float(
            node.find_element(By.CSS_SELECTOR, "[data-meter=cpu] [role=meter]").get_attribute(
                "aria-valuemax"
            )
        )
        > 0
    )
    # Usage from metrics.k8s.io beside the requests, once the agent has measured.
    wait(
        browser,
        lambda d: "used" in d.find_element(By.CSS_SELECTOR, "[data-node] [data-meter=memory]").text,
        60,
        "memory usage on the node's bar",
    )
    browser.execute_script("window.notReloaded = true")

    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=new]").click()
    wait(browser, lambda d: ready(d, "yaml"), what="the YAML editor")
    editor = browser.find_element(By.ID, "yaml-editor")
    browser.execute_script(
        "arguments[0].value = arguments[1]", editor, _manifest(ns, cluster.image)
    )
    browser.find_element(By.ID, "apply").click()
    wait(
        browser, lambda d: "applied" in d.find_element(By.ID, "apply-result").text, what="the apply"
    )

    browser.execute_script("location.hash = arguments[0]", f"#/pods?ns={ns}")
    wait(
        browser,
        lambda d: "Running" in d.find_element(By.CSS_SELECTOR, "tr[data-pod^=ticker-]").text,
        120,
        "the pod Running",
    )

    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=workloads]").click()
    wait(browser, lambda d: ready(d, "workloads"), what="the workloads page")
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-name=ticker][data-namespace={ns}]")
    replicas = row.find_element(By.CSS_SELECTOR, "input[type=number]")
    replicas.clear()
    replicas.send_keys("2")
    row.find_element(By.XPATH, ".//button[text()='Scale']").click()
    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=pods]").click()
    wait(
        browser,
        lambda d: (
            [
                r.text.count("Running")
                for r in d.find_elements(By.CSS_SELECTOR, "tr[data-pod^=ticker-]")
            ]
            == [1, 1]
        ),
        120,
        "two Running pods",
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "real-pods.png"))
    assert browser.execute_script("return window.notReloaded") is True

    # Logs: a line the container printed after the page was opened.
    browser.find_element(By.CSS_SELECTOR, "tr[data-pod^=ticker-] a").click()
    opened = int(time.time())
    wait(browser, lambda d: d.find_elements(By.ID, "logs"), what="the logs view")

    def later_line(d: Any) -> bool:
        ticks = [
            int(t) for t in re.findall(r"^tick (\d+)$", d.find_element(By.ID, "logs").text, re.M)
        ]
        return any(t > opened for t in ticks)

    wait(browser, later_line, 30, "a log line printed after the page was opened")
    browser.save_screenshot(str(SCREENSHOTS / "logs.png"))

    # Exec: echo hi.
    browser.find_element(By.XPATH, "//button[@role='tab'][text()='Exec']").click()
    _exec_echo(browser)
    browser.save_screenshot(str(SCREENSHOTS / "exec.png"))

    # History: the scale and its diff.
    browser.execute_script(
        "location.hash = arguments[0]", f"#/history/apis/apps/v1/namespaces/{ns}/deployments/ticker"
    )
    wait(browser, lambda d: ready(d, "history"), what="the history")
    scaled = [
        li for li in browser.find_elements(By.CSS_SELECTOR, ".timeline li") if "(scale)" in li.text
    ]
    assert len(scaled) == 1
    scaled[0].find_element(By.TAG_NAME, "button").click()
    diff = browser.find_element(By.ID, "history-diff").text
    assert "-   replicas: 1" in diff and "+   replicas: 2" in diff, diff
    assert browser.execute_script("return window.notReloaded") is True


def test_pilothouse_dashboard_proxies_with_the_kubeconfig(
    cluster: Cluster, ns: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    cluster.run(ns, "shell", ["sleep", "3600"])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pilothouse.cli.main",
            "dashboard",
            "--port",
            "0",
            "--no-browser",
            "--kubeconfig",
            str(cluster.srv.kubeconfig),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.search(r"dashboard at (http://127\.0\.0\.1:\d+/ui/)", first)
        assert found, first + (
            proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        )
        base = found.group(1)
        load(browser, base + f"#/pod/{ns}/shell/exec")
        _exec_echo(browser)
        # No login: the proxy is the kubeconfig's user.
        assert browser.find_element(By.ID, "whoami").text == "admin"
        assert browser.find_elements(By.ID, "token") == []
    finally:
        proc.terminate()
        proc.wait(10)
