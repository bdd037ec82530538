"""The official linode_api4 SDK against a live server, with the tasks held in the real (database) broker as
a busy queue would hold them: a delete right after a create is accepted, and so is a new create with the
same label. The held jobs are then run by hand, in each order."""

import pytest
from django_q.conf import Conf
from linode_api4 import ApiError, LinodeClient

from provisioning.models import Instance, Job
from provisioning.tasks import run_job
from tests.api.conftest import token_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ROOT_PASS = "Corr3ct-Horse-Battery"
GPU_PLAN = "g1-gpu-rtx6000-1"


@pytest.fixture
def client(world, employee, live_server, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)  # enqueue into the ORM broker; no worker takes them
    sdk = LinodeClient(token_for(employee), base_url=live_server.url + "/v4")
    yield sdk
    sdk.session.close()


def run_held(order: list[int]) -> None:
    """Run the queued jobs by hand in `order`, as a worker would; what they queue (resets) runs inline."""
    Conf.SYNC = True
    for job_id in order:
        run_job(job_id)


@pytest.mark.parametrize("delete_first", [True, False], ids=["delete-runs-first", "create-runs-first"])
def test_create_then_delete(client, delete_first):
    linode = client.linode.instance_create(
        GPU_PLAN, "us-east", image="linode/ubuntu22.04", root_pass=ROOT_PASS
    )
    assert linode.delete() is True
    create_job = Job.objects.get(instance_id=linode.id, action=Job.Action.CREATE)
    delete_job = Job.objects.get(instance_id=linode.id, action=Job.Action.DELETE)
    assert create_job.superseded_by_id == delete_job.pk
    with pytest.raises(ApiError) as gone:
        client.load(type(linode), linode.id)
    assert gone.value.status == 404
    run_held([delete_job.pk, create_job.pk] if delete_first else [create_job.pk, delete_job.pk])
    assert Instance.objects.get(pk=linode.id).status == Instance.Status.DELETED
    events = {e.id: e for e in client.account.events()}
    assert events[delete_job.pk].status == "finished" and events[delete_job.pk].action == "linode_delete"
    assert events[create_job.pk].status == "failed"
    assert events[create_job.pk].message.startswith(f"Superseded by linode_delete (event {delete_job.pk})")
    assert list(client.linode.instances()) == []


def test_create_then_delete_then_create_the_same_label(client):
    first = client.linode.instance_create(
        GPU_PLAN, "us-east", image="linode/ubuntu22.04", root_pass=ROOT_PASS, label="trainer-01"
    )
    assert first.delete() is True
    second = client.linode.instance_create(
        GPU_PLAN, "us-east", image="linode/ubuntu22.04", root_pass=ROOT_PASS, label="trainer-01"
    )
    assert second.id != first.id and second.label == "trainer-01"
    run_held(list(Job.objects.order_by("pk").values_list("pk", flat=True)))
    assert [(i.id, i.label, i.status) for i in client.linode.instances()] == [
        (second.id, "trainer-01", "running")
    ]
    assert Instance.objects.get(pk=first.id).status == Instance.Status.DELETED
