"""GET /v4/account/invoices, /{id}, /{id}/items as Linode's clients read them; /v4/account's balances."""

from datetime import date
from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import Account
from billing.services import invoice_finalize, invoice_generate, usage_sync
from tests.api.conftest import Api, reasons, token_for
from tests.billing.helpers import at, created_instance, deleted
from tests.builders import make_account, make_user

pytestmark = pytest.mark.django_db

JAN, FEB = date(2026, 1, 1), date(2026, 2, 1)
INVOICE_KEYS = {"id", "date", "label", "subtotal", "tax", "total", "billing_source", "tax_summary"}
ITEM_KEYS = {"amount", "from", "to", "label", "quantity", "type", "unit_price", "tax", "total", "region"}


def finalized_invoice(account, plan, created, ended, month=JAN):
    instance = created_instance(account=account, plan=plan, created=at(created))
    deleted(instance, when=at(ended))
    now = at("2026-03-01 02:00")
    usage_sync(now=now)
    return invoice_finalize(invoice=invoice_generate(account=account, month=month, now=now), now=now)


@pytest.fixture
def bob(db):
    return make_user(account=make_account(kind=Account.Kind.CUSTOMER), username="bob")


@pytest.fixture
def api(bob) -> Api:
    return Api(Client(), token_for(bob))


def test_an_invoice_and_its_items_are_linodes_objects(bob, api, gpu1):
    invoice = finalized_invoice(bob.membership.account, gpu1, "2026-01-05 10:00", "2026-01-05 20:01")
    listed = api.get("/v4/account/invoices").json()
    assert (listed["page"], listed["pages"], listed["results"]) == (1, 1, 1)
    (body,) = listed["data"]
    assert set(body) == INVOICE_KEYS
    assert body == {
        "id": invoice.pk,
        "date": "2026-02-01T00:00:00",
        "label": "Invoice",
        "subtotal": 16.5,
        "tax": 0.0,
        "total": 16.5,
        "billing_source": "linode",
        "tax_summary": [],
    }
    assert api.get(f"/v4/account/invoices/{invoice.pk}").json() == body
    items = api.get(f"/v4/account/invoices/{invoice.pk}/items").json()
    assert items["results"] == 1
    (item,) = items["data"]
    assert set(item) == ITEM_KEYS
    assert item == {
        "amount": 16.5,
        "from": "2026-01-05T10:00:00",
        "to": "2026-01-05T20:01:00",
        "label": item["label"],
        "quantity": 11,
        "type": "hourly",
        "unit_price": "1.50",
        "tax": 0.0,
        "total": 16.5,
        "region": "us-east",
    }
    assert item["label"].startswith(gpu1.label)


def test_drafts_are_not_shown_until_finalized(bob, api, gpu1):
    account = bob.membership.account
    created_instance(account=account, plan=gpu1, created=at("2026-01-05 10:00"))
    usage_sync(now=at("2026-01-10 00:00"))
    draft = invoice_generate(account=account, month=JAN, now=at("2026-01-10 00:00"))
    assert api.get("/v4/account/invoices").json()["results"] == 0
    assert api.get(f"/v4/account/invoices/{draft.pk}").status_code == 404


def test_another_accounts_invoice_is_not_found(bob, api, gpu1):
    other = finalized_invoice(make_account(), gpu1, "2026-01-05 10:00", "2026-01-05 20:01")
    for path in (f"/v4/account/invoices/{other.pk}", f"/v4/account/invoices/{other.pk}/items"):
        response = api.get(path)
        assert response.status_code == 404 and reasons(response) == ["Not found"]
    assert api.get("/v4/account/invoices").json()["data"] == []
    assert api.get("/v4/account/invoices/99999999999999999999").status_code == 404


def test_invoices_need_the_account_scope(bob, gpu1):
    invoice = finalized_invoice(bob.membership.account, gpu1, "2026-01-05 10:00", "2026-01-05 20:01")
    client = Client()
    assert Api(client).get("/v4/account/invoices").status_code == 401
    linodes_only = Api(client, token_for(bob, "linodes:read_write"))
    for path in ("/v4/account/invoices", f"/v4/account/invoices/{invoice.pk}/items"):
        response = linodes_only.get(path)
        assert response.status_code == 403
        assert response["X-Accepted-OAuth-Scopes"] == "account:read_only"
    reader = Api(client, token_for(bob, "account:read_only"))
    assert reader.get(f"/v4/account/invoices/{invoice.pk}").status_code == 200
    assert reader.post("/v4/account/invoices", {}).status_code in (403, 405)


def test_invoices_filter_page_and_sort_like_other_lists(bob, api, gpu1):
    account = bob.membership.account
    january = finalized_invoice(account, gpu1, "2026-01-05 10:00", "2026-01-05 20:01")
    february = finalized_invoice(account, gpu1, "2026-02-05 10:00", "2026-02-05 11:00", month=FEB)
    assert [i["id"] for i in api.get("/v4/account/invoices").json()["data"]] == [february.pk, january.pk]
    filtered = api.get("/v4/account/invoices", filters={"date": {"+lt": "2026-02-15T00:00:00"}})
    assert [i["id"] for i in filtered.json()["data"]] == [january.pk]
    by_total = api.get("/v4/account/invoices", filters={"total": {"+gt": 10}})
    assert [i["id"] for i in by_total.json()["data"]] == [january.pk]
    response = api.get("/v4/account/invoices", filters={"owner": 1})
    assert response.status_code == 400 and reasons(response) == ["Cannot filter on owner"]
    assert api.get("/v4/account/invoices", page_size=10).status_code == 400


def test_account_balances_come_from_billing(bob, api, gpu1, monkeypatch):
    account = bob.membership.account
    finalized_invoice(account, gpu1, "2026-01-05 10:00", "2026-01-05 20:01")  # $16.50 invoiced
    created_instance(account=account, plan=gpu1, created=at("2026-03-01 00:00"))
    usage_sync(now=at("2026-03-01 02:00"))
    monkeypatch.setattr("django.utils.timezone.now", lambda: at("2026-03-02 03:30"))
    body = api.get("/v4/account").json()
    # 27.5 h running in March, not invoiced yet: 28 h x $1.50.
    assert (body["balance"], body["balance_uninvoiced"]) == (16.5, 42.0)
    assert body["active_promotions"] == []


def test_account_balances_cost_the_same_queries_whatever_the_history(bob, api, gpu1, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    account = bob.membership.account
    monkeypatch.setattr("django.utils.timezone.now", lambda: at("2026-03-15 00:00"))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get("/v4/account").status_code == 200
        return len(captured)

    finalized_invoice(account, gpu1, "2026-01-01 10:00", "2026-01-01 12:00")
    created_instance(account=account, plan=gpu1, created=at("2026-03-01 00:00"))
    usage_sync(now=at("2026-03-01 01:00"))
    queries()  # the token's first use writes its last_used; count from the second request
    few = queries()
    for day in range(2, 9):
        instance = created_instance(account=account, plan=gpu1, created=at(f"2026-02-0{day} 10:00"))
        deleted(instance, when=at(f"2026-02-0{day} 12:00"))
        created_instance(account=account, plan=gpu1, created=at(f"2026-03-0{day} 00:00"))
    finalized_invoice(account, gpu1, "2026-02-10 10:00", "2026-02-10 12:00", month=FEB)
    assert queries() == few
    assert api.get("/v4/account").json()["balance"] == float(Decimal("3.00") * 9)
