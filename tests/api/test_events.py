"""/v4/account/events, read from Job rows, filtered the way the SDK's event poller asks."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.models import Job
from tests.api.test_instances import created

pytestmark = pytest.mark.django_db

EVENT_KEYS = {
    "id", "action", "created", "duration", "entity", "message", "percent_complete", "rate", "read", "seen",
    "secondary_entity", "status", "time_remaining", "username",
}  # fmt: skip


def test_a_create_is_an_event_with_linodes_keys(world, alice):
    linode = created(alice, label="evented")
    events = alice.get("/v4/account/events").json()["data"]
    create = next(e for e in events if e["action"] == "linode_create")
    assert set(create) == EVENT_KEYS
    assert create["entity"] == {
        "id": linode["id"],
        "label": "evented",
        "type": "linode",
        "url": f"/v4/linode/instances/{linode['id']}",
    }
    assert create["username"] == "alice" and create["status"] in {
        "scheduled",
        "started",
        "finished",
        "failed",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", create["created"])
    assert alice.get(f"/v4/account/events/{create['id']}").json() == create


def test_the_sdk_pollers_filter(world, alice):
    first, second = created(alice), created(alice)
    poller = {"+order": "asc", "+order_by": "created", "entity.id": second["id"], "entity.type": "linode",
              "action": "linode_create"}  # fmt: skip
    events = alice.get("/v4/account/events", filters=poller).json()["data"]
    assert [e["entity"]["id"] for e in events] == [second["id"]]
    assert alice.get("/v4/account/events", filters={**poller, "entity.type": "domain"}).json()["data"] == []
    both = alice.get("/v4/account/events", filters={"action": "linode_create", "+order_by": "created"}).json()
    assert [e["entity"]["id"] for e in both["data"]] == [first["id"], second["id"]]


def test_events_are_newest_first_and_filter_by_created(world, alice):
    linode = created(alice)
    Job.objects.filter(instance_id=linode["id"]).update(created=timezone.now() - timedelta(days=2))
    alice.post(f"/v4/linode/instances/{linode['id']}/reboot")
    events = alice.get("/v4/account/events").json()["data"]
    assert [e["action"] for e in events][:2] == ["linode_reboot", "linode_create"]
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    recent = alice.get("/v4/account/events", filters={"created": {"+gte": since}}).json()["data"]
    assert [e["action"] for e in recent] == ["linode_reboot"]


def test_a_failed_job_carries_its_message(world, alice):
    linode = created(alice)
    job = Job.objects.filter(instance_id=linode["id"]).first()
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, error="libvirt said no")
    event = alice.get(f"/v4/account/events/{job.pk}").json()
    assert (event["status"], event["message"]) == ("failed", "libvirt said no")


def test_another_accounts_events_are_invisible(world, alice, bob):
    created(alice)
    job = Job.objects.get()
    assert bob.get("/v4/account/events").json()["results"] == 0
    assert bob.get(f"/v4/account/events/{job.pk}").status_code == 404


@pytest.mark.parametrize(
    "x_filter", [{"entity.id": "twelve"}, {"created": {"+gte": "yesterday"}}, {"entity.x": 1}]
)
def test_bad_event_filters_are_400s(world, alice, x_filter):
    assert alice.get("/v4/account/events", filters=x_filter).status_code == 400
