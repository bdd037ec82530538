"""Settings for the test suite: production settings (debug off) with a throwaway key and inline tasks."""

import os

os.environ.setdefault("GPUADMIN_SECRET_KEY", "tests-only-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("GPUADMIN_DEBUG", "0")

from gpuadmin.settings import *  # noqa: E402,F403
from gpuadmin.settings import Q_CLUSTER  # noqa: E402

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
GPUADMIN_JOB_BACKOFF_SECONDS = 0.0
# Pages render {% static %} without a collectstatic run (the manifest storage is tested under gunicorn).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
# Tests hold their simulated hosts in-process (and arm faults there), even in a shell where the demo runs.
GPUADMIN_HYPERVISOR_SOCKET = ""
# Most tests fill regions from one customer account; the account-limit tests set the limits they test
# (tests/provisioning/test_account_limits.py), so elsewhere no kind has a default limit.
GPUADMIN_ACCOUNT_LIMITS = {
    kind: {"gpus": None, "instances": None} for kind in ("customer", "employee", "internal")
}
