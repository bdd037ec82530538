"""Input the API cannot mean is a 4xx with Linode's error body and one warning line, never a 500.

The first test replays the requests that answered 500 (with a 30-line traceback each) before the
error path was built: bodies too large or too deep, NUL in X-Filter values and path segments, and
decimal filters that are not finite. On PostgreSQL the NUL cases reached the driver, which refuses
NUL in any string.
"""

import json
import logging

import pytest

from billing.services import invoice_finalize, invoice_generate, usage_sync
from provisioning.models import Instance
from tests.api.conftest import errors
from tests.billing.helpers import at, created_instance, deleted

pytestmark = pytest.mark.django_db

BIG_BODY = json.dumps({"type": "g6-standard-2", "region": "us-east", "label": "a" * (5 * 1024 * 512)})
DEEP_BODY = "[" * 5000 + "]" * 5000
NUL = {"id": "a\u0000"}


@pytest.fixture
def linode(world, alice):
    body = {"type": world.gpu_plan.id, "region": "us-east", "image": "linode/ubuntu22.04"}
    response = alice.post("/v4/linode/instances", {**body, "root_pass": "Corr3ct-Horse-9", "label": "web-1"})
    assert response.status_code == 200, response.content
    return response.json()["id"]


@pytest.fixture
def invoice(world, customer):
    instance = created_instance(
        account=customer.membership.account, plan=world.gpu_plan, created=at("2026-01-05 10:00")
    )
    deleted(instance, when=at("2026-01-05 20:00"))
    now = at("2026-03-01 02:00")
    usage_sync(now=now)
    draft = invoice_generate(
        account=customer.membership.account, month=at("2026-01-01 00:00").date(), now=now
    )
    return invoice_finalize(invoice=draft, now=now).pk


def raw(api, method: str, path: str, body: str | None = None, x_filter: str | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"} if api.token else {}
    if x_filter is not None:
        headers["HTTP_X_FILTER"] = x_filter
    if body is None:
        return getattr(api.client, method)(path, **headers)
    return getattr(api.client, method)(path, body, content_type="application/json", **headers)


# (who, method, path, body, X-Filter, status): the issue's 500s, one a row. {linode} and {invoice}
# are filled in from the fixtures. "anonymous" rows needed no token to crash the server.
ISSUE_CASES = [
    ("alice", "post", "/v4/linode/instances", BIG_BODY, None, 413),
    ("alice", "put", "/v4/linode/instances/{linode}", BIG_BODY, None, 413),
    ("alice", "post", "/v4/linode/instances", DEEP_BODY, None, 400),
    ("alice", "post", "/v4/linode/instances/{linode}/resize", DEEP_BODY, None, 400),
    ("anonymous", "get", "/v4/regions", None, json.dumps(NUL), 400),
    ("anonymous", "get", "/v4/linode/types", None, json.dumps(NUL), 400),
    ("anonymous", "get", "/v4/images", None, json.dumps(NUL), 400),
    ("alice", "get", "/v4/linode/instances", None, json.dumps({"label": "a\u0000"}), 400),
    ("alice", "get", "/v4/account/events", None, json.dumps({"entity.label": "a\u0000"}), 400),
    ("bob", "get", "/v4/account/invoices/{invoice}/items", None, json.dumps({"label": "a\u0000"}), 400),
    ("anonymous", "get", "/v4/regions/us%00east", None, None, 404),
    ("anonymous", "get", "/v4/linode/types/g6%00x", None, None, 404),
    ("anonymous", "get", "/v4/images/linode/deb%00ian", None, None, 404),
    # Not in the issue's list but the same 500 on the same route family: a NUL before /availability.
    ("anonymous", "get", "/v4/regions/us%00east/availability", None, None, 404),
    ("bob", "get", "/v4/account/invoices", None, '{"total": {"+gt": "NaN"}}', 400),
    ("bob", "get", "/v4/account/invoices", None, '{"subtotal": "Infinity"}', 400),
    ("bob", "get", "/v4/account/invoices", None, '{"total": 1e400}', 400),
]


@pytest.mark.parametrize(("who", "method", "path", "body", "x_filter", "status"), ISSUE_CASES)
def test_the_issues_500s_are_4xx_with_linodes_body_and_one_warning_line(
    request, caplog, world, alice, anonymous, bob, linode, invoice, who, method, path, body, x_filter, status
):
    api = {"alice": alice, "bob": bob, "anonymous": anonymous}[who]
    path = path.format(linode=linode, invoice=invoice)
    instances = Instance.objects.count()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        response = raw(api, method, path, body, x_filter)
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert errors(response)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].levelno == logging.WARNING and warnings[0].exc_info is None
    assert "Traceback" not in caplog.text
    assert Instance.objects.count() == instances  # nothing half-written


