from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from accounts.models import Account, ApiToken, AuditRecord, Membership
from accounts.scopes import ALL, parse_scopes
from accounts.selectors import origin_of
from accounts.tokens import hash_secret, new_secret
from gpuadmin.validation import clean_for_insert

User = get_user_model()

LAST_USED_RESOLUTION = timedelta(minutes=1)


class NoAccount(Exception):
    """The user belongs to no account, so it can own nothing."""


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    target: models.Model,
    detail: str = "",
    origin: str | None = None,
) -> AuditRecord:
    """One audit row. `origin` defaults to what the actor is (selectors.origin_of, without an account)."""
    record = AuditRecord(
        actor=actor if actor is not None and actor.is_authenticated else None,
        origin=origin or origin_of(actor=actor),
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        target_repr=str(target)[:255],
        detail=detail,
    )
    clean_for_insert(record)  # its one constraint, a known origin, is the field's choices as well
    record.save()
    return record


def audit_record_many(
    *, actor: AbstractBaseUser | None, action: str, targets: list[tuple[models.Model, str]]
) -> None:
    """One audit record per (target, detail), in one insert per batch: for services that change many
    rows at once (a month's invoices), where one record per row is still what the audit trail needs."""
    actor = actor if actor is not None and actor.is_authenticated else None
    records = []
    for target, detail in targets:
        record = AuditRecord(
            actor=actor,
            action=action,
            target_type=target._meta.label_lower,
            target_id=str(target.pk),
            target_repr=str(target)[:255],
            detail=detail,
        )
        record.clean_fields(exclude=["actor"])
        records.append(record)
    AuditRecord.objects.bulk_create(records, batch_size=2000)


def account_create(
    *, name: str, email: str, kind: str = Account.Kind.CUSTOMER, company: str = "", country: str = ""
) -> Account:
    account = Account(name=name, email=email, kind=kind, company=company, country=country)
    account.full_clean()
    account.save()
    return account


def account_limits_set(
    *, account: Account, gpu_limit: int | None, instance_limit: int | None, actor: AbstractBaseUser | None
) -> Account:
    """Set how many GPUs and instances the account may hold at once (None: its kind's default). A limit
    below what it holds now is allowed: it holds what it has, and nothing more is created."""
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        before = (locked.gpu_limit, locked.instance_limit)
        locked.gpu_limit, locked.instance_limit = gpu_limit, instance_limit
        locked.full_clean()
        if before != (gpu_limit, instance_limit):
            locked.save(update_fields=["gpu_limit", "instance_limit"])

            def shown(value: int | None) -> str:
                return "default" if value is None else str(value)

            audit_record(
                actor=actor,
                action="account.limits",
                target=locked,
                detail=f"GPUs {shown(before[0])} -> {shown(gpu_limit)}, "
                f"instances {shown(before[1])} -> {shown(instance_limit)}",
            )
    account.gpu_limit, account.instance_limit = gpu_limit, instance_limit
    return locked


def user_create(
    *, username: str, email: str, password: str, account: Account, role: str = Membership.Role.MEMBER
) -> AbstractBaseUser:
    with transaction.atomic():
        user = User(username=username, email=email)
        user.set_password(password)
        user.full_clean()
        user.save()
        membership = Membership(user=user, account=account, role=role)
        membership.full_clean()
        membership.save()
    return user


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def api_token_create(
    *,
    user: AbstractBaseUser,
    scopes: str = ALL,
    label: str = "",
    expiry_days: int | None = None,
    actor: AbstractBaseUser | None = None,
) -> IssuedToken:
    """Issue a personal access token. Raises InvalidScopes for a bad scope string."""
    parsed = parse_scopes(scopes)
    if expiry_days is not None and expiry_days < 1:
        raise ValueError("A token's expiry is a positive number of days (leave it out for no expiry).")
    secret = new_secret()
    with transaction.atomic():
        token = ApiToken(
            user=user,
            label=label,
            token_hash=hash_secret(secret),
            scopes=str(parsed),
            expiry=timezone.now() + timedelta(days=expiry_days) if expiry_days is not None else None,
        )
        token.full_clean()
        token.save()
        audit_record(actor=actor, action="api_token.create", target=token, detail=f"scopes {token.scopes}")
    return IssuedToken(token=token, secret=secret)


def api_token_revoke(*, token: ApiToken, actor: AbstractBaseUser | None = None) -> None:
    with transaction.atomic():
        audit_record(actor=actor, action="api_token.revoke", target=token)
        token.delete()


def api_token_mark_used(*, token: ApiToken, now: datetime) -> None:
    """Record use at most once a minute, so the hot path is not a write on every request."""
    if token.last_used is not None and now - token.last_used < LAST_USED_RESOLUTION:
        return
    ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    token.last_used = now
