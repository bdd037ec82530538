"""A page costs a fixed number of queries, whatever the number of Linodes or events."""

import pytest

from accounts.selectors import account_of
from inventory.models import Region
from provisioning.models import Instance, Job
from tests.api.conftest import token_for

pytestmark = pytest.mark.django_db
MAX_QUERIES = 6  # token, count, page, and a little room; the point is that it does not grow


def add_linodes(user, count: int, world) -> None:
    account = account_of(user=user)
    region = Region.objects.get(pk="us-east")
    start = Instance.objects.count()
    instances = Instance.objects.bulk_create(
        Instance(
            account=account,
            label=f"bulk-{start + n}",
            region=region,
            instance_type=world.gpu_plan,
            image=world.image,
            status=Instance.Status.RUNNING,
            ipv4=[f"192.0.2.{n % 250 + 1}"],
            tags=["bulk"],
        )
        for n in range(count)
    )
    Job.objects.bulk_create(
        Job(instance=i, account=account, actor=user, action=Job.Action.CREATE, status=Job.Status.FINISHED)
        for i in instances
    )


def queries(api, path: str, limit) -> int:
    api.get(path)  # the token's last_used is written at most once a minute: not part of a steady page
    with limit(MAX_QUERIES) as captured:
        response = api.get(path, page_size=500)
    assert response.status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize("path", ["/v4/linode/instances", "/v4/account/events"])
def test_list_queries_do_not_grow_with_rows(world, employee, client, path, django_assert_max_num_queries):
    from tests.api.conftest import Api

    api = Api(client, token_for(employee))
    add_linodes(employee, 5, world)
    few = queries(api, path, django_assert_max_num_queries)
    add_linodes(employee, 45, world)
    many = queries(api, path, django_assert_max_num_queries)
    assert few == many
    assert api.get(path, page_size=500).json()["results"] == 50


def test_catalogue_queries_do_not_grow_with_rows(world, alice, django_assert_max_num_queries):
    for path in ("/v4/linode/types", "/v4/regions", "/v4/images"):
        with django_assert_max_num_queries(MAX_QUERIES + 3):  # + the flag's lookups
            assert alice.get(path).status_code == 200


def test_a_linode_view_is_a_fixed_number_of_queries(world, employee, client, django_assert_max_num_queries):
    from tests.api.conftest import Api

    api = Api(client, token_for(employee))
    add_linodes(employee, 5, world)
    linode = Instance.objects.first()
    api.get(f"/v4/linode/instances/{linode.pk}")
    with django_assert_max_num_queries(2):  # token, instance with its plan
        assert api.get(f"/v4/linode/instances/{linode.pk}").status_code == 200


def test_a_create_asks_the_flag_once_and_its_statements_do_not_grow(world, customer, client):
    """The plan and the account both ask the GPU flag; within one request it is decided once."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.flags import GPU_INSTANCES, gpu_plans_visible
    from gpuadmin.models import Flag
    from tests.api.conftest import Api

    Flag.objects.get(name=GPU_INSTANCES).accounts.add(account_of(user=customer))  # the slowest rule
    api = Api(client, token_for(customer))
    with CaptureQueriesContext(connection) as once:
        assert gpu_plans_visible(user=customer)
    one_decision = len(once.captured_queries)  # read now: the next request clears the log

    def create() -> list[str]:
        body = {"type": world.gpu_plan.pk, "region": "us-east", "image": world.image.pk}
        with CaptureQueriesContext(connection) as captured:
            response = api.post("/v4/linode/instances", {**body, "root_pass": "Create-Passw0rd!"})
        assert response.status_code == 200, response.json()
        return [q["sql"] for q in captured.captured_queries]

    create()  # the token's last_used is written at most once a minute: not part of a steady create
    first = create()
    add_linodes(customer, 7, world)
    later = create()
    flag_reads = [sql for sql in first if "gpuadmin_flag" in sql]
    assert len(flag_reads) == one_decision > 0
    assert len(first) == len(later)
