from django.core.management.base import BaseCommand, CommandError

from provisioning.reconcile import jobs_resume, reconcile_hosts


class Command(BaseCommand):
    help = "Compare libvirt with the database on each host; repair what is safe and report the rest."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", action="append", dest="hosts", metavar="HOSTNAME", help="Only this host."
        )

    def handle(self, *args, hosts=None, **options):
        reports = reconcile_hosts(hostnames=hosts)
        if hosts and len(reports) < len(hosts):
            found = {r.hostname for r in reports}
            raise CommandError(f"Unknown host(s): {', '.join(sorted(set(hosts) - found))}")
        failed = 0
        for report in reports:
            if report.error:
                failed += 1
                self.stdout.write(self.style.ERROR(f"{report.hostname}: {report.error}"))
                continue
            status = "in sync" if report.clean else "drift"
            self.stdout.write(f"{report.hostname}: {report.checked} instances, {status}")
            for line in report.repaired:
                self.stdout.write(self.style.SUCCESS(f"  repaired: {line}"))
            for line in report.problems:
                self.stdout.write(self.style.WARNING(f"  needs attention: {line}"))
        resumed = jobs_resume()
        if resumed:
            self.stdout.write(f"resumed {resumed} job(s) whose task was lost")
        if failed:
            raise CommandError(f"{failed} host(s) could not be reconciled")
