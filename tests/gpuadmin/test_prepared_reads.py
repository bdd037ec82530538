"""PreparedRead: compiled once per connection, it answers what its queryset answers: the same models with
the same related objects already loaded (no query to reach them), the same dicts for values(), nothing
for a value no row has, and it refuses a read whose values it cannot bind safely."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.functions import Length
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiToken
from accounts.selectors import account_of, api_token_by_secret
from accounts.services import api_token_create
from gpuadmin.queries import PreparedRead
from inventory.models import Region
from provisioning.models import Instance
from tests.builders import make_account, make_instance, make_region, make_standard_plan, make_user

pytestmark = pytest.mark.django_db

TOKEN = PreparedRead(
    lambda token_hash: ApiToken.objects.select_related("user__membership__account").filter(
        token_hash=token_hash
    )[:1],
    token_hash=str,
)


def fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_models_and_their_related_objects_are_the_queryset_s_with_no_query_to_reach_them():
    tokens = [api_token_create(user=make_user(account=make_account())).token for _ in range(3)]
    TOKEN.first(token_hash="")  # PostgreSQL: the statement is prepared on this connection first
    for token in tokens:
        expected = ApiToken.objects.select_related("user__membership__account").get(pk=token.pk)
        with CaptureQueriesContext(connection) as captured:
            read = TOKEN.first(token_hash=token.token_hash)
            account = read.user.membership.account
        assert len(captured) == 1
        assert fields(read) == fields(expected) and fields(read.user) == fields(expected.user)
        assert fields(account) == fields(expected.user.membership.account)
        assert read._state.adding is False and read._state.db == "default"
    assert TOKEN.first(token_hash="no such hash") is None


def test_values_reads_give_the_queryset_s_dicts_with_its_conversions():
    region = make_region("eu-prepared")
    plan = make_standard_plan()
    instances = [make_instance(plan=plan, region=region) for _ in range(2)]
    Instance.objects.filter(pk=instances[0].pk).update(tags=["a-tag"], ipv4=["203.0.113.9"])

    def build(account_id, instance_id):
        return Instance.objects.filter(account_id=account_id, pk=instance_id).values(
            "id",
            "label",
            "tags",
            "ipv4",
            "created",
            "instance_type__vcpus",
            user_data_length=Length("user_data"),
        )

    read = PreparedRead(build, account_id=int, instance_id=int)
    for instance in instances:
        expected = list(build(instance.account_id, instance.pk))
        assert read.rows(account_id=instance.account_id, instance_id=instance.pk) == expected
        assert isinstance(expected[0]["tags"], list) and expected[0]["created"].tzinfo is not None
    other_account = make_account()
    assert read.rows(account_id=other_account.pk, instance_id=instances[0].pk) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_it_is_prepared_once_per_session_and_then_executed():
    read = PreparedRead(lambda region_id: Region.objects.filter(pk=region_id)[:1], region_id=str)
    make_region("eu-one"), make_region("eu-two")
    connection.close()  # a session of its own: another read of the same SQL may have prepared it
    with CaptureQueriesContext(connection) as captured:
        assert read.first(region_id="eu-one").pk == "eu-one"
        assert read.first(region_id="eu-two").pk == "eu-two"
        assert read.first(region_id="eu-none") is None
    sent = [query["sql"].split()[0] for query in captured.captured_queries]
    assert sent == ["PREPARE", "EXECUTE", "EXECUTE", "EXECUTE"]
    connection.close()  # a new session has none of the old one's statements: prepared again
    with CaptureQueriesContext(connection) as captured:
        assert read.first(region_id="eu-one").pk == "eu-one"
    assert [query["sql"].split()[0] for query in captured.captured_queries] == ["PREPARE", "EXECUTE"]


def test_it_is_compiled_once_per_connection():
    read = PreparedRead(lambda region_id: Region.objects.filter(pk=region_id)[:1], region_id=str)
    make_region("eu-one"), make_region("eu-two")
    assert read.first(region_id="eu-one").pk == "eu-one"
    compiled = dict(read._compiled)
    assert read.first(region_id="eu-two").pk == "eu-two"
    assert dict(read._compiled) == compiled and len(compiled) == 1


@pytest.mark.parametrize(
    "build",
    [
        lambda name: Region.objects.filter(label__icontains=name),  # the value is escaped and wrapped
        lambda name: Region.objects.filter(pk=name.upper()),  # changed before it reaches the SQL
        lambda name: Region.objects.filter(pk=name).values_list("pk"),  # a shape it does not build
        lambda name: Region.objects.filter(pk=name) | Region.objects.filter(label=name),  # twice
    ],
)
def test_a_read_whose_value_is_not_one_plain_parameter_is_refused(build):
    make_region("eu-refused")
    with pytest.raises(TypeError):
        PreparedRead(build, name=str).rows(name="eu-refused")


def test_a_user_in_no_account_comes_with_no_membership_and_no_query_to_learn_it():
    user = get_user_model().objects.create_user(username="no-account", password="x")
    token = api_token_create(user=user).token
    TOKEN.first(token_hash="")
    with CaptureQueriesContext(connection) as captured:
        found = TOKEN.first(token_hash=token.token_hash)
        assert account_of(user=found.user) is None
    assert len(captured) == 1


def test_the_api_token_lookup_reads_one_row_with_its_user_and_account():
    issued = api_token_create(user=make_user(account=make_account()))
    api_token_by_secret(secret="")  # PostgreSQL: the statement is prepared on this connection first
    with CaptureQueriesContext(connection) as captured:
        found = api_token_by_secret(secret=issued.secret)
        assert found.pk == issued.token.pk
        assert found.user.membership.account.pk == issued.token.user.membership.account.pk
    assert len(captured) == 1
    assert api_token_by_secret(secret="0" * 64) is None
