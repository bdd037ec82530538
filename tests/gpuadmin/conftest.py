"""What the admin tests share: a small GPU fleet, staff with and without rights, and message reading."""

from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages

from accounts.flags import GPU_INSTANCES
from accounts.models import Account
from accounts.services import account_create
from gpuadmin.models import Flag
from inventory.models import Host, Image, InstanceType, Region
from tests.builders import make_gpu_host, make_gpu_plan, make_image, make_region, make_user


@dataclass
class Fleet:
    region: Region
    hosts: list[Host]
    plans: dict[int, InstanceType]
    image: Image
    customer: Account


def build_fleet(*, hosts: int = 2, region_id: str = "us-east") -> Fleet:
    """`hosts` RTX 6000 hosts (2 nodes x 2 cards) and a customer account in the GPU beta: the
    gpu_instances flag names it, so staff may spin up GPU Linodes for it."""
    region = make_region(region_id)
    customer = account_create(name="Render Farm", email="ops@render.example")
    Flag.objects.get(name=GPU_INSTANCES).accounts.add(customer)
    return Fleet(
        region=region,
        hosts=[make_gpu_host(region=region) for _ in range(hosts)],
        plans={gpus: make_gpu_plan(gpus) for gpus in (1, 2, 3, 4)},
        image=make_image("linode/ubuntu22.04"),
        customer=customer,
    )


@pytest.fixture
def fleet(db) -> Fleet:
    return build_fleet()


@pytest.fixture
def superuser(db):
    return make_user(username="root-admin", staff=True)


def make_staff(*perms: str):
    """Staff (not superuser) with exactly the given permissions ("provisioning.add_instance", ...)."""
    user = make_user()
    get_user_model().objects.filter(pk=user.pk).update(is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return get_user_model().objects.get(pk=user.pk)


def texts(response) -> list[tuple[str, str]]:
    """The messages a response carries, as (level, text)."""
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]
