"""Launch is a flag flip with waffle's own command, on gpuadmin's custom flag model."""

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.flags import GPU_INSTANCES
from gpuadmin.models import Flag

pytestmark = pytest.mark.django_db


def test_waffle_flag_everyone_launches_gpu_types_for_customers(world, bob):
    assert "g1-gpu-rtx6000-1" not in [t["id"] for t in bob.get("/v4/linode/types").json()["data"]]
    call_command("waffle_flag", GPU_INSTANCES, "--everyone", stdout=StringIO())
    flag = Flag.objects.get(name=GPU_INSTANCES)
    assert flag.everyone is True and flag.employee_accounts is True
    assert "g1-gpu-rtx6000-1" in [t["id"] for t in bob.get("/v4/linode/types").json()["data"]]


def test_waffle_flag_deactivate_is_the_kill_switch(world, alice):
    call_command("waffle_flag", GPU_INSTANCES, "--deactivate", stdout=StringIO())
    assert Flag.objects.get(name=GPU_INSTANCES).everyone is False
    assert alice.get("/v4/linode/types/g1-gpu-rtx6000-1").status_code == 404


def test_waffle_flag_list_shows_the_flag(db):
    out = StringIO()
    call_command("waffle_flag", "--list", stdout=out)
    assert GPU_INSTANCES in out.getvalue()
