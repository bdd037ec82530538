"""Billing over rows written by provisioning itself (services, tasks, libvirt's test driver): what the
worker did is what is billed, and a create that failed and rolled back is not."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import UsageSegment
from billing.months import month_of
from billing.services import invoice_generate, usage_sync
from hypervisor import faults
from hypervisor.faults import Step
from provisioning.models import Job
from provisioning.services import instance_delete, instance_resize
from tests.builders import make_account, make_gpu_plan, make_image, make_region, make_user
from tests.provisioning.conftest import enroll_rtx_host
from tests.provisioning.helpers import create

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db, django_capture_on_commit_callbacks, settings):
    settings.GPUADMIN_JOB_MAX_ATTEMPTS = 2
    region = make_region("us-east")
    host = enroll_rtx_host(region)
    user = make_user(account=make_account(kind="employee"))  # the flag shows GPU plans to employees

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return region, host, user, run, {g: make_gpu_plan(g) for g in (1, 2)}, make_image()


def test_create_resize_delete_become_two_closed_segments(world):
    region, _, user, run, plans, image = world
    instance = run(create, user=user, plan=plans[1], region=region, image=image)
    run(instance_resize, instance=instance, actor=user, plan=plans[2])
    run(instance_delete, instance=instance, actor=user)
    instance.refresh_from_db()
    resize = instance.jobs.get(action=Job.Action.RESIZE)
    usage_sync(now=timezone.now())
    segments = list(UsageSegment.objects.filter(instance=instance).order_by("started_at"))
    assert [(s.instance_type_id, s.started_at, s.ended_at) for s in segments] == [
        (plans[1].pk, instance.created, resize.finished),
        (plans[2].pk, resize.finished, instance.deleted_at),
    ]
    later = instance.deleted_at + timedelta(seconds=1)
    invoice = invoice_generate(account=instance.account, month=month_of(instance.created), now=later)
    items = list(invoice.items.order_by("from_at"))
    # Seconds of usage on each plan: an hour each, at zero for an employee account, reason recorded.
    assert [(i.quantity, i.list_amount, i.amount) for i in items] == [(1, 1.5, 0), (1, 3, 0)]
    assert {i.waived_reason for i in items} == {"employee account: not charged"}


def test_a_create_that_failed_and_rolled_back_is_not_billed(world):
    region, host, user, run, plans, image = world
    faults.inject(Step.DEFINE, uri=host.libvirt_uri, permanent=True, times=None)
    instance = run(create, user=user, plan=plans[1], region=region, image=image)
    instance.refresh_from_db()
    assert instance.status == "failed"
    run(instance_delete, instance=instance, actor=user)
    usage_sync(now=timezone.now() + timedelta(hours=1))
    assert not UsageSegment.objects.filter(instance=instance).exists()
    assert invoice_generate(account=instance.account, month=month_of(instance.created)) is None
