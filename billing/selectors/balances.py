"""The account's balances and promotions as GET /v4/account and the account's admin page show them."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Account
from billing.models import Invoice, Promotion
from billing.months import month_of
from billing.rating import ZERO, Credit, rate
from billing.selectors.pieces import charge_waiver, unbilled_pieces


def _promotions(*, account: Account, finalized_only: bool) -> list[Promotion]:
    promotions = Promotion.objects.filter(account=account).order_by("expires_at", "id")
    if finalized_only:
        promotions = promotions.annotate(
            spent=Coalesce(
                Sum("items__credit", filter=Q(items__invoice__status=Invoice.Status.FINALIZED)), ZERO
            )
        )
    return list(promotions)


def credit_of(promotion: Promotion, *, spent: Decimal) -> Credit:
    return Credit(
        promotion_id=promotion.pk,
        starts_at=promotion.starts_at,
        expires_at=promotion.expires_at,
        remaining=promotion.credit - spent,
        gpu_only=promotion.gpu_only,
    )


@dataclass(frozen=True)
class AccountBilling:
    """What GET /v4/account shows of billing. `balance` is everything invoiced (gpuadmin records no
    payments); `balance_uninvoiced` is what accrued up to now and is on no finalized invoice, rated
    now, before tax (Linode calls it the current estimated invoice). `current_month` is the part of it
    that belongs to this month; `credit_remaining` what each promotion has left after it."""

    balance: Decimal
    balance_uninvoiced: Decimal
    current_month: Decimal
    active_promotions: list[dict]
    credit_remaining: dict[int, Decimal]


def account_billing(*, account: Account, now: datetime | None = None) -> AccountBilling:
    now = now or timezone.now()
    balance = Invoice.objects.filter(account=account, status=Invoice.Status.FINALIZED).aggregate(
        total=Coalesce(Sum("total"), ZERO)
    )["total"]
    unbilled = unbilled_pieces(account=account, now=now)
    # Drafts are re-rated here, so only what finalized invoices took counts as spent.
    promotions = _promotions(account=account, finalized_only=True)
    credits = [credit_of(p, spent=p.spent) for p in promotions]
    rated = rate(unbilled, waived_reason=charge_waiver(account=account), credits=credits)
    spent: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for item in rated:
        if item.promotion_id is not None:
            spent[item.promotion_id] += item.credit
    remaining = {
        promotion.pk: credit.remaining - spent[promotion.pk]
        for promotion, credit in zip(promotions, credits, strict=True)
    }
    active = [_linode_promotion(p, remaining=remaining[p.pk]) for p in promotions if p.expires_at > now]
    this_month = month_of(now)
    return AccountBilling(
        balance=balance,
        balance_uninvoiced=sum((item.amount for item in rated), ZERO),
        current_month=sum((item.amount for item in rated if item.piece.month == this_month), ZERO),
        active_promotions=active,
        credit_remaining=remaining,
    )


def _linode_promotion(promotion: Promotion, *, remaining: Decimal) -> dict:
    """Linode's promotion object; it sends the amounts as strings. The trial has no monthly cap of its
    own, so the cap is the whole credit and this month's remainder is the remainder."""
    return {
        "credit_monthly_cap": f"{promotion.credit:.2f}",
        "credit_remaining": f"{remaining:.2f}",
        "description": promotion.summary,
        "expire_dt": promotion.expires_at.strftime("%Y-%m-%dT%H:%M:%S"),
        "image_url": "",
        "service_type": "linode",
        "summary": promotion.summary,
        "this_month_credit_remaining": f"{remaining:.2f}",
    }


def account_promotions(*, account: Account) -> list[Promotion]:
    return list(Promotion.objects.filter(account=account).order_by("-starts_at", "-id"))
