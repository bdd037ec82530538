from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction

from accounts.models import Account, AuditRecord, Membership

User = get_user_model()


class NoAccount(Exception):
    """The user belongs to no account, so it can own nothing."""


def audit_record(
    *, actor: AbstractBaseUser | None, action: str, target: models.Model, detail: str = ""
) -> AuditRecord:
    record = AuditRecord(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        target_repr=str(target)[:255],
        detail=detail,
    )
    record.full_clean()
    record.save()
    return record


def account_create(*, name: str, email: str, kind: str = Account.Kind.CUSTOMER, company: str = "") -> Account:
    account = Account(name=name, email=email, kind=kind, company=company)
    account.full_clean()
    account.save()
    return account


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
