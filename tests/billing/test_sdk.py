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
