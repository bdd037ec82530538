from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account
from billing.exceptions import BillingError
from billing.services import promotion_grant_gpu_trial


class Command(BaseCommand):
    help = "Give an account its one-week GPU trial credit (GPUADMIN_GPU_TRIAL_CREDIT, GPU usage only)."

    def add_arguments(self, parser):
        parser.add_argument("account", help="The account's name.")

    def handle(self, *args, account, **options):
        found = Account.objects.filter(name=account).first()
        if found is None:
            raise CommandError(f"No account named {account!r}.")
        try:
            promotion = promotion_grant_gpu_trial(account=found)
        except BillingError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{promotion.summary}; expires {promotion.expires_at:%Y-%m-%d %H:%M} UTC")
