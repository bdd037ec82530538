"""Every write to an instance's life: create, power, resize, delete.

Views, admin actions and tasks all call these; none of them repeats a rule.
"""

import re
import secrets
from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.flags import gpu_plans_visible, gpu_plans_visible_for, provisioning_enabled
from accounts.limits import account_limits
from accounts.models import Account
from accounts.selectors import account_of, origin_of
from accounts.services import audit_record
from gpuadmin.queries import PreparedRead
from gpuadmin.validation import clean_for_insert
from inventory.models import Image, InstanceType, Region
from inventory.selectors import plan_available
from networking.exceptions import AddressesExhausted
from networking.services import address_claim, free_addresses
from provisioning import jobs
from provisioning.claims import allocation_claim, capacity_explanation
from provisioning.cloudinit import authorized_keys_of, decode_user_data, user_data
from provisioning.exceptions import (
    AccountLimitReached,
    AccountSuspended,
    InstanceBusy,
    InvalidRequest,
    LabelTaken,
    NoCapacity,
    PlanNotFound,
    ProvisioningDisabled,
    ProvisioningError,
    RegionNotValid,
)
from provisioning.models import LABEL_RE, Instance, Job
from provisioning.selectors import RETRYABLE, account_usage, instance_last_job

ROOT_PASS_MIN, ROOT_PASS_MAX = 11, 128
LIMIT_REACHED = "Account Limit reached. Please open a support ticket."
TAG_MIN, TAG_MAX = 3, 50
SSH_KEY_PREFIXES = (
    "ssh-rsa ",
    "ssh-ed25519 ",
    "ecdsa-sha2-",
    "sk-ssh-ed25519@",
    "sk-ecdsa-sha2-",
    "ssh-dss ",
)


# The catalogue reads of every create, compiled once per connection (gpuadmin.queries.PreparedRead).
_PLAN = PreparedRead(
    lambda plan_id: InstanceType.objects.select_related("gpu_model").filter(pk=plan_id).order_by()[:1],
    plan_id=str,
)
_REGION = PreparedRead(lambda region_id: Region.objects.filter(pk=region_id).order_by()[:1], region_id=str)
_IMAGE = PreparedRead(
    lambda image_id: Image.objects.filter(pk=image_id, public=True).order_by()[:1], image_id=str
)


def plan_for(*, user: AbstractBaseUser | None, plan_id: str) -> InstanceType:
    """The plan a user may buy. A GPU plan hidden by the flag is as absent as a plan that does not exist."""
    plan = _PLAN.first(plan_id=plan_id)
    if plan is None or (plan.is_gpu and not gpu_plans_visible(user=user)):
        raise PlanNotFound("A valid plan type by that ID was not found")
    return plan


def region_for(*, region_id: str) -> Region:
    region = _REGION.first(region_id=region_id)
    if region is None:
        raise RegionNotValid("region is not valid")
    return region


def image_for(*, image_id: str) -> Image:
    image = _IMAGE.first(image_id=image_id)
    if image is None:
        raise InvalidRequest(f"Not found: image {image_id!r} does not exist.", field="image")
    return image


def validate_label(label: str) -> None:
    if not isinstance(label, str) or not re.fullmatch(LABEL_RE, label):
        raise InvalidRequest(
            "Label must be 3-64 characters of letters, digits, '-', '_' and '.', and begin and end with a "
            "letter or digit.",
            field="label",
        )
    if any(pair in label for pair in ("--", "__", "..")):
        raise InvalidRequest(
            "Label must not contain two dashes, underscores or periods in a row.", field="label"
        )


def _validate_tags(tags: Sequence[str]) -> list[str]:
    cleaned = []
    for tag in tags:
        if not isinstance(tag, str) or not TAG_MIN <= len(tag) <= TAG_MAX:
            raise InvalidRequest(f"Tags must be {TAG_MIN}-{TAG_MAX} characters.", field="tags")
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned


