"""A staff member signs in, reads the dashboard, spins up a GPU Linode and lands on its page: in a real
headless Chromium against a live server."""

import re

import pytest
from django.urls import reverse

from inventory.models import Host
from provisioning.models import Instance, Job
from tests.browser.conftest import wait_for
from tests.builders import make_user
from tests.gpuadmin.conftest import build_fleet

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]


def test_sign_in_read_the_dashboard_and_spin_up_a_gpu_linode(live_server, browser, screenshot_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import Select

    fleet = build_fleet(hosts=2)
    Host.objects.filter(pk=fleet.hosts[1].pk).update(state=Host.State.DRAINING)
    staff = make_user(username="ops-admin", staff=True)

    browser.get(live_server.url + reverse("admin:login") + "?next=" + reverse("admin:index"))
    browser.find_element(By.NAME, "username").send_keys(staff.username)
    browser.find_element(By.NAME, "password").send_keys(f"pw-{staff.username}")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    wait_for(browser, seen.presence_of_element_located((By.ID, "capacity-summary")))
    summary = browser.find_element(By.CSS_SELECTOR, 'tr.capacity-row[data-region="us-east"]').text
    assert "RTX 6000" in summary and "1 / 2" in summary
    assert "Only: every employee account" in browser.find_element(By.ID, "gpu-flag-summary").text
    browser.save_screenshot(str(screenshot_dir / "dashboard.png"))

    browser.find_element(By.ID, "spin-up-gpu-linode").click()
    wait_for(browser, seen.presence_of_element_located((By.ID, "spin-up-form")))
    # The account is an admin autocomplete (select2): type, then pick the match. select2 redraws its
    # results as the search answers ("Searching…", then the matches), so the option found may be replaced
    # before the click lands: find and click it as one step, asked again until the choice took.
    browser.find_element(By.CSS_SELECTOR, ".field-account .select2-selection").click()
    browser.find_element(By.CSS_SELECTOR, ".select2-search__field").send_keys("Render")
    option = (By.XPATH, "//li[contains(@class, 'select2-results__option')][.='Render Farm']")

    def picked(driver) -> bool:
        if driver.find_element(By.NAME, "account").get_attribute("value") == str(fleet.customer.pk):
            return True
        matches = [o for o in driver.find_elements(*option) if o.is_displayed()]
        if matches:
            matches[0].click()
        return False

    wait_for(browser, picked)
    Select(browser.find_element(By.NAME, "plan")).select_by_value("g1-gpu-rtx6000-2")
    Select(browser.find_element(By.NAME, "region")).select_by_value("us-east")
    Select(browser.find_element(By.NAME, "image")).select_by_value("linode/ubuntu22.04")
    browser.find_element(By.NAME, "label").send_keys("browser-trainer")
    browser.save_screenshot(str(screenshot_dir / "spin_up_form.png"))
    browser.find_element(By.NAME, "_spin_up").click()

    wait_for(browser, seen.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))
    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist li.success").text
    instance = Instance.objects.get(label="browser-trainer")
    assert browser.current_url.endswith(reverse("admin:provisioning_instance_change", args=[instance.pk]))
    assert f'"browser-trainer" (id {instance.pk}) is being created for Render Farm in us-east' in message
    assert re.search(r"Root password, shown only this once: \S{24}$", message)
    assert instance.host == fleet.hosts[0]  # the draining host got nothing
    job = Job.objects.get(instance=instance, action=Job.Action.CREATE)
    assert job.actor == staff
    # The page shows what the instance holds: two GPUs with their PCI addresses and NUMA node.
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.allocated-gpu")) == 2
    assert browser.find_elements(By.CSS_SELECTOR, "table.gpuadmin-jobs tr.job")
    browser.save_screenshot(str(screenshot_dir / "instance.png"))
    allocation = browser.find_element(By.CLASS_NAME, "gpuadmin-allocation")
    browser.execute_script("arguments[0].scrollIntoView();", allocation)
    browser.save_screenshot(str(screenshot_dir / "instance_allocation.png"))

    browser.get(live_server.url + reverse("admin:capacity") + "?region=us-east")
    row = browser.find_element(By.CSS_SELECTOR, f'tr.host-row[data-host="{fleet.hosts[0].hostname}"]').text
    assert "node 0: 0 GPUs" in row or "node 1: 0 GPUs" in row  # the two cards of one node are taken
    browser.save_screenshot(str(screenshot_dir / "capacity.png"))
