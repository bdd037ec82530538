"""Reads behind the instance and event endpoints: one account's rows, joined for serialization."""

from django.db.models import Case, CharField, F, QuerySet, Value, When
from django.db.models.functions import Length

from accounts.models import Account
from gpuadmin.queries import PreparedRead, row_or_none
from provisioning.models import Instance, Job


def instances_of(*, account: Account | None) -> QuerySet[Instance]:
    """Live instances of an account (a deleted one is gone from the API; its events remain)."""
    if account is None:
        return Instance.objects.none()
    return Instance.objects.filter(account=account, deleted_at__isnull=True).select_related("instance_type")


# What serializers.linode_object reads, as `QuerySet.values()` names it.
LINODE_COLUMNS = (
    "id", "label", "group", "status", "created", "updated", "instance_type_id", "region_id", "image_id",
    "ipv4", "ipv6", "tags", "host_id", "instance_type__disk_mib", "instance_type__memory_mib",
    "instance_type__vcpus", "instance_type__gpus", "instance_type__transfer_gb",
)  # fmt: skip


def linode_rows(instances: QuerySet) -> QuerySet:
    """`instances` as the rows linode_object reads (the user data's length, not its text)."""
    return instances.values(*LINODE_COLUMNS, user_data_length=Length("user_data"))


MAX_ID = 2**63 - 1  # ids past a bigint would make the database raise, not answer "no such row"


def instance_of(*, account: Account | None, instance_id: int) -> Instance | None:
    """Another account's instance is as absent as one that never existed."""
    if not 0 < instance_id <= MAX_ID:
        return None
    return row_or_none(instances_of(account=account).filter(pk=instance_id))


_INSTANCE_ROW = PreparedRead(
    lambda account_id, instance_id: linode_rows(
        Instance.objects.filter(account_id=account_id, deleted_at__isnull=True, pk=instance_id)
    ).order_by()[:1],
    account_id=int,
    instance_id=int,
)


def instance_row_of(*, account: Account | None, instance_id: int) -> dict | None:
    """instance_of as the row the Linode object is built from (linode_rows), compiled once per
    connection (PreparedRead): a view is two reads, this and the token's."""
    if account is None or not 0 < instance_id <= MAX_ID:
        return None
    return _INSTANCE_ROW.first(account_id=account.pk, instance_id=instance_id)


def events_of(*, account: Account | None) -> QuerySet[Job]:
    """The account's jobs as Linode events. A job a delete superseded is a `failed` event (Linode has no
    other word for "did not finish", and the SDK's pollers stop on it) whose message says so."""
    if account is None:
        return Job.objects.none()
    event_status = Case(
        When(status=Job.Status.SUPERSEDED, then=Value(Job.Status.FAILED.value)),
        default=F("status"),
        output_field=CharField(),
    )
    # Linode's `username` names a user of the account; a staff member's or the system's action (a
    # spin-up, a reconcile, a retry from the admin) shows null, as Linode's own system events do, so a
    # customer never learns a staff login.
    event_username = Case(
        When(actor__membership__account=F("account"), then=F("actor__username")),
        default=Value(None),
        output_field=CharField(),
    )
    return (
        Job.objects.filter(account=account)
        .select_related("instance")
        .annotate(event_status=event_status, event_username=event_username)
    )


def event_of(*, account: Account | None, event_id: int) -> Job | None:
    if not 0 < event_id <= MAX_ID:
        return None
    return events_of(account=account).filter(pk=event_id).first()