def validate_authorized_keys(authorized_keys: Sequence[str]) -> None:
    for key in authorized_keys:
        if not isinstance(key, str) or not key.startswith(SSH_KEY_PREFIXES) or "\n" in key:
            raise InvalidRequest(
                "authorized_keys must be SSH public keys, one per entry.", field="authorized_keys"
            )


def _validate_credentials(
    *, image: Image | None, root_pass: str | None, authorized_keys: Sequence[str]
) -> None:
    if root_pass is not None:
        if not isinstance(root_pass, str) or not ROOT_PASS_MIN <= len(root_pass) <= ROOT_PASS_MAX:
            raise InvalidRequest(
                f"root_pass must be {ROOT_PASS_MIN}-{ROOT_PASS_MAX} characters.", field="root_pass"
            )
        classes = sum(bool(re.search(p, root_pass)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
        if classes < 3:
            raise InvalidRequest(
                "root_pass must contain at least three of: lower case, upper case, digits, punctuation.",
                field="root_pass",
            )
    validate_authorized_keys(authorized_keys)
    if image is not None and not root_pass and not authorized_keys:
        raise InvalidRequest("root_pass is required when deploying an image.", field="root_pass")
    if image is None and (root_pass or authorized_keys):
        raise InvalidRequest("root_pass and authorized_keys need an image to deploy.", field="image")


def validate_user_data(*, image: Image | None, encoded: str | None) -> str:
    """Linode's metadata.user_data: base64, at most 16 KiB decoded, and only with an image to deploy.
    Returns what the instance keeps ("" for none)."""
    if not encoded:
        return ""
    if not isinstance(encoded, str):
        raise InvalidRequest("user_data must be base64-encoded.", field="metadata.user_data")
    if image is None:
        raise InvalidRequest("user_data needs an image to deploy.", field="metadata.user_data")
    try:
        decode_user_data(encoded)
    except ValueError as exc:
        raise InvalidRequest(str(exc), field="metadata.user_data") from exc
    return encoded


def _generated_label(*, account: Account, region: Region, plan: InstanceType) -> str:
    stem = "gpu" if plan.is_gpu else "linode"
    while True:
        label = f"{stem}-{region.id}-{secrets.token_hex(3)}"
        if not Instance.objects.filter(account=account, label=label, deleted_at__isnull=True).exists():
            return label


def _label_is_taken(*, account: Account, label: str, exclude: Instance | None = None) -> bool:
    taken = Instance.objects.filter(account=account, label=label, deleted_at__isnull=True)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    return taken.exists()


def _plan_visible_check(*, account: Account, actor: AbstractBaseUser | None, plan: InstanceType) -> None:
    if not plan.is_gpu or gpu_plans_visible_for(actor=actor, account=account):
        return
    own = account_of(user=actor)
    if own is not None and own.pk == account.pk:
        raise PlanNotFound("A valid plan type by that ID was not found")
    # Staff acting for the account: the same refusal, in words that say whose flag decided.
    raise PlanNotFound(
        f"{account.name} does not see GPU plans: the gpu_instances flag does not let this account in "
        "(add it to the flag, or launch)."
    )


def _limits_check(*, account: Account, plan: InstanceType, new_instance: bool, gpus_more: int) -> None:
    """Refuse what would take the account past its limits. Called under the account's row lock
    (_account_locked) so that two creates racing for the last GPU of a limit cannot both pass."""
    limits = account_limits(account=account)
    if limits.gpus.value is None and limits.instances.value is None:
        return  # nothing to count against
    usage = account_usage(account_id=account.pk)
    whose = (
        ""
        if not limits.instances.default
        else f" (the default for {account.get_kind_display().lower()} accounts)"
    )
    if new_instance and not limits.instances.allows(usage.instances + 1):
        raise AccountLimitReached(
            f"{LIMIT_REACHED} {account.name} may have at most {limits.instances.value} instances at once"
            f"{whose}; it has {usage.instances}.",
            limit="instances",
        )
    whose = (
        "" if not limits.gpus.default else f" (the default for {account.get_kind_display().lower()} accounts)"
    )
    if gpus_more > 0 and not limits.gpus.allows(usage.gpus + gpus_more):
        raise AccountLimitReached(
            f"{LIMIT_REACHED} {account.name} may hold at most {limits.gpus.value} GPUs at once{whose}; "
            f"it holds {usage.gpus} and {plan.id} needs {gpus_more}.",
            limit="gpus",
        )


def _account_locked(account: Account) -> Account:
    """The account's row, locked until the transaction ends: every create, retry and resize of the
    account that may count against its limits takes this lock first, then the instance's, then hosts'."""
    limits = account_limits(account=account)
    if limits.gpus.value is None and limits.instances.value is None:
        return account  # nothing counts against an unlimited account: its creates need not queue here
    return Account.objects.select_for_update().get(pk=account.pk)


def instance_create_problems(
    *,
    account: Account,
    actor: AbstractBaseUser | None,
    plan: InstanceType,
    region: Region,
    image: Image | None,
    label: str | None = None,
    root_pass: str | None = None,
    authorized_keys: Sequence[str] = (),
    tags: Sequence[str] = (),
    with_capacity: bool = True,
    with_limits: bool = True,
    metadata_user_data: str | None = None,
) -> list[ProvisioningError]:
    """Every reason instance_create would refuse this request now, in the order it checks them; writes
    nothing. A form shows them all at once; instance_create raises the first.

    instance_create leaves out what it decides again under its locks (capacity, the account's limits)."""
    problems: list[ProvisioningError] = []

    def check(call, *args, **kwargs) -> bool:
        try:
            call(*args, **kwargs)
        except ProvisioningError as exc:
            problems.append(exc)
            return False
        return True

    if not account.active:
        problems.append(AccountSuspended(f"The account {account} is suspended; it cannot own a new Linode."))
    if not provisioning_enabled():
        problems.append(
            ProvisioningDisabled(
                "Provisioning is paused by the operators; no new instances can be created now."
            )
        )
    plan_ok = check(_plan_visible_check, account=account, actor=actor, plan=plan)
    check(_validate_credentials, image=image, root_pass=root_pass, authorized_keys=list(authorized_keys))
    check(validate_user_data, image=image, encoded=metadata_user_data)
    check(_validate_tags, tags)
    if label is not None and check(validate_label, label) and _label_is_taken(account=account, label=label):
        problems.append(LabelTaken("Label must be unique among your linodes"))
    if with_limits and plan_ok:
        check(_limits_check, account=account, plan=plan, new_instance=True, gpus_more=plan.gpus)
    if with_capacity and plan_ok and not plan_available(plan=plan, region=region):
        problems.append(NoCapacity(capacity_explanation(plan=plan, region=region)))
    if with_capacity and not free_addresses().filter(pool__region=region).exists():
        problems.append(NoCapacity(f"{region.id} has no free public IPv4 address"))
    return problems


def instance_create(
    *,
    account: Account,
    actor: AbstractBaseUser | None,
    plan: InstanceType,
    region: Region,
    image: Image | None,
    label: str | None = None,
    root_pass: str | None = None,
    authorized_keys: Sequence[str] = (),
    booted: bool = True,
    tags: Sequence[str] = (),
    group: str = "",
    origin: str | None = None,
    metadata_user_data: str | None = None,
) -> Instance:
    """Validate, claim the resources and write the instance and its create job; the task runs on commit.

    `metadata_user_data` is Linode's metadata.user_data (base64): the seed carries it to cloud-init beside
    the root credentials.

    `origin` says who is behind it (accounts.models.Origin); by default what the actor is to the account.
    The GPU flag is the account's (gpu_plans_visible_for): staff cannot buy what the account cannot.
    """
    authorized_keys = list(authorized_keys)
    problems = instance_create_problems(
        account=account,
        actor=actor,
        plan=plan,
        region=region,
        image=image,
        label=label,
        root_pass=root_pass,
        authorized_keys=authorized_keys,
        tags=tags,
        with_capacity=False,  # the claim decides, under its locks
        with_limits=False,  # decided below, under the account's lock
        metadata_user_data=metadata_user_data,
    )
    if problems:
        raise problems[0]
    tags = _validate_tags(tags)
    with transaction.atomic():
        _limits_check(account=_account_locked(account), plan=plan, new_instance=True, gpus_more=plan.gpus)
        if label is None:
            label = _generated_label(account=account, region=region, plan=plan)
        # A label the caller chose was found free just above (LabelTaken); one a racing create took
        # since then is the insert's IntegrityError.
        instance = Instance(
            account=account,
            label=label,
            group=group,
            region=region,
            instance_type=plan,
            image=image,
            booted=booted,
            tags=tags,
            status=Instance.Status.PROVISIONING,
            cloud_init_user_data=user_data(
                hostname=label, root_pass=root_pass, authorized_keys=authorized_keys
            )
            if image is not None
            else "",
            user_data=validate_user_data(image=image, encoded=metadata_user_data),
        )
        clean_for_insert(instance)
        try:
            # No savepoint of its own: the LabelTaken raised ends this whole transaction anyway.
            with transaction.atomic(savepoint=False):
                instance.save()
        except IntegrityError as exc:
            raise LabelTaken("Label must be unique among your linodes") from exc
        job = _claim_and_start_create(instance=instance, actor=actor, origin=origin, new_instance=True)
        audit_record(
            actor=actor,
            origin=job.origin,
            action="instance.create",
            target=instance,
            detail=f"{plan.id} in {region.id} (job {job.pk})",
        )
    return instance


def _claim_and_start_create(
    *, instance: Instance, actor: AbstractBaseUser | None, origin: str | None, new_instance: bool
) -> Job:
    """Claim what the instance's plan needs in its region and write its create job (inside the caller's
    transaction): the part of a create that a retry of a failed create does again. An instance inserted
    in this transaction (`new_instance`) holds no address and has no job yet: neither is asked for."""
    allocation = allocation_claim(instance=instance, plan=instance.instance_type, region=instance.region)
    try:
        address = address_claim(instance=instance, region=instance.region, new_instance=new_instance)
    except AddressesExhausted as exc:
        raise NoCapacity(exc.message) from exc
    instance.ipv4 = [address.address]
    instance.save(update_fields=["ipv4", "updated"])
    return jobs.job_start(
        instance=instance,
        action=Job.Action.CREATE,
        actor=actor,
        origin=origin,
        params={"allocation": allocation.pk},
        new_instance=new_instance,
    )


def instance_update(
    *,
    instance: Instance,
    actor: AbstractBaseUser | None,
    label: str | None = None,
    tags: Sequence[str] | None = None,
    group: str | None = None,
    origin: str | None = None,
) -> Instance:
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance.pk)
        fields = []
        if label is not None and label != instance.label:
            validate_label(label)
            if _label_is_taken(account=instance.account, label=label, exclude=instance):
                raise LabelTaken("Label must be unique among your linodes")
            instance.label = label
            fields.append("label")
        if tags is not None:
            instance.tags = _validate_tags(tags)
            fields.append("tags")
        if group is not None:
            instance.group = group
            fields.append("group")
        if fields:
            instance.full_clean()
            try:
                with transaction.atomic():
                    instance.save(update_fields=[*fields, "updated"])
            except IntegrityError as exc:
                raise LabelTaken("Label must be unique among your linodes") from exc
            audit_record(
                actor=actor,
                origin=origin or origin_of(actor=actor, account=instance.account),
                action="instance.update",
                target=instance,
                detail=", ".join(fields),
            )
    return instance


# The audit row of each power job names what it does, as the event does.
AUDIT_ACTIONS = {
    Job.Action.BOOT: "instance.boot",
    Job.Action.SHUTDOWN: "instance.shutdown",
    Job.Action.REBOOT: "instance.reboot",
    Job.Action.DELETE: "instance.delete",
}


def _power_job(
    *,
    instance: Instance,
    actor: AbstractBaseUser | None,
    origin: str | None,
    action: str,
    status: str,
    booted: bool | None,
    detail: str = "",
) -> Job:
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance.pk)
        if instance.deleted_at is not None or instance.status == Instance.Status.DELETING:
            raise InstanceBusy("Linode busy.")
        if instance.status == Instance.Status.FAILED:
            raise InvalidRequest(
                f"Instance {instance.pk} failed to provision ({instance.status_reason}); "
                "it can only be deleted."
            )
        instance.status = status
        if booted is not None:
            instance.booted = booted
        instance.save(update_fields=["status", "booted", "updated"])
        job = jobs.job_start(instance=instance, action=action, actor=actor, origin=origin)
        audit_record(
            actor=actor,
            origin=job.origin,
            action=AUDIT_ACTIONS[action],
            target=instance,
            detail=f"job {job.pk}" + (f": {detail}" if detail else ""),
        )
        return job