def test_a_body_django_refuses_for_its_own_memory_limit_is_a_413_too(world, alice, settings, caplog):
    # With the API's limit raised above Django's, DATA_UPLOAD_MAX_MEMORY_SIZE answers (RequestDataTooBig).
    settings.GPUADMIN_API_MAX_BODY_BYTES = 10 * 1024 * 1024
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = raw(alice, "post", "/v4/linode/instances", json.dumps({"label": "x" * 2000}))
    assert response.status_code == 413
    assert errors(response) == [{"reason": "The request body is larger than 1000 bytes."}]
    assert "Traceback" not in caplog.text


START = '{"type": "g6-standard-2", "region": "us-east", '


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        (START + '"label": NaN}', "label is not a finite number", "label"),
        (START + '"tags": [Infinity]}', "tags.0 is not a finite number", "tags.0"),
        (START + '"group": -1e400}', "group is not a finite number", "group"),
        (
            '{"type": "g6-standard-2", "region": "us-east\\u0000"}',
            "region contains a control character",
            "region",
        ),
        (START + '"label": "a\\u001bb"}', "label contains a control character (U+001B)", "label"),
        (START + '"tags": ["ab\\ud800c"]}', "tags.0 contains a control character (U+D800)", "tags.0"),
        (START + '"metadata": {"user\\u0000": 1}}', "The key 'user\\x00' contains", "metadata"),
        ("[" * 33 + "]" * 33, "The request body is nested deeper than 32 levels.", None),
        ('{"type": ' + "1" * 5000 + "}", "JSON parse error", None),
    ],
)
def test_bodies_are_refused_naming_the_field(world, alice, body, reason, field):
    response = raw(alice, "post", "/v4/linode/instances", body)
    assert response.status_code == 400, response.content
    (error,) = errors(response)
    assert error["reason"].startswith(reason) and error.get("field") == field
    assert not Instance.objects.exists()


def test_a_body_that_is_not_utf8_is_a_400(world, alice):
    response = raw(alice, "post", "/v4/linode/instances", b'{"label": "\xff"}')
    assert response.status_code == 400
    assert errors(response) == [{"reason": "The request body is not valid utf-8 text."}]


def test_json_at_the_depth_limit_is_parsed(world, alice):
    # 32 levels: the body is read (and refused for its meaning, not its shape).
    body = '{"type": "g6-standard-2", "region": "us-east", "x": ' + "[" * 31 + "]" * 31 + "}"
    response = raw(alice, "post", "/v4/linode/instances", body)
    assert "nested" not in response.content.decode()


@pytest.mark.parametrize(
    ("x_filter", "reason"),
    [
        ('{"label": "\\ud800"}', "label contains a control character (U+D800)"),
        ('{"label": {"+contains": "a\\u0007"}}', "label.+contains contains a control character (U+0007)"),
        ('{"+or": [{"id": "\\u0000"}]}', "+or.0.id contains a control character (U+0000)"),
        ('{"id": NaN}', "id is not a finite number"),
        ('{"id": {"+gt": -Infinity}}', "id.+gt is not a finite number"),
        ("[" * 40 + "]" * 40, "X-Filter is nested deeper than 32 levels."),
    ],
)
def test_x_filter_refuses_control_characters_and_non_finite_numbers(world, anonymous, x_filter, reason):
    response = raw(anonymous, "get", "/v4/regions", x_filter=x_filter)
    assert response.status_code == 400
    (error,) = errors(response)
    assert error["reason"].startswith(reason) and error["field"] == "X-Filter"


