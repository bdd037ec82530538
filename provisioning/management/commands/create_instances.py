from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import account_of
from provisioning.cloudinit import random_root_pass
from provisioning.exceptions import ProvisioningError
from provisioning.services import image_for, instance_create, plan_for, region_for


class Command(BaseCommand):
    help = "Create instances for a user's account, as the API would (staff tooling and load tests)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--user", required=True, help="Username acting; the instance goes to their account."
        )
        parser.add_argument("--plan", required=True, help="Plan id, e.g. g1-gpu-rtx6000-1.")
        parser.add_argument("--region", required=True)
        parser.add_argument("--image", default="linode/ubuntu22.04")
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument(
            "--label-prefix", default="", help="Labels PREFIX-1, PREFIX-2, ... (default: generated)."
        )
        parser.add_argument(
            "--offline", action="store_true", help="Define the domains but do not start them."
        )

    def handle(self, *args, user, plan, region, image, count, label_prefix, offline, **options):
        actor = get_user_model().objects.filter(username=user).first()
        account = account_of(user=actor)
        if account is None:
            raise CommandError(f"No user {user!r} in an account.")
        try:
            plan_row = plan_for(user=actor, plan_id=plan)
            region_row = region_for(region_id=region)
            image_row = image_for(image_id=image)
        except ProvisioningError as exc:
            raise CommandError(exc.message) from exc
        created = 0
        for number in range(1, count + 1):
            try:
                instance = instance_create(
                    account=account,
                    actor=actor,
                    plan=plan_row,
                    region=region_row,
                    image=image_row,
                    label=f"{label_prefix}-{number}" if label_prefix else None,
                    # Nobody logs in with it: the guest is reached with the account's keys or a reset.
                    root_pass=random_root_pass(),
                    booted=not offline,
                )
            except ProvisioningError as exc:
                self.stdout.write(self.style.ERROR(f"#{number}: {exc.message}"))
                continue
            created += 1
            self.stdout.write(f"instance {instance.pk} {instance.label} on {instance.host.hostname}")
        self.stdout.write(self.style.SUCCESS(f"created {created} of {count}"))
        if created < count:
            raise CommandError(f"{count - created} instance(s) could not be created")