def instance_boot(
    *, instance: Instance, actor: AbstractBaseUser | None, origin: str | None = None, detail: str = ""
) -> Job:
    """Start the instance. `detail` says why, for the audit row, when the system boots it."""
    return _power_job(
        instance=instance,
        actor=actor,
        origin=origin,
        action=Job.Action.BOOT,
        status=Instance.Status.BOOTING,
        booted=True,
        detail=detail,
    )


def instance_shutdown(
    *, instance: Instance, actor: AbstractBaseUser | None, origin: str | None = None
) -> Job:
    return _power_job(
        instance=instance,
        actor=actor,
        origin=origin,
        action=Job.Action.SHUTDOWN,
        status=Instance.Status.SHUTTING_DOWN,
        booted=False,
    )


def instance_reboot(*, instance: Instance, actor: AbstractBaseUser | None, origin: str | None = None) -> Job:
    return _power_job(
        instance=instance,
        actor=actor,
        origin=origin,
        action=Job.Action.REBOOT,
        status=Instance.Status.REBOOTING,
        booted=True,
    )


def instance_delete(*, instance: Instance, actor: AbstractBaseUser | None, origin: str | None = None) -> Job:
    """Accepted in any state, as Linode's is. The instance is gone for its account at once (the API no
    longer shows it, its label is free, billing stops); a job in flight is superseded (it stops and undoes
    what it did, see provisioning.workflows) and the delete job tears the rest down. A delete already in
    flight is the answer to a second one.
    """
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance.pk)
        if instance.status == Instance.Status.DELETED:
            raise InvalidRequest(f"Instance {instance.pk} is already deleted.")
        pending = Job.objects.filter(instance=instance, status__in=Job.IN_FLIGHT).first()
        if pending is not None and pending.action == Job.Action.DELETE:
            return pending
        if pending is not None:
            # Out of the in-flight set first, so the delete can be the one job in flight.
            Job.objects.filter(pk=pending.pk).update(status=Job.Status.SUPERSEDED)
        instance.status = Instance.Status.DELETING
        instance.booted = False
        instance.deleted_at = instance.deleted_at or timezone.now()
        instance.save(update_fields=["status", "booted", "deleted_at", "updated"])
        job = jobs.job_start(instance=instance, action=Job.Action.DELETE, actor=actor, origin=origin)
        if pending is not None:
            jobs.job_supersede(job=pending, delete=job)
        audit_record(
            actor=actor,
            origin=job.origin,
            action=AUDIT_ACTIONS[Job.Action.DELETE],
            target=instance,
            detail=f"job {job.pk}" + (f": supersedes {pending.action} job {pending.pk}" if pending else ""),
        )
    return job


