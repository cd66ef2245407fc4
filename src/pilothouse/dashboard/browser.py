"""A real browser for the dashboard's tests and benchmark: Debian's chromium, headless,
driven through its chromedriver with selenium (a test dependency, imported here only).

Nothing is downloaded: the browser and the driver are the Debian packages
(``make install-test`` installs them) at fixed paths. One browser per caller; the
caller quits it.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

CHROMIUM = os.environ.get("PILOTHOUSE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PILOTHOUSE_CHROMEDRIVER", "/usr/bin/chromedriver")


def available() -> str:
    """Why no browser can run here ("" when one can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(path)):
            return (
                f"{path} is missing: run `make install-test` (Debian's chromium, chromium-driver)"
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: run `make install-test`"
    return ""


def chromium(*, width: int = 1400, height: int = 1000, dark: bool = False) -> Any:
    """A headless chromium that accepts the test server's own CA-less certificate."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI; the sandbox refuses root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        options.add_argument(arg)
    if dark:
        options.add_argument("--force-dark-mode")
        options.add_argument("--blink-settings=preferredColorScheme=0")
    options.accept_insecure_certs = True
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(options=options, service=service)


def wait(driver: Any, check: Any, timeout: float = 30, what: str = "") -> Any:
    """Poll ``check(driver)`` until truthy; on timeout fail with the browser's console."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    try:
        return WebDriverWait(driver, timeout, 0.1, ignored_exceptions=ignored).until(check)
    except TimeoutException:
        logs = "\n".join(str(e) for e in driver.get_log("browser"))
        raise AssertionError(f"timed out waiting for {what}\n{logs}") from None


def ready(driver: Any, page: str) -> bool:
    """Whether the dashboard says it has rendered ``page`` (``body[data-ready]``)."""
    return bool(driver.execute_script("return document.body.dataset.ready") == page)


def load(driver: Any, url: str) -> None:
    """Navigate afresh. Chromium abandons a load when the machine's network changes
    (ERR_NETWORK_CHANGED: on a shared machine other tests add and remove interfaces),
    so a load that ends on chromium's error page is retried."""
    ours = "return !!(document.getElementById('theme') || document.getElementById('done'))"
    for _ in range(20):
        driver.get("about:blank")
        driver.get(url)
        if driver.execute_script(ours):
            return
        time.sleep(0.5)  # the interfaces are still changing: let them settle
    raise AssertionError(f"chromium could not load {url} (20 tries)")


def log_in(driver: Any, url: str, token: str) -> None:
    """Open ``url``/ui/ and log in with a bearer token."""
    from selenium.webdriver.common.by import By

    load(driver, url + "/ui/")
    wait(driver, lambda d: ready(d, "login"), what="the login form")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login").click()
    wait(driver, lambda d: ready(d, "overview"), what="the overview after logging in")
