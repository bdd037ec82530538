from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.scopes import InvalidScopes
from accounts.services import api_token_create


class Command(BaseCommand):
    help = "Issue a personal access token for the public API and print it once (only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--scopes",
            default="*",
            help='"*" (default) or Linode scopes: "linodes:read_write account:read_only".',
        )
        parser.add_argument(
            "--expiry", type=int, default=None, metavar="DAYS", help="Expire after DAYS days."
        )
        parser.add_argument("--label", default="", help="A name to recognise the token by.")

    def handle(self, *args, username, scopes, expiry, label, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        try:
            issued = api_token_create(user=user, scopes=scopes, label=label, expiry_days=expiry)
        except (InvalidScopes, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        token = issued.token
        expires = f"expires {token.expiry:%Y-%m-%d %H:%M} UTC" if token.expiry else "never expires"
        self.stderr.write(f"Token for {username}, scopes {token.scopes}, {expires}. It is shown only once:")
        self.stdout.write(issued.secret)