def instance_resize(
    *, instance: Instance, actor: AbstractBaseUser | None, plan: InstanceType, origin: str | None = None
) -> Job:
    """Cold resize: the task shuts down, moves the allocation, redefines and boots again if it was running."""
    if plan.pk == instance.instance_type_id:
        raise InvalidRequest("Linode is already running this plan.", field="type")
    if plan.is_gpu != instance.instance_type.is_gpu:
        raise InvalidRequest(
            "A GPU Linode can only be resized to another GPU plan, and the reverse.", field="type"
        )
    if plan.is_gpu and plan.gpu_model_id != instance.instance_type.gpu_model_id:
        raise InvalidRequest("Resize keeps the GPU model; choose a plan with the same GPU.", field="type")
    with transaction.atomic():
        account = _account_locked(instance.account)
        locked = Instance.objects.select_for_update().get(pk=instance.pk)
        if locked.status not in (Instance.Status.RUNNING, Instance.Status.OFFLINE):
            raise InstanceBusy("Linode busy.")
        more = plan.gpus - locked.instance_type.gpus
        _limits_check(account=account, plan=plan, new_instance=False, gpus_more=more)
        locked.status = Instance.Status.RESIZING
        locked.save(update_fields=["status", "updated"])
        job = jobs.job_start(
            instance=locked,
            action=Job.Action.RESIZE,
            actor=actor,
            origin=origin,
            params={"from": locked.instance_type_id, "to": plan.pk, "was_running": locked.booted},
        )
        audit_record(
            actor=actor,
            origin=job.origin,
            action="instance.resize",
            target=locked,
            detail=f"{locked.instance_type_id} -> {plan.pk} (job {job.pk})",
        )
    return job


