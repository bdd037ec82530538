"""The console in a real headless Chromium at 1280 x 800: the dashboard, GPU list, job list, instance
page and spin-up form fit without horizontal scrolling; the instance page follows its create job to
"Running" without a reload; a Support user sees no spin-up button and is refused its URL."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.models import Origin
from gpuadmin.roles import SUPPORT, roles_ensure
from provisioning.models import Instance, Job
from provisioning.services import instance_create
from provisioning.workflows import job_run
from tests.browser.conftest import at_1280x800, horizontal_overflow, list_overflow, sign_in, wait_for
from tests.builders import make_user
from tests.gpuadmin.conftest import build_fleet

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queued(monkeypatch):
    """Jobs wait in the queue (django-q2's ORM broker) instead of running inline, as in production: the
    test runs each one itself when it wants to, as a worker would."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)


def spin_up(fleet, actor, gpus: int = 1, label: str | None = None) -> Instance:
    return instance_create(
        account=fleet.customer,
        actor=actor,
        plan=fleet.plans[gpus],
        region=fleet.region,
        image=fleet.image,
        label=label,
        root_pass="Correct-Horse-42",
        origin=Origin.STAFF,
    )


def shown_actions(browser) -> list[str]:
    from selenium.webdriver.common.by import By

    buttons = browser.find_elements(By.CSS_SELECTOR, "#instance-actions .live-action")
    return [button.get_attribute("data-action") for button in buttons if button.is_displayed()]


def test_the_console_pages_fit_1280_px(live_server, browser, screenshot_dir):
    fleet = build_fleet(hosts=3)
    staff = make_user(username="ops-admin", staff=True)
    instances = [spin_up(fleet, staff, gpus, f"wide-trainer-with-a-long-label-{gpus}") for gpus in (1, 2, 4)]
    sign_in(browser, live_server, staff)
    at_1280x800(browser)
    pages = {
        "dashboard": reverse("admin:index"),
        "gpu_list": reverse("admin:inventory_gpudevice_changelist"),
        "job_list": reverse("admin:provisioning_job_changelist"),
        "instance": reverse("admin:provisioning_instance_change", args=[instances[1].pk]),
        "spin_up_form": reverse("admin:spin_up") + f"?plan={fleet.plans[1].pk}",
        # and every other list staff work from
        "instance_list": reverse("admin:provisioning_instance_changelist"),
        "allocation_list": reverse("admin:provisioning_allocation_changelist"),
        "host_list": reverse("admin:inventory_host_changelist"),
        "host_page": reverse("admin:inventory_host_change", args=[fleet.hosts[0].pk]),
        "account_list": reverse("admin:accounts_account_changelist"),
        "account_page": reverse("admin:accounts_account_change", args=[fleet.customer.pk]),
        "audit_log": reverse("admin:accounts_auditrecord_changelist"),
        "flag_list": reverse("admin:gpuadmin_flag_changelist"),
        "invoice_list": reverse("admin:billing_invoice_changelist"),
        "capacity": reverse("admin:capacity") + "?region=us-east",
    }
    overflow = {}
    for name, url in pages.items():
        browser.get(live_server.url + url)
        wait_for(browser, lambda d: d.execute_script("return document.readyState") == "complete")
        assert browser.execute_script("return window.innerWidth") == 1280
        browser.save_screenshot(str(screenshot_dir / f"console_{name}_1280.png"))
        overflow[name] = (horizontal_overflow(browser), list_overflow(browser))
    assert overflow == dict.fromkeys(pages, (0, 0))


def test_the_instance_page_follows_its_job_to_running_without_a_reload(
    live_server, browser, screenshot_dir, queued
):
    from selenium.webdriver.common.by import By

    fleet = build_fleet(hosts=1)
    staff = make_user(username="ops-admin", staff=True)
    instance = spin_up(fleet, staff, 2)
    job = Job.objects.get(instance=instance)
    assert job.status == Job.Status.SCHEDULED  # queued, not run: no worker has taken it yet
    sign_in(browser, live_server, staff)
    at_1280x800(browser)
    browser.get(live_server.url + reverse("admin:provisioning_instance_change", args=[instance.pk]))
    status = browser.find_element(By.ID, "instance-status")
    assert status.text == "Provisioning"
    assert browser.find_element(By.ID, "instance-address").text == instance.ipv4[0]
    assert shown_actions(browser) == ["delete"]
    browser.execute_script("window.stillTheSamePage = true;")
    browser.save_screenshot(str(screenshot_dir / "instance_live_provisioning.png"))

    assert job_run(job_id=job.pk) == f"job {job.pk} finished"  # what a worker does with it

    wait_for(browser, lambda d: d.find_element(By.ID, "instance-status").text == "Running", seconds=30)
    assert browser.execute_script("return window.stillTheSamePage === true")  # no reload happened
    assert browser.find_element(By.ID, "instance-job-progress").get_attribute("value") == "100"
    assert "finished" in browser.find_element(By.ID, "instance-job-text").text
    assert shown_actions(browser) == ["shutdown", "reboot", "resize", "delete"]
    assert horizontal_overflow(browser) == 0
    browser.save_screenshot(str(screenshot_dir / "instance_live_running.png"))

    # A button: shut down goes through the service; the page comes back and follows the new job.
    browser.find_element(By.CSS_SELECTOR, 'form[data-action="shutdown"] input[type=submit]').click()
    wait_for(browser, lambda d: d.find_element(By.ID, "instance-status").text == "Shutting down")
    shutdown = Job.objects.get(instance=instance, action=Job.Action.SHUTDOWN)
    assert (shutdown.actor, shutdown.origin) == (staff, Origin.STAFF)
    browser.execute_script("window.stillTheSamePage = true;")
    job_run(job_id=shutdown.pk)
    wait_for(browser, lambda d: d.find_element(By.ID, "instance-status").text == "Offline", seconds=30)
    assert browser.execute_script("return window.stillTheSamePage === true")
    assert browser.find_element(By.CSS_SELECTOR, 'form[data-action="boot"]').is_displayed()


def test_a_support_user_sees_no_spin_up_button_and_is_refused_its_url(live_server, browser, screenshot_dir):
    from selenium.webdriver.common.by import By

    roles_ensure()  # a transactional test's flush emptied what the migration wrote
    build_fleet(hosts=1)
    user = make_user(username="support-sam")
    get_user_model().objects.filter(pk=user.pk).update(is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT))
    sign_in(browser, live_server, user)
    at_1280x800(browser)
    assert browser.find_elements(By.ID, "capacity-summary")
    assert not browser.find_elements(By.ID, "spin-up-gpu-linode")
    assert not browser.find_elements(By.CSS_SELECTOR, "a.spin-up")
    assert horizontal_overflow(browser) == 0
    browser.save_screenshot(str(screenshot_dir / "dashboard_support.png"))
    browser.get(live_server.url + reverse("admin:spin_up"))
    assert "403 Forbidden" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(screenshot_dir / "spin_up_support_403.png"))
