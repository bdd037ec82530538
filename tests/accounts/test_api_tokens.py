from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from django.utils import timezone

from accounts.models import ApiToken, AuditRecord
from accounts.scopes import READ_ONLY, READ_WRITE, InvalidScopes, parse_scopes
from accounts.selectors import api_token_by_secret
from accounts.services import api_token_create, api_token_mark_used
from accounts.tokens import hash_secret
from tests.builders import make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("text", "area", "level", "allowed"),
    [
        ("*", "linodes", READ_WRITE, True),
        ("linodes:read_write", "linodes", READ_ONLY, True),
        ("linodes:read_only", "linodes", READ_WRITE, False),
        ("linodes:read_only account:read_only", "account", READ_ONLY, True),
        ("account:read_write", "events", READ_ONLY, False),
        ("linodes:read_only,linodes:read_write", "linodes", READ_WRITE, True),
    ],
)
def test_scopes_grant_what_linode_grants(text, area, level, allowed):
    assert parse_scopes(text).allows(area, level) is allowed


@pytest.mark.parametrize("text", ["", "linode:read_write", "linodes", "linodes:write", "* linodes:read_only"])
def test_bad_scope_strings_are_refused_with_a_reason(text):
    with pytest.raises(InvalidScopes):
        parse_scopes(text)


def test_scopes_print_back_canonically():
    assert str(parse_scopes("linodes:read_only account:read_only linodes:read_write")) == (
        "account:read_only linodes:read_write"
    )


def test_only_the_hash_of_a_token_is_stored():
    issued = api_token_create(user=make_user(), scopes="linodes:read_only", label="ci")
    stored = ApiToken.objects.get(pk=issued.token.pk)
    assert len(issued.secret) == 64
    assert stored.token_hash == hash_secret(issued.secret) != issued.secret
    assert issued.secret not in {getattr(stored, f.attname) for f in ApiToken._meta.fields}
    assert api_token_by_secret(secret=issued.secret) == stored
    assert api_token_by_secret(secret=issued.secret[:-1] + "x") is None
    assert AuditRecord.objects.filter(action="api_token.create", target_id=str(stored.pk)).exists()


def test_a_token_hash_must_look_like_sha256():
    with pytest.raises(IntegrityError):
        ApiToken.objects.create(user=make_user(), token_hash="plain-secret", scopes="*")


def test_last_used_is_written_at_most_once_a_minute(django_assert_num_queries):
    token = api_token_create(user=make_user()).token
    now = timezone.now()
    with django_assert_num_queries(1):
        api_token_mark_used(token=token, now=now)
    with django_assert_num_queries(0):
        api_token_mark_used(token=token, now=now + timedelta(seconds=30))
    token.refresh_from_db()
    assert token.last_used == now


def test_create_api_token_prints_the_token_once():
    user = make_user(username="carol")
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_token",
        "carol",
        "--scopes",
        "linodes:read_write",
        "--expiry",
        "7",
        "--label",
        "ci",
        stdout=out,
        stderr=err,
    )
    secret = out.getvalue().strip()
    token = api_token_by_secret(secret=secret)
    assert token.user == user and token.label == "ci" and token.scopes == "linodes:read_write"
    assert timedelta(days=6, hours=23) < token.expiry - timezone.now() <= timedelta(days=7)
    assert secret not in err.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody"], "No user named 'nobody'"),
        (["dave", "--scopes", "linode:read_write"], "Unknown scope area 'linode'"),
        (["dave", "--expiry", "0"], "positive number of days"),
    ],
)
def test_create_api_token_refuses_bad_input_and_stores_nothing(args, message):
    make_user(username="dave")
    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", *args, stdout=StringIO(), stderr=StringIO())
    assert not ApiToken.objects.exists()