def instance_rebuild(
    *,
    instance: Instance,
    actor: AbstractBaseUser | None,
    image: Image,
    root_pass: str | None = None,
    authorized_keys: Sequence[str] = (),
    booted: bool = True,
    origin: str | None = None,
    metadata_user_data: str | None = None,
) -> Instance:
    """Deploy `image` afresh: the task recreates the disk from it (same size) and writes a new seed with
    the new credentials. The GPUs, cores, memory, host and address stay: the allocation is not touched.
    `metadata_user_data` replaces the customer's user data; None keeps what the instance had."""
    authorized_keys = list(authorized_keys)
    _validate_credentials(image=image, root_pass=root_pass, authorized_keys=authorized_keys)
    new_user_data = (
        None if metadata_user_data is None else validate_user_data(image=image, encoded=metadata_user_data)
    )
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance.pk)
        if locked.status not in (Instance.Status.RUNNING, Instance.Status.OFFLINE):
            raise InstanceBusy("Linode busy.")
        previous_image, previous_user_data = locked.image_id, locked.cloud_init_user_data
        previous_customer_data = locked.user_data
        if new_user_data is not None:
            locked.user_data = new_user_data
        locked.image = image
        locked.cloud_init_user_data = user_data(
            hostname=locked.label, root_pass=root_pass, authorized_keys=authorized_keys
        )
        locked.status = Instance.Status.REBUILDING
        locked.booted = booted
        locked.full_clean()
        locked.save(
            update_fields=["image", "cloud_init_user_data", "user_data", "status", "booted", "updated"]
        )
        job = jobs.job_start(
            instance=locked,
            action=Job.Action.REBUILD,
            actor=actor,
            origin=origin,
            # What to put back if the job fails before the old disk is gone (a hash, never a password).
            params={
                "from_image": previous_image,
                "image": image.pk,
                "previous_user_data": previous_user_data,
                "previous_customer_user_data": previous_customer_data,
            },
        )
        audit_record(
            actor=actor,
            origin=job.origin,
            action="instance.rebuild",
            target=locked,
            detail=f"{previous_image} -> {image.pk} (job {job.pk})",
        )
    return locked


