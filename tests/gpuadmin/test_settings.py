"""Settings refuse to start in production without a secret key; development needs nothing."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def import_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPUADMIN_") and k != "DATABASE_URL"}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import gpuadmin.settings as s; print(s.DEBUG, s.DATABASES['default']['ENGINE'])",
        ],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_debug_off_without_secret_key_refuses_to_start():
    result = import_settings()
    assert result.returncode != 0
    assert "GPUADMIN_SECRET_KEY is required" in result.stderr


def test_debug_off_with_secret_key_starts():
    result = import_settings(GPUADMIN_SECRET_KEY=secrets.token_urlsafe(50))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "django.db.backends.sqlite3"]


def test_debug_on_needs_nothing_else():
    result = import_settings(GPUADMIN_DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True"


def test_database_url_selects_postgresql():
    result = import_settings(GPUADMIN_DEBUG="1", DATABASE_URL="postgres://u@127.0.0.1:5432/db")
    assert result.stdout.split()[1] == "django.db.backends.postgresql"


def test_a_malformed_boolean_is_an_error_not_a_guess():
    result = import_settings(GPUADMIN_DEBUG="maybe")
    assert result.returncode != 0
    assert "GPUADMIN_DEBUG must be a boolean" in result.stderr


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    script = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='gpuadmin.settings'; django.setup();"
        "from django.db import connection; c=connection.cursor(); c.execute('PRAGMA journal_mode');"
        "print(c.fetchone()[0], connection.settings_dict['OPTIONS']['timeout'])"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPUADMIN_") and k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**clean, "GPUADMIN_DEBUG": "1", "GPUADMIN_VAR_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["wal", "30"]


def run_manage(*args: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GPUADMIN_") and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, check=False
    )


def test_migration_check_needs_no_secret_key_but_serving_commands_do():
    checked = run_manage("makemigrations", "--check", "--dry-run")
    assert checked.returncode == 0, checked.stderr
    assert "No changes detected" in checked.stdout
    refused = run_manage("check")
    assert refused.returncode != 0
    assert "GPUADMIN_SECRET_KEY is required" in refused.stderr


def test_account_limit_variables_take_a_number_or_none_and_refuse_the_rest(monkeypatch):
    import pytest
    from django.core.exceptions import ImproperlyConfigured

    from gpuadmin.settings import env_limit

    for value, expected in [("", 8), ("12", 12), ("0", 0), ("none", None), ("None", None)]:
        monkeypatch.setenv("GPUADMIN_CUSTOMER_GPU_LIMIT", value)
        assert env_limit("GPUADMIN_CUSTOMER_GPU_LIMIT", 8) == expected, value
    for value in ("-1", "eight"):
        monkeypatch.setenv("GPUADMIN_CUSTOMER_GPU_LIMIT", value)
        with pytest.raises(ImproperlyConfigured, match="GPUADMIN_CUSTOMER_GPU_LIMIT"):
            env_limit("GPUADMIN_CUSTOMER_GPU_LIMIT", 8)


def env_example_secret_key() -> str:
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("GPUADMIN_SECRET_KEY="):
            return line.partition("=")[2]
    raise AssertionError(".env.example names no GPUADMIN_SECRET_KEY")


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (env_example_secret_key(), "is a placeholder"),  # .env.example copied as it is
        ("change-me-" + secrets.token_urlsafe(50), "is a placeholder"),
        (secrets.token_urlsafe(30), "characters long; it needs at least 50"),
        ("ab" * 30, "fewer than 5 different characters"),
        ("django-insecure-" + secrets.token_urlsafe(50), "development key"),
    ],
)
def test_production_refuses_a_placeholder_or_weak_secret_key(key, why):
    result = import_settings(GPUADMIN_SECRET_KEY=key)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and why in result.stderr
    assert key not in result.stderr  # the refusal does not print the key it refused


def test_development_takes_any_key():
    result = import_settings(GPUADMIN_DEBUG="1", GPUADMIN_SECRET_KEY="change-me")
    assert result.returncode == 0, result.stderr


def https_settings(**env: str) -> list:
    script = (
        "import gpuadmin.settings as s; print(repr((s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SECURE_PROXY_SSL_HEADER)))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPUADMIN_") and k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**clean, "GPUADMIN_SECRET_KEY": secrets.token_urlsafe(50), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return list(eval(result.stdout))  # noqa: S307 - our own repr of a tuple


def test_https_settings_by_their_secure_names():
    assert https_settings() == [False, 0, False, False, None]
    assert https_settings(
        GPUADMIN_SECURE_SSL_REDIRECT="1",
        GPUADMIN_SECURE_HSTS_SECONDS="31536000",
        GPUADMIN_SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        GPUADMIN_SECURE_HSTS_PRELOAD="1",
        GPUADMIN_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https",
    ) == [True, 31536000, True, True, ("HTTP_X_FORWARDED_PROTO", "https")]


def test_the_former_names_still_work_and_the_new_ones_win():
    former = {"GPUADMIN_SSL_REDIRECT": "1", "GPUADMIN_HSTS_SECONDS": "60", "GPUADMIN_HSTS_PRELOAD": "1"}
    assert https_settings(**former) == [True, 60, False, True, None]
    assert https_settings(**former, GPUADMIN_SECURE_HSTS_SECONDS="120", GPUADMIN_SECURE_SSL_REDIRECT="0")[
        :2
    ] == [False, 120]


def test_a_malformed_proxy_header_is_an_error_not_a_guess():
    result = import_settings(
        GPUADMIN_SECRET_KEY=secrets.token_urlsafe(50), GPUADMIN_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto"
    )
    assert result.returncode != 0
    assert "GPUADMIN_SECURE_PROXY_SSL_HEADER must look like" in result.stderr
