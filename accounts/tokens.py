"""How a personal access token's secret is made and hashed: 64 hex characters, like Linode's."""

import hashlib
import secrets

SECRET_BYTES = 32


def new_secret() -> str:
    return secrets.token_hex(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
