#!/usr/bin/env python
import os
import secrets
import sys

# Commands that only read models and migration files: they never sign or encrypt anything, so they run
# without a configured secret key (a fresh clone's `manage.py makemigrations --check` included).
KEYLESS_COMMANDS = {"makemigrations", "showmigrations", "sqlmigrate", "help"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpuadmin.settings")
    if len(sys.argv) > 1 and sys.argv[1] in KEYLESS_COMMANDS:
        os.environ.setdefault("GPUADMIN_SECRET_KEY", secrets.token_urlsafe(50))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
