"""An event's `username` names a user of the account only: a staff member's action (a spin-up for the
account) and the system's (reconcile, schedules) show null, as Linode's own system events do, and a
filter on a staff login finds nothing. On the issue's main a spin-up showed "username": "admin"."""

import pytest

from accounts.models import Origin
from provisioning import services
from provisioning.models import Instance, Job
from tests.builders import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return make_user(username="ops-admin", staff=True)


def test_staff_and_system_actions_show_no_username(world, employee, alice, staff):
    account = employee.membership.account
    own = services.instance_create(
        account=account, actor=employee, plan=world.gpu_plan, region=services.region_for(region_id="us-east"),
        image=world.image, label="own-1", root_pass="Corr3ct-Horse-9",
    )  # fmt: skip
    spun = services.instance_create(
        account=account, actor=staff, plan=world.gpu_plan, region=services.region_for(region_id="us-east"),
        image=world.image, label="spun-1", root_pass="Corr3ct-Horse-9", origin=Origin.STAFF,
    )  # fmt: skip
    system = Job.objects.create(
        instance=own,
        account=account,
        action=Job.Action.BOOT,
        status=Job.Status.FINISHED,
        origin=Origin.RECONCILE,
    )
    events = {e["id"]: e for e in alice.get("/v4/account/events").json()["data"]}
    by_instance = {(e["entity"]["id"], e["action"]): e["username"] for e in events.values()}
    assert by_instance[(own.pk, "linode_create")] == "alice"
    assert by_instance[(spun.pk, "linode_create")] is None
    assert events[system.pk]["username"] is None
    assert "ops-admin" not in alice.get("/v4/account/events").content.decode()
    assert alice.get("/v4/account/events", filters={"username": "ops-admin"}).json()["data"] == []
    mine = alice.get("/v4/account/events", filters={"username": "alice"}).json()["data"]
    assert {e["entity"]["id"] for e in mine} == {own.pk}
    assert alice.get(f"/v4/account/events/{events[system.pk]['id']}").json()["username"] is None
    assert Instance.objects.count() == 2