def instance_password_reset(
    *, instance: Instance, actor: AbstractBaseUser | None, root_pass: str, origin: str | None = None
) -> Job:
    """A new root password, as Linode does it: only while the Linode is shut down. The task writes a new
    seed carrying the new hash (and the keys it had); the guest takes it at its next boot."""
    if not root_pass:
        raise InvalidRequest("root_pass is required.", field="root_pass")
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance.pk)
        if locked.status != Instance.Status.OFFLINE:
            if locked.status == Instance.Status.RUNNING:
                raise InvalidRequest("Linode must be shut down to reset its root password.")
            raise InstanceBusy("Linode busy.")
        _validate_credentials(image=locked.image, root_pass=root_pass, authorized_keys=[])
        locked.cloud_init_user_data = user_data(
            hostname=locked.label,
            root_pass=root_pass,
            authorized_keys=authorized_keys_of(locked.cloud_init_user_data),
            reset=True,
        )
        locked.save(update_fields=["cloud_init_user_data", "updated"])
        job = jobs.job_start(instance=locked, action=Job.Action.PASSWORD, actor=actor, origin=origin)
        audit_record(
            actor=actor,
            origin=job.origin,
            action="instance.password_reset",
            target=locked,
            detail=f"job {job.pk}",
        )
    return job