@pytest.mark.parametrize(
    ("x_filter", "reason"),
    [
        ('{"total": "1e999999"}', "total must be a finite number below 1e+15"),
        ('{"total": {"+lt": "sNaN"}}', "total must be a finite number below 1e+15"),
        ('{"subtotal": "twelve"}', "subtotal must be a number"),
        ('{"id": "\\uff11"}', "id must be an integer"),
        ('{"id": "\\u00b2"}', "id must be an integer"),
    ],
)
def test_filter_values_outside_their_columns_are_400s(world, bob, invoice, x_filter, reason):
    response = raw(bob, "get", "/v4/account/invoices", x_filter=x_filter)
    assert response.status_code == 400
    assert errors(response) == [{"reason": reason, "field": "X-Filter"}]


def test_a_finite_amount_filter_still_works(world, bob, invoice):
    response = raw(bob, "get", "/v4/account/invoices", x_filter='{"total": {"+gt": "1.5"}}')
    assert [row["id"] for row in response.json()["data"]] == [invoice]
    response = raw(bob, "get", "/v4/account/invoices", x_filter='{"total": {"+gt": 1e10}}')
    assert response.json()["data"] == []


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/v4/regions?page_size=25&label=a%00b", 400, "label"),
        ("/v4/regions?x%01y=1", 400, None),
        ("/v4/nothing%00here", 404, None),
        ("/v4/linode/instances/1%0a", 404, None),
        ("/v4beta/regions/%7F", 404, None),
    ],
)
def test_control_characters_in_paths_and_query_strings(world, anonymous, caplog, path, status, field):
    response = anonymous.client.get(path)
    assert response.status_code == status
    (error,) = errors(response)
    assert error.get("field") == field
    # The log line names the path escaped: no raw control character reaches the log.
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.isprintable()


def test_a_url_over_the_limit_is_a_json_414(world, anonymous):
    response = anonymous.client.get("/v4/regions?label=" + "a" * 5000)
    assert response.status_code == 414
    assert errors(response) == [{"reason": "The URL is longer than 4096 characters."}]
    assert anonymous.client.get("/v4/regions?label=" + "a" * 4000).status_code == 200


def test_a_body_just_under_the_limit_is_read(world, alice, settings):
    settings.GPUADMIN_API_MAX_BODY_BYTES = 2000
    under = json.dumps({"type": "g6-standard-2", "region": "us-east", "group": "g" * 1900})
    over = json.dumps({"type": "g6-standard-2", "region": "us-east", "group": "g" * 2000})
    assert raw(alice, "post", "/v4/linode/instances", under).status_code != 413
    response = raw(alice, "post", "/v4/linode/instances", over)
    assert response.status_code == 413
    assert errors(response) == [{"reason": "The request body is larger than 2000 bytes."}]


def test_the_admin_is_not_subject_to_the_api_guard(admin_client):
    # A control character in an admin URL is Django's ordinary 404 page, not the API's JSON.
    response = admin_client.get("/admin/nothing%00here/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("key", ["image", "region", "type"])
def test_contains_on_a_key_held_as_a_foreign_key_is_a_search_not_a_500(world, alice, linode, key):
    # Found by the schema fuzzer: +contains on image/region/type raised FieldError (icontains on a FK).
    expected = {"image": "ubuntu", "region": "east", "type": "gpu"}[key]
    response = raw(alice, "get", "/v4/linode/instances", x_filter=json.dumps({key: {"+contains": expected}}))
    assert response.status_code == 200, response.content
    assert [row["id"] for row in response.json()["data"]] == [linode]
    response = raw(alice, "get", "/v4/linode/instances", x_filter=json.dumps({key: {"+contains": "zz-none"}}))
    assert response.json()["data"] == []
