"""Secrets stay where they belong: the spin-up's one-time root password in server-side storage only (not
in a cookie the browser holds, not in a log), a token's secret nowhere but as its hash (not even its
first characters in the audit log), and no staff login in a customer's events.

On the main of the issue, the password was in the `messages` cookie (signed, not encrypted: base64 and
zlib away), the audit log named tokens by their first 8 characters, and a customer's events said
"username": "admin" for a staff spin-up.
"""

import base64
import binascii
import importlib
import io
import json
import logging
import zlib
from http.cookies import SimpleCookie

import pytest
from django.apps import apps
from django.core.management import call_command
from django.urls import reverse

from accounts.models import ApiToken, AuditRecord
from accounts.services import api_token_create, api_token_revoke
from provisioning.models import Instance
from tests.api.conftest import Api
from tests.builders import make_user
from tests.gpuadmin.conftest import texts
from tests.gpuadmin.test_admin_spin_up import form_data

pytestmark = pytest.mark.django_db


def readable_forms(value: str) -> list[str]:
    """Everything a person holding the cookie could read from it: the value, and each part of it
    (Django signs `payload:signature`, a leading "." meaning zlib) base64-decoded and decompressed."""
    found = [value]
    for part in value.replace('"', "").split(":"):
        compressed = part.startswith(".")
        part = part.lstrip(".")
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            continue
        if compressed:
            try:
                raw = zlib.decompress(raw)
            except zlib.error:
                continue
        found.append(raw.decode("utf-8", "replace"))
    return found


def cookies_set_by(*responses) -> dict[str, str]:
    """The cookies as the browser receives them: each Set-Cookie header of each response."""
    jar = {}
    for response in responses:
        for header, value in response.items():
            if header.lower() == "set-cookie":
                parsed = SimpleCookie()
                parsed.load(value)
                jar.update({name: morsel.value for name, morsel in parsed.items()})
        jar.update({name: morsel.value for name, morsel in response.cookies.items()})
    return jar


def test_the_spin_up_password_is_in_no_cookie_and_no_log(client, fleet, superuser, caplog):
    client.force_login(superuser)
    with caplog.at_level(logging.DEBUG):
        response = client.post(reverse("admin:spin_up"), form_data(fleet, label="secret-keeper"))
        assert response.status_code == 302
        page = client.get(response["Location"])
    [(level, text)] = texts(page)
    password = text.rsplit(": ", 1)[1]
    assert level == "success" and len(password) == 24  # shown, once, on the page

    jar = cookies_set_by(response, page)
    assert "sessionid" in jar and "messages" not in jar
    for name, value in jar.items():
        for form in readable_forms(value):
            assert password not in form, f"the root password is readable in the {name} cookie"
    assert password not in caplog.text
    instance = Instance.objects.get(label="secret-keeper")
    assert password not in instance.cloud_init_user_data
    assert password not in json.dumps([r.detail for r in AuditRecord.objects.all()])


def test_the_message_is_read_from_the_session_once(client, fleet, superuser):
    client.force_login(superuser)
    response = client.post(reverse("admin:spin_up"), form_data(fleet, label="shown-once"))
    first = client.get(response["Location"])
    password = texts(first)[0][1].rsplit(": ", 1)[1]
    assert password.encode() in first.content
    assert password.encode() not in client.get(response["Location"]).content


def every_stored_text() -> str:
    """Every row of every model, as text: where a secret could hide in the database."""
    rows = []
    for model in apps.get_models():
        for row in model._base_manager.all().values():
            rows.append(repr(row))
    return "\n".join(rows)


def test_no_part_of_a_token_secret_is_kept_or_logged(client, caplog):
    user = make_user(username="carol")
    out, err = io.StringIO(), io.StringIO()
    with caplog.at_level(logging.DEBUG):
        call_command("create_api_token", "carol", "--label", "ci", stdout=out, stderr=err)
        secret = out.getvalue().strip()
        api = Api(client, secret)
        assert api.get("/v4/profile").status_code == 200
        assert api.get("/v4/linode/instances").status_code == 200
        other = api_token_create(user=user, label="to-revoke")
        other_id = other.token.pk
        api_token_revoke(token=other.token, actor=user)
    pieces = {secret, secret[:8], secret[-8:], other.secret[:8], other.secret}
    stored = every_stored_text()
    for piece in pieces:
        assert piece not in stored
        assert piece not in caplog.text
    ci = ApiToken.objects.get(label="ci")
    names = AuditRecord.objects.filter(target_type="accounts.apitoken").values_list("target_repr", flat=True)
    assert sorted(names) == [f"ci #{ci.pk} of carol"] + [f"to-revoke #{other_id} of carol"] * 2


def test_the_migration_rewrites_old_audit_names_without_the_prefix():
    user = make_user(username="dave")
    token = api_token_create(user=user, label="old").token
    record = AuditRecord.objects.create(
        action="api_token.create", target_type="accounts.apitoken", target_id=str(token.pk),
        target_repr="old 1a2B3c4D… of dave",
    )  # fmt: skip
    untouched = AuditRecord.objects.create(
        action="instance.create",
        target_type="provisioning.instance",
        target_id="1",
        target_repr="web-1 … of x",
    )
    migration = importlib.import_module("accounts.migrations.0006_api_token_no_prefix")
    migration.forget_prefixes(apps, None)
    record.refresh_from_db()
    untouched.refresh_from_db()
    assert record.target_repr == f"old #{token.pk} of dave"
    assert untouched.target_repr == "web-1 … of x"
