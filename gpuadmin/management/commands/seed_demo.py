from django.core.management.base import BaseCommand

from gpuadmin.demo import DEMO_LOGINS, seed_demo


class Command(BaseCommand):
    help = "Create the demo regions, plans, images, GPU hosts and users (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--quiet-logins", action="store_true", help="Do not print the demo logins.")

    def handle(self, *args, **options):
        created = seed_demo()
        summary = ", ".join(f"{count} {what}" for what, count in created.items())
        self.stdout.write(self.style.SUCCESS(f"Demo data ready (created {summary})."))
        if not options["quiet_logins"]:
            for login in DEMO_LOGINS:
                self.stdout.write(f"  {login.username:<6} / {login.password:<16} {login.role}")
