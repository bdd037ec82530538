"""GET /v4/account counts usage up to the request, rated by the invoices' own function, without waiting
for the sync and without writing anything."""

from datetime import date, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.flags import GPU_INSTANCES
from billing.models import UsageSegment
from billing.selectors import account_billing
from billing.services import invoice_generate, usage_sync
from provisioning.models import Instance, Job
from tests.api.conftest import Api, token_for
from tests.billing.helpers import at, created_instance, deleted, resized
from tests.builders import make_account, make_gpu_host, make_image, make_user

pytestmark = pytest.mark.django_db

JAN = date(2026, 1, 1)


@pytest.fixture
def carol(region, gpu1):
    """A customer who may create GPU Linodes (the flag is on for everyone: launched)."""
    make_gpu_host(region=region)
    make_image()
    call_command("waffle_flag", GPU_INSTANCES, "--everyone", "--create", stdout=StringIO())
    return make_user(account=make_account(), username="carol")


def test_a_linode_created_through_the_api_is_in_the_balance_at_once(
    carol, gpu1, django_capture_on_commit_callbacks
):
    api = Api(Client(), token_for(carol))
    with django_capture_on_commit_callbacks(execute=True):  # the worker runs the create job inline
        response = api.post(
            "/v4/linode/instances",
            {
                "type": gpu1.pk,
                "region": "us-east",
                "image": "linode/ubuntu22.04",
                "root_pass": "Corr3ct-H0rse-9",
            },
        )
    assert response.status_code == 200, response.content
    instance = Instance.objects.get(pk=response.json()["id"])
    assert instance.jobs.get(action=Job.Action.CREATE).status == Job.Status.FINISHED
    assert not UsageSegment.objects.exists()  # no sync has run

    body = api.get("/v4/account").json()
    # Seconds old, so one started hour of $1.50; the read itself wrote no segment.
    assert (body["balance"], body["balance_uninvoiced"]) == (0.0, 1.5)
    assert not UsageSegment.objects.exists()


def test_the_balance_is_what_a_draft_built_at_that_moment_would_charge(customer, gpu1, gpu2):
    """Never synced, synced before a resize, synced before a delete, deleted before any sync: the
    balance read without syncing equals the invoice built (after a sync) at the same moment."""
    never = created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    before_resize = created_instance(account=customer, plan=gpu1, created=at("2026-01-03 00:00"))
    before_delete = created_instance(account=customer, plan=gpu2, created=at("2026-01-04 00:00"))
    gone = created_instance(account=customer, plan=gpu1, created=at("2026-01-06 00:00"))
    usage_sync(now=at("2026-01-06 00:30"))
    created_instance(account=customer, plan=gpu1, created=at("2026-01-06 01:00"), create=Job.Status.FAILED)
    resized(before_resize, to=gpu2, finished=at("2026-01-06 12:00"))
    deleted(before_delete, when=at("2026-01-07 00:00"))
    deleted(gone, when=at("2026-01-06 02:30"))
    deleted(never, when=at("2026-01-08 00:00"))
    now = at("2026-01-09 10:20")
    written = list(UsageSegment.objects.values())

    billing = account_billing(account=customer, now=now)
    assert list(UsageSegment.objects.values()) == written  # nothing synced by the read
    draft = invoice_generate(account=customer, month=JAN, now=now)
    assert billing.balance_uninvoiced == billing.current_month == draft.total
    # 1 GPU: 62 h (never synced), 84 h (before the resize), 2.5 h -> 3 h (deleted before any sync);
    # 2 GPUs: 70 h 20 min -> 71 h (after the resize), 72 h (deleted after its sync).
    assert draft.total == Decimal("1.50") * (62 + 84 + 3) + Decimal("3.00") * (71 + 72)


def test_a_delete_not_synced_yet_stops_the_meter(customer, gpu1):
    instance = created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    usage_sync(now=at("2026-01-05 11:00"))
    deleted(instance, when=at("2026-01-05 12:30"))
    for later in ("2026-01-05 13:00", "2026-01-20 00:00"):
        assert account_billing(account=customer, now=at(later)).balance_uninvoiced == Decimal("4.50")
    assert UsageSegment.objects.get().ended_at is None  # still as the last sync left it


def test_an_employee_sees_zero_and_the_trial_what_is_left(customer, employee, gpu1, settings):
    from billing.services import promotion_grant_gpu_trial

    settings.GPUADMIN_GPU_TRIAL_CREDIT = "100.00"
    created_instance(account=employee, plan=gpu1, created=at("2026-01-05 10:00"))
    assert account_billing(account=employee, now=at("2026-01-05 20:00")).balance_uninvoiced == 0
    promotion = promotion_grant_gpu_trial(account=customer, now=at("2026-01-05 00:00"))
    created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    billing = account_billing(account=customer, now=at("2026-01-05 20:00"))
    assert billing.balance_uninvoiced == 0  # 10 h x $1.50 paid by the trial
    assert billing.credit_remaining == {promotion.pk: Decimal("85.00")}
    assert billing.active_promotions[0]["credit_remaining"] == "85.00"


def test_reading_the_balance_costs_the_same_queries_for_3_or_60_instances(customer, gpu1, gpu2, monkeypatch):
    """Synced, unsynced, resized and deleted instances alike: the cost does not grow with the account."""
    user = make_user(account=customer)
    api = Api(Client(), token_for(user))
    monkeypatch.setattr("django.utils.timezone.now", lambda: at("2026-01-20 00:00"))

    def add(count: int, start: int) -> None:
        for n in range(start, start + count):
            instance = created_instance(
                account=customer, plan=gpu1, created=at("2026-01-02 00:00") + timedelta(hours=n)
            )
            if n % 3 == 0:
                usage_sync(now=at("2026-01-10 00:00"))
            if n % 4 == 1:
                resized(instance, to=gpu2, finished=at("2026-01-12 00:00") + timedelta(minutes=n))
            if n % 5 == 2:
                deleted(instance, when=at("2026-01-15 00:00"))

    def queries() -> tuple[int, float]:
        with CaptureQueriesContext(connection) as captured:
            response = api.get("/v4/account")
        assert response.status_code == 200
        return len(captured), response.json()["balance_uninvoiced"]

    add(3, 0)
    queries()  # the token's first use writes its last_used; count from the second request
    few, small = queries()
    add(57, 3)
    many, large = queries()
    assert many == few
    assert large > small > 0
    assert not UsageSegment.objects.filter(started_at__gte=at("2026-01-12 00:00")).exists()
