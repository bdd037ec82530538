"""The one-week GPU trial: a credit spent on GPU usage inside its week, and gone after."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from billing.exceptions import PromotionRefused
from billing.models import InvoiceItem, Promotion
from billing.selectors import account_billing
from billing.services import invoice_finalize, invoice_generate, promotion_grant_gpu_trial, usage_sync
from tests.billing.helpers import at, created_instance, deleted

pytestmark = pytest.mark.django_db

JAN, FEB = date(2026, 1, 1), date(2026, 2, 1)
GRANTED = at("2026-01-10 00:00")


@pytest.fixture(autouse=True)
def _trial_credit(settings):
    settings.GPUADMIN_GPU_TRIAL_CREDIT = "100.00"


def bill(account, month, now):
    usage_sync(now=now)
    return invoice_generate(account=account, month=month, now=now)


def test_the_trial_pays_gpu_hours_in_its_week_until_the_credit_runs_out(customer, gpu1):
    trial = promotion_grant_gpu_trial(account=customer, now=GRANTED)
    assert (trial.credit, trial.expires_at) == (Decimal("100.00"), at("2026-01-17 00:00"))
    first = created_instance(account=customer, plan=gpu1, created=at("2026-01-10 00:00"))
    deleted(first, when=at("2026-01-11 00:00"))  # 24 h = $36, all covered
    second = created_instance(account=customer, plan=gpu1, created=at("2026-01-12 00:00"))
    deleted(second, when=at("2026-01-14 00:00"))  # 48 h = $72, $64 left to cover
    invoice = invoice_finalize(
        invoice=bill(customer, JAN, at("2026-02-01 02:00")), now=at("2026-02-01 02:00")
    )
    assert [(i.list_amount, i.credit, i.amount) for i in invoice.items.order_by("from_at")] == [
        (Decimal("36.00"), Decimal("36.00"), Decimal("0.00")),
        (Decimal("72.00"), Decimal("64.00"), Decimal("8.00")),
    ]
    assert invoice.total == Decimal("8.00")
    trial.refresh_from_db()
    assert trial.used == trial.credit == sum(i.credit for i in InvoiceItem.objects.filter(promotion=trial))


def test_usage_after_the_week_is_charged_and_what_was_left_expires(customer, gpu1):
    trial = promotion_grant_gpu_trial(account=customer, now=GRANTED)
    instance = created_instance(account=customer, plan=gpu1, created=at("2026-01-16 12:00"))
    deleted(instance, when=at("2026-01-17 12:00"))  # 12 h inside the week, 12 h after it
    invoice = bill(customer, JAN, at("2026-02-01 02:00"))
    item = invoice.items.get()
    assert (item.quantity, item.list_amount, item.credit, item.amount) == (
        24,
        Decimal("36.00"),
        Decimal("18.00"),
        Decimal("18.00"),
    )
    trial.refresh_from_db()
    assert trial.remaining == Decimal("82.00")
    # Expired: later GPU usage gets nothing of the $82 left.
    later = created_instance(account=customer, plan=gpu1, created=at("2026-02-02 00:00"))
    deleted(later, when=at("2026-02-02 10:00"))
    february = bill(customer, FEB, at("2026-03-01 02:00"))
    assert [(i.credit, i.amount) for i in february.items.all()] == [(Decimal("0.00"), Decimal("15.00"))]


def test_the_trial_does_not_pay_for_standard_plans(customer, standard):
    promotion_grant_gpu_trial(account=customer, now=GRANTED)
    instance = created_instance(account=customer, plan=standard, created=at("2026-01-10 00:00"))
    deleted(instance, when=at("2026-01-11 00:00"))
    item = bill(customer, JAN, at("2026-02-01 02:00")).items.get()
    assert (item.credit, item.amount) == (Decimal("0.00"), Decimal("0.86"))  # 24 h x $0.036


def test_rebuilding_a_draft_gives_the_credit_back_before_spending_it_again(customer, gpu1):
    trial = promotion_grant_gpu_trial(account=customer, now=GRANTED)
    created_instance(account=customer, plan=gpu1, created=at("2026-01-10 00:00"))
    for now in ("2026-01-10 10:00", "2026-01-11 10:00", "2026-01-12 10:00"):
        bill(customer, JAN, at(now))
    trial.refresh_from_db()
    assert trial.used == Decimal("87.00")  # 58 h x $1.50, counted once, not three times


def test_the_account_shows_the_trial_and_what_is_left_of_it(customer, gpu1):
    promotion_grant_gpu_trial(account=customer, now=GRANTED)
    created_instance(account=customer, plan=gpu1, created=at("2026-01-10 00:00"))
    usage_sync(now=at("2026-01-10 10:00"))
    billing = account_billing(account=customer, now=at("2026-01-10 10:00"))
    assert billing.balance_uninvoiced == 0
    (promotion,) = billing.active_promotions
    assert promotion["credit_remaining"] == "85.00" and promotion["expire_dt"] == "2026-01-17T00:00:00"
    assert account_billing(account=customer, now=at("2026-01-20 00:00")).active_promotions == []


def test_one_trial_per_account_and_none_for_accounts_that_are_not_charged(customer, employee):
    promotion_grant_gpu_trial(account=customer, now=GRANTED)
    with pytest.raises(PromotionRefused, match="already"):
        promotion_grant_gpu_trial(account=customer, now=GRANTED)
    with pytest.raises(PromotionRefused, match="not charged"):
        promotion_grant_gpu_trial(account=employee, now=GRANTED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Promotion.objects.create(
            account=customer,
            kind=Promotion.Kind.GPU_TRIAL,
            summary="again",
            credit=Decimal("1"),
            starts_at=GRANTED,
            expires_at=at("2026-01-11 00:00"),
        )
    assert Promotion.objects.count() == 1


def test_a_promotion_cannot_give_more_than_it_holds(customer):
    trial = promotion_grant_gpu_trial(account=customer, now=GRANTED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Promotion.objects.filter(pk=trial.pk).update(used=Decimal("100.01"))


def test_grant_command(customer, capsys):
    call_command("grant_gpu_trial", customer.name)
    assert "GPU trial: $100.00 for 7 days" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already"):
        call_command("grant_gpu_trial", customer.name)
    with pytest.raises(CommandError, match="No account named"):
        call_command("grant_gpu_trial", "nobody")


def test_a_mistyped_trial_credit_fails_the_system_check(settings):
    from billing.apps import trial_credit_check

    for bad in ("abc", "-5", "0", "1.234"):
        settings.GPUADMIN_GPU_TRIAL_CREDIT = bad
        assert [e.id for e in trial_credit_check(None)] == ["billing.E001"]
    settings.GPUADMIN_GPU_TRIAL_CREDIT = "250.00"
    assert trial_credit_check(None) == []
