"""The one-week GPU trial credit."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account
from accounts.services import audit_record
from billing import selectors
from billing.exceptions import PromotionRefused
from billing.models import Promotion

GPU_TRIAL_DAYS = 7


def promotion_grant_gpu_trial(
    *, account: Account, actor: AbstractBaseUser | None = None, now: datetime | None = None
) -> Promotion:
    """A credit of GPUADMIN_GPU_TRIAL_CREDIT for GPU usage in the next 7 days; what is left then expires."""
    now = now or timezone.now()
    if selectors.charge_waiver(account=account):
        raise PromotionRefused(
            f"{account} is not charged ({account.get_kind_display().lower()} account); "
            "a trial credit would never be spent."
        )
    promotion = Promotion(
        account=account,
        kind=Promotion.Kind.GPU_TRIAL,
        summary=f"GPU trial: ${settings.GPUADMIN_GPU_TRIAL_CREDIT} for {GPU_TRIAL_DAYS} days of GPU usage",
        credit=Decimal(settings.GPUADMIN_GPU_TRIAL_CREDIT),
        gpu_only=True,
        starts_at=now,
        expires_at=now + timedelta(days=GPU_TRIAL_DAYS),
        granted_by=actor if actor is not None and actor.is_authenticated else None,
    )
    promotion.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            if Promotion.objects.filter(account=account, kind=Promotion.Kind.GPU_TRIAL).exists():
                raise PromotionRefused(f"{account} has had its GPU trial already.")
            promotion.save()
            audit_record(actor=actor, action="promotion.grant", target=promotion, detail=promotion.summary)
    except IntegrityError as exc:  # granted by someone else between the check and the insert
        raise PromotionRefused(f"{account} has had its GPU trial already.") from exc
    return promotion
