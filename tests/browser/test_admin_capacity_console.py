"""The dashboard's capacity charts and the what-if page in a real headless Chromium at 1280x800: drawn,
readable, and no wider than the window."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.services import capacity_sample_record
from tests.builders import make_allocation, make_instance, make_user
from tests.gpuadmin.conftest import build_fleet

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 20
OVERFLOW = "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"


def wait_for(browser, condition):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_SECONDS).until(condition)


def sign_in(browser, live_server, user, next_url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(live_server.url + reverse("admin:login") + "?next=" + next_url)
    browser.find_element(By.NAME, "username").send_keys(user.username)
    browser.find_element(By.NAME, "password").send_keys(f"pw-{user.username}")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()


def test_the_charts_and_the_what_if_page_fit_1280_px(live_server, browser, screenshot_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen

    fleet = build_fleet(hosts=3)
    now = timezone.now()
    for hours in range(20, 0, -4):  # five samples over the day, the fleet filling up between them
        capacity_sample_record(now=now - timedelta(hours=hours))
        make_allocation(
            instance=make_instance(plan=fleet.plans[1], region=fleet.region),
            host=fleet.hosts[hours % 3],
            gpus=1,
            vcpus=8,
            memory_mib=32 * 1024,
        )
    staff = make_user(username="charts-admin", staff=True)
    browser.set_window_size(1280, 800)

    sign_in(browser, live_server, staff, reverse("admin:index"))
    wait_for(browser, seen.presence_of_element_located((By.ID, "capacity-history")))
    panel = browser.find_element(By.CSS_SELECTOR, 'section.panel[data-region="us-east"]')
    charts = panel.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == 2
    for chart in charts:
        box = chart.rect
        assert box["width"] > 300 and box["height"] > 100  # drawn at a readable size
    allocated = panel.find_element(By.CSS_SELECTOR, 'path[data-series="allocated"]')
    assert allocated.get_attribute("data-values").split() == ["0", "1", "2", "3", "4"]
    assert allocated.size["width"] > 100  # the line spans the day
    browser.execute_script("arguments[0].scrollIntoView();", panel)
    scroll_width, client_width = browser.execute_script(OVERFLOW)
    assert scroll_width <= client_width, f"dashboard is {scroll_width} px wide in a {client_width} px window"
    browser.save_screenshot(str(screenshot_dir / "dashboard_charts_1280.png"))

    browser.find_element(By.CSS_SELECTOR, 'a[data-window="7d"]').click()
    wait_for(browser, seen.presence_of_element_located((By.CSS_SELECTOR, 'a.current[data-window="7d"]')))

    query = (
        f"?region=us-east&requests=g1-gpu-rtx6000-2%3D2%2C+g1-gpu-rtx6000-4%3D1"
        f"&drain={fleet.hosts[0].hostname}&add_hosts=rtx6000-2x4%3D1"
    )
    browser.get(live_server.url + reverse("admin:whatif") + query)
    wait_for(browser, seen.presence_of_element_located((By.ID, "whatif-result")))
    lines = {
        row.get_attribute("data-what"): [c.text for c in row.find_elements(By.TAG_NAME, "td")[1:]]
        for row in browser.find_elements(By.CSS_SELECTOR, "tr.whatif-line")
    }
    assert lines["g1-gpu-rtx6000-4 placed (of 1)"] == ["", "1", "1", "1"]
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table.whatif-result th")]
    assert headers[1:] == ["NOW", "BEST_FIT", "FIRST_FIT", "SPREAD"] or headers[1:] == [
        "now",
        "best_fit",
        "first_fit",
        "spread",
    ]
    scroll_width, client_width = browser.execute_script(OVERFLOW)
    assert scroll_width <= client_width, f"what-if is {scroll_width} px wide in a {client_width} px window"
    browser.save_screenshot(str(screenshot_dir / "whatif_1280.png"))

    browser.get(live_server.url + "/")
    wait_for(browser, seen.presence_of_element_located((By.ID, "regions")))
    scroll_width, client_width = browser.execute_script(OVERFLOW)
    assert scroll_width <= client_width
    browser.save_screenshot(str(screenshot_dir / "status_1280.png"))
