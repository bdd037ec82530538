"""`manage.py check --deploy` is clean with the production environment `.env.example` describes."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def check_deploy(**overrides: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GPUADMIN_") and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(env_example())
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_production_environment_passes_every_deploy_check():
    # The one value .env.example cannot ship: the key the operator generates (docs/operations.md).
    result = check_deploy(GPUADMIN_SECRET_KEY=secrets.token_urlsafe(50))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert env_example()["GPUADMIN_DEBUG"] == "0" and env_example()["DATABASE_URL"].startswith("postgres://")


def test_the_check_would_say_so_if_https_were_left_off():
    result = check_deploy(GPUADMIN_SECRET_KEY=secrets.token_urlsafe(50), GPUADMIN_SECURE_SSL_REDIRECT="0")
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


def test_the_https_settings_are_read_by_their_secure_names():
    names = set(env_example())
    assert {
        "GPUADMIN_SECURE_SSL_REDIRECT",
        "GPUADMIN_SECURE_HSTS_SECONDS",
        "GPUADMIN_SECURE_PROXY_SSL_HEADER",
    } <= names
    assert not {"GPUADMIN_SSL_REDIRECT", "GPUADMIN_HSTS_SECONDS"} & names
    result = check_deploy(GPUADMIN_SECRET_KEY=secrets.token_urlsafe(50), GPUADMIN_SECURE_HSTS_SECONDS="0")
    assert "security.W004" in result.stdout + result.stderr  # no HSTS: the variable is the one read


def test_a_proxy_trusted_by_its_header_is_still_clean():
    """docs/operations.md: a proxy whose address is not fixed, trusted by X-Forwarded-Proto."""
    result = check_deploy(
        GPUADMIN_SECRET_KEY=secrets.token_urlsafe(50),
        GPUADMIN_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_key_itself_is_refused():
    result = check_deploy()  # .env.example copied without generating a key
    assert result.returncode != 0
    assert "GPUADMIN_SECRET_KEY is a placeholder" in result.stderr
