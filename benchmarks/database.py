"""A fresh PostgreSQL database for one benchmark run (benchmarks never touch a real database)."""

import os
from urllib.parse import urlsplit, urlunsplit

import psycopg2

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def fresh_database(name: str) -> str:
    """Drop and create database `name` on the server of $DATABASE_URL (or the local one); return its URL."""
    base = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    admin = psycopg2.connect(urlunsplit(base._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return urlunsplit(base._replace(path=f"/{name}"))
