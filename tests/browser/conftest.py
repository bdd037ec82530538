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
def screenshot_dir() -> Path:
    """Where screenshots go: GPUADMIN_SCREENSHOT_DIR, or var/screenshots/ in the checkout (not committed)."""
    kept = os.environ.get("GPUADMIN_SCREENSHOT_DIR")
    path = Path(kept) if kept else Path(__file__).resolve().parents[2] / "var" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def at_1280x800(browser) -> None:
    """The page's viewport is 1280 x 800 CSS pixels, whatever the window around it."""
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
    )


def horizontal_overflow(browser) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no horizontal scrolling)."""
    return browser.execute_script(
        "const e = document.documentElement; return Math.max(0, e.scrollWidth - e.clientWidth);"
    )


def list_overflow(browser) -> int:
    """How many CSS pixels a change list's table is wider than the box around it: the admin scrolls the
    table inside that box, so columns can be out of sight while the page itself fits."""
    return browser.execute_script(
        "const r = document.querySelector('#changelist .results');"
        "return r ? Math.max(0, r.scrollWidth - r.clientWidth) : 0;"
    )


def wait_for(browser, condition, seconds: float = 20):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A page that redraws part of itself (select2's results, the live panel) may replace an element
    # between finding it and using it: the condition is asked again rather than failing on that.
    return WebDriverWait(browser, seconds, ignored_exceptions=(StaleElementReferenceException,)).until(
        condition
    )


def sign_in(browser, live_server, user, next_url: str = "/admin/") -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen

    browser.get(f"{live_server.url}/admin/login/?next={next_url}")
    browser.find_element(By.NAME, "username").send_keys(user.username)
    browser.find_element(By.NAME, "password").send_keys(f"pw-{user.username}")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(browser, seen.presence_of_element_located((By.ID, "user-tools")))