def instance_mark_deleted(*, instance: Instance) -> Instance:
    """The delete job's end: the instance holds nothing any more. `deleted_at` stays when the delete was
    accepted (that is when it left its account)."""
    instance.status = Instance.Status.DELETED
    instance.deleted_at = instance.deleted_at or timezone.now()
    instance.booted = False
    instance.save(update_fields=["status", "deleted_at", "booted", "updated"])
    return instance


def job_retry(*, job: Job, actor: AbstractBaseUser | None, origin: str | None = None) -> Job:
    """Run a failed job's request again: only the instance's last job, only when it failed. A create
    claims again (its resources were released when it failed) under the account's limits; a power
    action, a delete or a resize goes through its own service, with that service's checks and audit row.
    A rebuild or password reset needs its credentials again, which gpuadmin never kept: ask for a new one.
    """
    if job.action not in RETRYABLE:
        raise InvalidRequest(
            f"A failed {job.get_action_display().lower()} cannot be retried: its credentials were never "
            "kept. Ask for a new one with the new credentials."
        )
    last = instance_last_job(instance_id=job.instance_id)
    if last is None or last.pk != job.pk or job.status != Job.Status.FAILED:
        raise InvalidRequest("Only the instance's last job can be retried, and only when it failed.")
    instance = job.instance
    if job.action == Job.Action.CREATE:
        return _create_retry(instance=instance, job=job, actor=actor, origin=origin)
    if job.action == Job.Action.DELETE:
        return instance_delete(instance=instance, actor=actor, origin=origin)
    if job.action == Job.Action.RESIZE:
        plan = InstanceType.objects.get(pk=job.params["to"])
        return instance_resize(instance=instance, actor=actor, plan=plan, origin=origin)
    power = {
        Job.Action.BOOT: instance_boot,
        Job.Action.SHUTDOWN: instance_shutdown,
        Job.Action.REBOOT: instance_reboot,
    }
    return power[job.action](instance=instance, actor=actor, origin=origin)


def _create_retry(*, instance: Instance, job: Job, actor: AbstractBaseUser | None, origin: str | None) -> Job:
    if not provisioning_enabled():
        raise ProvisioningDisabled(
            "Provisioning is paused by the operators; no new instances can be created now."
        )
    with transaction.atomic():
        account = _account_locked(instance.account)
        locked = (
            Instance.objects.select_for_update().select_related("instance_type", "region").get(pk=instance.pk)
        )
        if locked.status != Instance.Status.FAILED or locked.deleted_at is not None:
            raise InvalidRequest(f"Instance {locked.pk} is {locked.status}: only a failed create is retried.")
        plan = locked.instance_type
        _plan_visible_check(account=account, actor=actor, plan=plan)
        _limits_check(account=account, plan=plan, new_instance=True, gpus_more=plan.gpus)
        locked.status, locked.status_reason = Instance.Status.PROVISIONING, ""
        locked.save(update_fields=["status", "status_reason", "updated"])
        retry = _claim_and_start_create(instance=locked, actor=actor, origin=origin, new_instance=False)
        audit_record(
            actor=actor,
            origin=retry.origin,
            action="instance.create",
            target=locked,
            detail=f"retry of job {job.pk}: {plan.id} in {locked.region_id} (job {retry.pk})",
        )
    return retry
