"""Settings for gpuadmin, read from environment variables.

Every variable has a safe development default except the secret key, which is required as soon as
debug is off. `.env.example` lists them all.
"""

import ipaddress
import os
import re
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from gpuadmin.api.limits import DEFAULT_MAX_BODY_BYTES

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("GPUADMIN_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_limit(name: str, default: int | None) -> int | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    if value.strip().lower() == "none":
        return None
    limit = env_int(name, 0)
    if limit < 0:
        raise ImproperlyConfigured(f"{name} must be a whole number of at least 0 or 'none', got {value!r}")
    return limit


DEBUG = env_bool("GPUADMIN_DEBUG", False)

# What a production key must be: Django's own deploy check (security.W009) in the same figures, and
# never a placeholder copied from .env.example or the docs.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
SECRET_KEY_PLACEHOLDERS = ("change-me", "changeme", "change_me")


def secret_key_problem(key: str) -> str | None:
    """Why `key` cannot sign a production deployment's sessions and tokens, or None."""
    if any(placeholder in key.lower() for placeholder in SECRET_KEY_PLACEHOLDERS):
        return "is a placeholder"
    if key.startswith("django-insecure-"):  # what startproject writes for development
        return "is a development key (django-insecure-...)"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"is {len(key)} characters long; it needs at least {SECRET_KEY_MIN_LENGTH}"
    if len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return f"has fewer than {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different characters"
    return None


SECRET_KEY = os.environ.get("GPUADMIN_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "GPUADMIN_SECRET_KEY is required when GPUADMIN_DEBUG is off. "
            "Set it to a long random string, or set GPUADMIN_DEBUG=1 for development."
        )
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105 - debug only
elif not DEBUG and (_problem := secret_key_problem(SECRET_KEY)):
    raise ImproperlyConfigured(
        f"GPUADMIN_SECRET_KEY {_problem}. Generate one with "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )

ALLOWED_HOSTS = env_list("GPUADMIN_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("GPUADMIN_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "gpuadmin.apps.GpuAdminSiteConfig",  # django.contrib.admin with the dashboard as admin.site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "waffle",
    "django_q",
    "gpuadmin",
    "accounts",
    "inventory",
    "networking",
    "provisioning",
    "billing",
]

MIDDLEWARE = [
    # First: every later log line of the request, and the response, carry the request id.
    "gpuadmin.middleware.RequestIdMiddleware",
    "gpuadmin.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Refuses what no /v4 endpoint can mean (too long, too large, control characters) before any work.
    "gpuadmin.api.middleware.ApiInputGuard",
    # Static files (the admin's CSS and JS) straight from STATIC_ROOT, before sessions and auth.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "waffle.middleware.WaffleMiddleware",
]

ROOT_URLCONF = "gpuadmin.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "gpuadmin.wsgi.application"

# Messages live in the session (the database), never in a cookie: the spin-up's one-time root password
# is a message, and a messages cookie is signed, not encrypted (base64 and zlib away from plain text).
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

_default_sqlite = f"sqlite:///{VAR_DIR / 'gpuadmin.sqlite3'}"
if not os.environ.get("DATABASE_URL"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
# The worker cluster (`manage.py qcluster`: its broker, workers and monitor are forked from this process).
RUNS_WORKER_CLUSTER = sys.argv[1:2] == ["qcluster"]
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or _default_sqlite,
        # A worker cluster keeps its connections: closed after every task (and every poll of the ORM
        # broker) they cost a new PostgreSQL backend each time, more than the task's own statements.
        conn_max_age=env_int("GPUADMIN_Q_DB_CONN_MAX_AGE", 300)
        if RUNS_WORKER_CLUSTER
        else env_int("GPUADMIN_DB_CONN_MAX_AGE", 0),
        # A kept connection is checked before a task uses it (a restarted database is reconnected).
        conn_health_checks=RUNS_WORKER_CLUSTER,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database host that never answers must fail a request (and /healthz) in seconds, not minutes.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
        "GPUADMIN_DB_CONNECT_TIMEOUT", 5
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the worker and the web server read while the other writes; IMMEDIATE transactions take
    # the write lock up front so two writers queue on the busy timeout instead of failing to upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"].setdefault("TEST", {})["NAME"] = ""  # in-memory test database

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["gpuadmin.formats"]  # ISO dates and times in the admin (gpuadmin/formats/en)

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("GPUADMIN_STATIC_ROOT", VAR_DIR / "static"))
# Production serves what `collectstatic` wrote (make serve runs it): names carry a content hash, so
# WhiteNoise tells browsers to cache them for ever, and gzip/brotli copies are made once, up front.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Logs: one JSON object per line (time, level, logger, message, request_id, job_id, instance_id), or
# plain text for a person at a terminal (the default with debug on).
LOG_FORMAT = os.environ.get("GPUADMIN_LOG_FORMAT", "") or ("plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"GPUADMIN_LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "telemetry.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("GPUADMIN_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Feature flags: the GPU plans are a django-waffle flag scoped to accounts.
WAFFLE_FLAG_MODEL = "gpuadmin.Flag"
WAFFLE_CREATE_MISSING_FLAGS = False
WAFFLE_CREATE_MISSING_SWITCHES = False
WAFFLE_CACHE_NAME = "flags"

# Flags are read by the web server and the worker: without a shared cache, read them from the database
# every time so a flip in the admin is seen everywhere at once.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "flags": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
}

# Task queue (django-q2). The ORM broker needs nothing else; Redis is used when GPUADMIN_REDIS_URL is set.
REDIS_URL = os.environ.get("GPUADMIN_REDIS_URL", "")
Q_CLUSTER = {
    "name": os.environ.get("GPUADMIN_Q_NAME", "gpuadmin"),
    "workers": env_int("GPUADMIN_Q_WORKERS", 2),
    # A task that outlives `timeout` is killed; `retry` must be longer or a slow task runs twice at once.
    "timeout": env_int("GPUADMIN_Q_TIMEOUT", 300),
    "retry": env_int("GPUADMIN_Q_RETRY", 360),
    "max_attempts": env_int("GPUADMIN_Q_MAX_ATTEMPTS", 3),
    "ack_failures": True,
    # Every result is saved, and the heartbeat (every minute) prunes the successful ones beyond
    # GPUADMIN_Q_RESULTS_KEPT. Not django-q2's own save_limit: it locks and counts every kept result at
    # each save, a cost per task that grows with the limit (32 ms of CPU at 1,000).
    "save_limit": 0,
    "catch_up": False,
    # ORM broker: seconds between polls of an empty queue, and tasks taken per poll.
    "poll": env_float("GPUADMIN_Q_POLL", 0.2),
    "bulk": env_int("GPUADMIN_Q_BULK", 1),
    # A worker process is replaced after this many tasks (a leak cannot grow for ever).
    "recycle": env_int("GPUADMIN_Q_RECYCLE", 500),
    "sync": env_bool("GPUADMIN_Q_SYNC", False),
    "label": "Task queue",
}
# Successful task results kept (the newest); failures are all kept.
GPUADMIN_Q_RESULTS_KEPT = env_int("GPUADMIN_Q_RESULTS_KEPT", 1000)
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    CACHES["flags"] = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    # API rate-limit counters (gpuadmin.api.throttling) shared by every server process.
    CACHES["default"] = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
else:
    Q_CLUSTER["orm"] = "default"
    # django-q2's ORM broker with each queue operation one statement (gpuadmin.broker).
    Q_CLUSTER["broker_class"] = "gpuadmin.broker.DatabaseBroker"

# Jobs retry transient hypervisor errors this many times, waiting base * 2^n seconds between tries.
GPUADMIN_JOB_MAX_ATTEMPTS = env_int("GPUADMIN_JOB_MAX_ATTEMPTS", 5)
GPUADMIN_JOB_BACKOFF_SECONDS = float(os.environ.get("GPUADMIN_JOB_BACKOFF_SECONDS", "1.0"))
# IPAM: seconds a released address cools down before it is handed out again.
GPUADMIN_ADDRESS_COOLDOWN_SECONDS = env_int("GPUADMIN_ADDRESS_COOLDOWN_SECONDS", 3600)
# A running job (and a GPU reset) holds a lease this many seconds, renewed while it runs; a lease that
# expired means its worker died, and the sweep (every minute) runs the job again.
GPUADMIN_JOB_LEASE_SECONDS = env_int("GPUADMIN_JOB_LEASE_SECONDS", 20)
# A cross-host resize streams the disk volume in chunks of this size (memory per copy, not per disk).
GPUADMIN_VOLUME_COPY_CHUNK_MIB = env_int("GPUADMIN_VOLUME_COPY_CHUNK_MIB", 4)
# "kvm" or "qemu" (TCG) for every guest; empty: KVM wherever the host's QEMU offers it. TCG is for hosts
# whose /dev/kvm cannot run guests (nested sandboxes, the real-guest test in CI).
GPUADMIN_DOMAIN_TYPE = os.environ.get("GPUADMIN_DOMAIN_TYPE", "")
if GPUADMIN_DOMAIN_TYPE not in ("", "kvm", "qemu"):
    raise ImproperlyConfigured(
        f"GPUADMIN_DOMAIN_TYPE must be kvm, qemu or empty, got {GPUADMIN_DOMAIN_TYPE!r}"
    )
# Where on each host a guest's serial console is also written (a file per instance); empty: nowhere.
GPUADMIN_CONSOLE_LOG_DIR = os.environ.get("GPUADMIN_CONSOLE_LOG_DIR", "")
# Guest memory bound strictly to the host NUMA node of each guest cell. Off only for a machine standing in
# for hosts with more NUMA nodes than it has (a one-node CI machine booting a two-cell guest).
GPUADMIN_BIND_GUEST_MEMORY = env_bool("GPUADMIN_BIND_GUEST_MEMORY", True)
# How often the scheduled reconcile runs, in minutes.
GPUADMIN_RECONCILE_MINUTES = env_int("GPUADMIN_RECONCILE_MINUTES", 5)

# Billing (billing/): how often usage is synced and closed months invoiced, the GPU trial's credit in
# USD, and what GET /v4/account asks for its balances (accounts sits below billing and cannot import it).
GPUADMIN_BILLING_MINUTES = env_int("GPUADMIN_BILLING_MINUTES", 15)
GPUADMIN_GPU_TRIAL_CREDIT = os.environ.get("GPUADMIN_GPU_TRIAL_CREDIT", "100.00")
GPUADMIN_ACCOUNT_BILLING = "billing.selectors.account_billing"


# Account limits (provisioning.services checks them in the create transaction): how many GPUs and how
# many instances an account's live instances may hold at once, per account kind, unless staff set the
# account's own on its page. None (or an empty/"none" variable): no limit. Employee teams and internal
# accounts test and run at fleet scale (the load test and benchmarks use employee accounts).
GPUADMIN_ACCOUNT_LIMITS = {
    "customer": {
        "gpus": env_limit("GPUADMIN_CUSTOMER_GPU_LIMIT", 8),
        "instances": env_limit("GPUADMIN_CUSTOMER_INSTANCE_LIMIT", 10),
    },
    "employee": {
        "gpus": env_limit("GPUADMIN_EMPLOYEE_GPU_LIMIT", None),
        "instances": env_limit("GPUADMIN_EMPLOYEE_INSTANCE_LIMIT", None),
    },
    "internal": {
        "gpus": env_limit("GPUADMIN_INTERNAL_GPU_LIMIT", None),
        "instances": env_limit("GPUADMIN_INTERNAL_INSTANCE_LIMIT", None),
    },
}

# libvirt connections (hypervisor.connection): seconds an open may take before the host counts as
# unreachable, and the keepalive that fails a call on a host that stopped answering (interval x misses).
GPUADMIN_LIBVIRT_OPEN_TIMEOUT = float(os.environ.get("GPUADMIN_LIBVIRT_OPEN_TIMEOUT") or "15")
GPUADMIN_LIBVIRT_KEEPALIVE_INTERVAL = env_int("GPUADMIN_LIBVIRT_KEEPALIVE_INTERVAL", 5)
GPUADMIN_LIBVIRT_KEEPALIVE_COUNT = env_int("GPUADMIN_LIBVIRT_KEEPALIVE_COUNT", 3)
# The demo's hypervisor service (scripts/run-demo sets it): calls on simulated (test:///) hosts go to
# the one process holding them, so every process sees the same guests. Empty: each process holds its own.
GPUADMIN_HYPERVISOR_SOCKET = os.environ.get("GPUADMIN_HYPERVISOR_SOCKET", "")

# Host policy applied when a host's topology is recorded.
GPUADMIN_RESERVED_CORES_PER_NODE = env_int("GPUADMIN_RESERVED_CORES_PER_NODE", 2)
GPUADMIN_RESERVED_MEMORY_MIB_PER_NODE = env_int("GPUADMIN_RESERVED_MEMORY_MIB_PER_NODE", 8192)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "gpuadmin.api.schema.LinodeAutoSchema",
    # The public API (gpuadmin.api): Linode's error body everywhere, Linode's timestamps (UTC).
    "EXCEPTION_HANDLER": "gpuadmin.api.errors.exception_handler",
    # JSON only, read by gpuadmin.api.inputs' rules (depth, finite numbers, no control characters).
    "DEFAULT_PARSER_CLASSES": ["gpuadmin.api.parsers.LinodeJSONParser"],
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "gpuadmin API (Linode API v4 subset)",
    "VERSION": "4.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page (/docs/api/) serves Swagger UI from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "PREPROCESSING_HOOKS": ["gpuadmin.api.schema.only_v4"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gpuadmin.api.schema.shared_responses",
    ],
}
# The largest request body the API reads, in bytes; a larger one is a 413 before it is read.
GPUADMIN_API_MAX_BODY_BYTES = env_int("GPUADMIN_API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
# Requests allowed per token (per address without one): bucket -> (requests, seconds). Linode's figures.
GPUADMIN_API_RATE_LIMITS = {
    "requests": (env_int("GPUADMIN_API_RATE_REQUESTS", 800), 120),
    "linode_create": (env_int("GPUADMIN_API_RATE_CREATES", 10), 30),
}

# /healthz: which parts make it answer 503 when down (database, broker, workers, libvirt), how long any
# one check may take, how old the workers' heartbeat may be, and how many hosts' libvirt to ask.
HEALTH_PARTS = ("database", "broker", "workers", "libvirt")
GPUADMIN_HEALTH_REQUIRED = env_list("GPUADMIN_HEALTH_REQUIRED", ["database", "broker"])
_unknown_parts = sorted(set(GPUADMIN_HEALTH_REQUIRED) - set(HEALTH_PARTS))
if _unknown_parts:
    raise ImproperlyConfigured(
        f"GPUADMIN_HEALTH_REQUIRED: unknown parts {_unknown_parts}; choose from {', '.join(HEALTH_PARTS)}"
    )
GPUADMIN_HEALTH_TIMEOUT_SECONDS = float(os.environ.get("GPUADMIN_HEALTH_TIMEOUT_SECONDS", "") or 2.0)
GPUADMIN_HEALTH_WORKER_MAX_AGE_SECONDS = env_int("GPUADMIN_HEALTH_WORKER_MAX_AGE_SECONDS", 180)
GPUADMIN_HEALTH_LIBVIRT_SAMPLE = env_int("GPUADMIN_HEALTH_LIBVIRT_SAMPLE", 3)

# /metrics: readable without a login from these networks (CIDRs), or with this bearer token, or by staff.
GPUADMIN_METRICS_NETWORKS = env_list("GPUADMIN_METRICS_NETWORKS", ["127.0.0.0/8", "::1/128"])
try:
    METRICS_NETWORKS = [ipaddress.ip_network(cidr, strict=False) for cidr in GPUADMIN_METRICS_NETWORKS]
except ValueError as exc:
    raise ImproperlyConfigured(f"GPUADMIN_METRICS_NETWORKS must be CIDRs: {exc}") from exc
GPUADMIN_METRICS_TOKEN = os.environ.get("GPUADMIN_METRICS_TOKEN", "")
# Callables (dotted paths) that return more metric families at scrape time, read from the database.
# The default adds the IPv4 pools' free addresses; set the variable to replace the list.
GPUADMIN_METRICS_PROVIDERS = env_list("GPUADMIN_METRICS_PROVIDERS", ["networking.metrics.address_metrics"])

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("GPUADMIN_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("GPUADMIN_SECURE_COOKIES", True)


# https: redirect plain http (not /healthz and /metrics: load balancers and Prometheus ask over the
# inside network) and tell browsers to come back only over https. Behind a TLS-terminating proxy,
# gunicorn marks a request secure from the proxy's X-Forwarded-Proto when the proxy's address is in
# GPUADMIN_FORWARDED_ALLOW_IPS (gunicorn.conf.py); GPUADMIN_SECURE_PROXY_SSL_HEADER is for a proxy
# whose address is not known, and only safe when every request comes through it (docs/operations.md).
# The names before GPUADMIN_SECURE_* (GPUADMIN_SSL_REDIRECT, GPUADMIN_HSTS_*) are still read.
def env_secure(name: str, old_name: str) -> str:
    """The variable `name`, or else its former name, so an environment file from before keeps working."""
    value = os.environ.get(name)
    return old_name if value is None or value == "" else name


SECURE_SSL_REDIRECT = env_bool(env_secure("GPUADMIN_SECURE_SSL_REDIRECT", "GPUADMIN_SSL_REDIRECT"), False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int(env_secure("GPUADMIN_SECURE_HSTS_SECONDS", "GPUADMIN_HSTS_SECONDS"), 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool(
    env_secure("GPUADMIN_SECURE_HSTS_INCLUDE_SUBDOMAINS", "GPUADMIN_HSTS_INCLUDE_SUBDOMAINS"), False
)
SECURE_HSTS_PRELOAD = env_bool(env_secure("GPUADMIN_SECURE_HSTS_PRELOAD", "GPUADMIN_HSTS_PRELOAD"), False)


def env_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """`X-Forwarded-Proto: https` (the header the proxy sets and the value that means https) as Django's
    SECURE_PROXY_SSL_HEADER pair; empty means none."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    header, colon, expected = value.partition(":")
    header, expected = header.strip(), expected.strip()
    if not colon or not re.fullmatch(r"[A-Za-z0-9-]+", header) or not expected:
        raise ImproperlyConfigured(f"{name} must look like 'X-Forwarded-Proto: https', got {value!r}")
    return "HTTP_" + header.upper().replace("-", "_"), expected


SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("GPUADMIN_SECURE_PROXY_SSL_HEADER")
