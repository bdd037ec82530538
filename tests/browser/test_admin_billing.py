"""Staff grant the GPU trial from an account's page and read what is left of it, in a real headless
Chromium against a live server."""

import pytest
from django.urls import reverse

from billing.models import Promotion
from tests.builders import make_account, make_user

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]


def test_staff_grant_the_gpu_trial_and_see_its_credit(live_server, browser, screenshot_dir, settings):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    settings.GPUADMIN_GPU_TRIAL_CREDIT = "100.00"
    account = make_account(name="render-farm")
    staff = make_user(username="billing-admin", staff=True)
    browser.get(
        live_server.url
        + reverse("admin:login")
        + "?next="
        + reverse("admin:accounts_account_change", args=[account.pk])
    )
    browser.find_element(By.NAME, "username").send_keys(staff.username)
    browser.find_element(By.NAME, "password").send_keys(f"pw-{staff.username}")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    wait = WebDriverWait(browser, 20)
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "table.account-billing")))
    assert "not granted" in browser.find_element(By.CSS_SELECTOR, "table.account-billing").text
    browser.find_element(By.ID, "grant-gpu-trial").click()
    wait.until(seen.element_to_be_clickable((By.ID, "confirm-grant"))).click()

    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))
    assert "GPU trial: $100.00 for 7 days" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    balances = browser.find_element(By.CSS_SELECTOR, "table.account-billing").text
    assert "$100.00 of $100.00 left" in balances and "active" in balances
    browser.save_screenshot(str(screenshot_dir / "account_trial.png"))
    assert Promotion.objects.get(account=account).granted_by == staff

    browser.find_element(By.ID, "grant-gpu-trial").click()
    wait.until(seen.element_to_be_clickable((By.ID, "confirm-grant"))).click()
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.error")))
    assert "has had its GPU trial already" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    assert Promotion.objects.filter(account=account).count() == 1
