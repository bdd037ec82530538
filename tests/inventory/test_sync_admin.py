import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from hypervisor.profiles import RTX6000_2X2
from inventory.models import Host
from tests.builders import make_profile_host, make_user

pytestmark = pytest.mark.django_db


def test_staff_sync_hosts_from_the_admin_and_a_broken_host_is_a_message_not_a_traceback(client):
    good = make_profile_host(RTX6000_2X2, hostname="gpu-admin-good")
    bad = make_profile_host(RTX6000_2X2, hostname="gpu-admin-bad")
    Host.objects.filter(pk=bad.pk).update(libvirt_uri="qemu+tcp://127.0.0.1:1/system", simulated=False)
    client.force_login(make_user(staff=True))
    response = client.post(
        reverse("admin:inventory_host_changelist"),
        {"action": "sync_from_libvirt", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )
    assert response.status_code == 200
    texts = [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]
    assert texts[0][0] == "error" and texts[0][1].startswith("gpu-admin-bad: qemu+tcp://127.0.0.1:1/system")
    assert "nothing was changed" in texts[0][1]
    assert texts[1] == ("success", "gpu-admin-good: unchanged")
