#!/usr/bin/env python
import os
import secrets
import sys

# Commands that never sign or encrypt anything, so they run without a configured secret key: a fresh
# clone's `manage.py makemigrations --check`, and the README's `manage.py create_api_token alice` in a
# second terminal next to `make run` (a token is random bytes and their SHA-256, not a signature).
KEYLESS_COMMANDS = {"makemigrations", "showmigrations", "sqlmigrate", "help", "create_api_token"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpuadmin.settings")
    if len(sys.argv) > 1 and sys.argv[1] in KEYLESS_COMMANDS:
        os.environ.setdefault("GPUADMIN_SECRET_KEY", secrets.token_urlsafe(50))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
