"""The official linode_api4 SDK reads invoices, their items and the account's balances unchanged."""

import pytest
from linode_api4 import LinodeClient

from billing.services import invoice_finalize, invoice_generate, usage_sync
from tests.api.conftest import token_for
from tests.billing.helpers import at, created_instance, deleted
from tests.builders import make_account, make_gpu_plan, make_region, make_user

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def naive(text: str):
    """The SDK reads Linode's zone-less timestamps as naive datetimes (they are UTC)."""
    return at(text).replace(tzinfo=None)


def test_the_sdk_lists_invoices_and_items(live_server):
    make_region("us-east")
    user = make_user(account=make_account(), username="carol")
    account = user.membership.account
    instance = created_instance(account=account, plan=make_gpu_plan(1), created=at("2026-01-05 10:00"))
    deleted(instance, when=at("2026-01-05 20:01"))
    now = at("2026-02-01 02:00")
    usage_sync(now=now)
    invoice = invoice_finalize(
        invoice=invoice_generate(account=account, month=at("2026-01-01 00:00").date(), now=now), now=now
    )

    client = LinodeClient(token_for(user, "account:read_only"), base_url=live_server.url + "/v4")
    try:
        (found,) = client.account.invoices()
        assert (found.id, found.label, found.total, found.subtotal, found.tax) == (
            invoice.pk,
            "Invoice",
            16.5,
            16.5,
            0,
        )
        assert found.date == naive("2026-02-01 00:00")
        (item,) = found.items
        assert (item.quantity, item.amount, item.unit_price, item.type) == (11, 16.5, "1.50", "hourly")
        assert (item.from_date, item.to_date) == (naive("2026-01-05 10:00"), naive("2026-01-05 20:01"))
        assert client.account().balance == 16.5
    finally:
        client.session.close()  # before the live server's thread closes the test database


def test_the_sdk_reads_a_taxed_invoice_and_its_summary(live_server):
    from datetime import date
    from decimal import Decimal

    from accounts.models import Account
    from billing.models import TaxRate
    from billing.services import tax_rate_save

    make_region("us-east")
    user = make_user(account=make_account(), username="dora")
    account = user.membership.account
    Account.objects.filter(pk=account.pk).update(country="DE")
    tax_rate_save(
        tax_rate=TaxRate(country="DE", name="VAT", percent=Decimal("19"), valid_from=date(2020, 1, 1))
    )
    instance = created_instance(account=account, plan=make_gpu_plan(1), created=at("2026-01-05 10:00"))
    deleted(instance, when=at("2026-01-05 20:01"))
    now = at("2026-02-01 02:00")
    invoice_finalize(invoice=invoice_generate(account=account, month=date(2026, 1, 1), now=now), now=now)

    client = LinodeClient(token_for(user, "account:read_only"), base_url=live_server.url + "/v4")
    try:
        (found,) = client.account.invoices()
        assert (found.subtotal, found.tax, found.total) == (16.5, 3.14, 19.64)
        (summary,) = found.tax_summary  # the SDK wraps each entry in its MappedObject
        assert (summary.name, summary.tax) == ("VAT (19%)", 3.14)
        (item,) = found.items
        assert (item.amount, item.quantity) == (16.5, 11)
        assert client.account().balance == 19.64
    finally:
        client.session.close()


def test_the_sdk_sees_a_new_linode_in_the_balance_at_once(live_server):
    """Create a GPU Linode with the SDK and read the account straight after: no sync has run."""
    from io import StringIO

    from django.core.management import call_command

    from accounts.flags import GPU_INSTANCES
    from billing.models import UsageSegment
    from tests.builders import make_gpu_host, make_image

    region = make_region("us-east")
    make_gpu_host(region=region)
    make_gpu_plan(1)
    make_image()
    call_command("waffle_flag", GPU_INSTANCES, "--everyone", "--create", stdout=StringIO())
    user = make_user(account=make_account(), username="erin")

    client = LinodeClient(token_for(user), base_url=live_server.url + "/v4")
    try:
        assert client.account().balance_uninvoiced == 0
        linode = client.linode.instance_create(
            "g1-gpu-rtx6000-1", "us-east", image="linode/ubuntu22.04", root_pass="Corr3ct-Horse-Battery"
        )
        linode.invalidate()
        assert linode.status == "running"  # the create ran inline when its request committed
        account = client.account()
        assert (account.balance, account.balance_uninvoiced) == (0, 1.5)
        assert list(client.account.invoices()) == []
        assert not UsageSegment.objects.exists()
    finally:
        client.session.close()
