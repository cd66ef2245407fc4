"""A real browser (Debian's chromium through chromedriver) for the dashboard tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pilothouse.dashboard import browser as browser_module


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
