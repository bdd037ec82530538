"""A real headless Chromium driven by Selenium, for tests marked `browser`.

Outside CI a machine without Chromium, chromedriver or selenium skips these tests and says why; in CI
(CI=true) that is a failure, because scripts/ensure-system-packages --ci installs them.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1440,1000",
]


def _missing_browser_reason() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    if not _chromium():
        return "Chromium is not installed: apt-get install chromium (or set GPUADMIN_CHROMIUM)"
    if not _chromedriver():
        return "chromedriver is not installed: apt-get install chromium-driver (or set GPUADMIN_CHROMEDRIVER)"
    return None


def _chromium() -> str | None:
    return _executable("GPUADMIN_CHROMIUM", "chromium", "chromium-browser")


def _chromedriver() -> str | None:
    return _executable("GPUADMIN_CHROMEDRIVER", "chromedriver")


def _executable(variable: str, *names: str) -> str | None:
    """The program a variable names, or the first of `names` on PATH; None when there is none."""
    if os.environ.get(variable):
        return shutil.which(os.environ[variable])
    return next((path for name in names if (path := shutil.which(name))), None)


@pytest.fixture
def browser(monkeypatch):
    reason = _missing_browser_reason()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Both paths are given, so Selenium Manager has nothing to download; offline makes sure it never tries.
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = _chromium()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="gpuadmin-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(_chromedriver()))
        driver.set_page_load_timeout(30)
        driver.implicitly_wait(0)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def screenshot_dir(tmp_path) -> Path:
    """Where screenshots go: GPUADMIN_SCREENSHOT_DIR to keep them, a pytest temp directory otherwise."""
    kept = os.environ.get("GPUADMIN_SCREENSHOT_DIR")
    path = Path(kept) if kept else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path
