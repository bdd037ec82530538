"""What every Linode client depends on: the page envelope, X-Filter, the error body, JSON everywhere."""

import json
import re

import pytest
from django.test import Client

from tests.api.conftest import errors, reasons
from tests.builders import make_region

pytestmark = pytest.mark.django_db


@pytest.fixture
def regions(db):
    # 60 regions named r00..r59, so paging is visible; two countries to filter on.
    return [make_region(f"r{n:02d}", f"Region {n}", "us" if n % 2 else "de") for n in range(60)]


def test_envelope_and_pages(regions, anonymous):
    first = anonymous.get("/v4/regions", page_size=25).json()
    assert set(first) == {"data", "page", "pages", "results"}
    assert (first["page"], first["pages"], first["results"], len(first["data"])) == (1, 3, 60, 25)
    last = anonymous.get("/v4/regions", page_size=25, page=3).json()
    assert [r["id"] for r in last["data"]] == [f"r{n}" for n in range(50, 60)]
    beyond = anonymous.get("/v4/regions", page=9).json()
    assert (beyond["data"], beyond["page"], beyond["pages"]) == ([], 9, 1)


def test_default_page_size_is_100(regions, anonymous):
    body = anonymous.get("/v4/regions").json()
    assert (body["pages"], len(body["data"])) == (1, 60)


def test_an_empty_list_has_one_page(anonymous):
    assert anonymous.get("/v4/images").json() == {"data": [], "page": 1, "pages": 1, "results": 0}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"page_size": 24}, "page_size"), ({"page_size": 501}, "page_size"), ({"page_size": "x"}, "page_size"),
     ({"page": 0}, "page"), ({"page": "-1"}, "page")],
)  # fmt: skip
def test_bad_paging_is_a_400_naming_the_parameter(regions, anonymous, params, field):
    response = anonymous.get("/v4/regions", **params)
    assert response.status_code == 400
    assert [e["field"] for e in errors(response)] == [field]


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["data"]]


@pytest.mark.parametrize(
    ("x_filter", "expected"),
    [
        ({"id": "r07"}, ["r07"]),
        ({"id": {"+gt": "r57"}}, ["r58", "r59"]),
        ({"id": {"+gte": "r58"}}, ["r58", "r59"]),
        ({"id": {"+lt": "r02"}}, ["r00", "r01"]),
        ({"id": {"+lte": "r01"}}, ["r00", "r01"]),
        ({"id": {"+gte": "r10", "+lt": "r12"}}, ["r10", "r11"]),
        ({"label": {"+contains": "gion 5"}}, ["r05"] + [f"r{n}" for n in range(50, 60)]),
        ({"country": "us", "id": {"+lt": "r05"}}, ["r01", "r03"]),
        ({"id": {"+neq": "r00"}, "label": {"+contains": "Region 0"}}, []),
        ({"+or": [{"id": "r01"}, {"id": "r33"}]}, ["r01", "r33"]),
        ({"+and": [{"country": "de"}, {"id": {"+lte": "r04"}}]}, ["r00", "r02", "r04"]),
        ({"+or": [{"+and": [{"country": "us"}, {"id": "r09"}]}, {"id": "r10"}]}, ["r09", "r10"]),
        ({"id": {"+lt": "r03"}, "+order_by": "id", "+order": "desc"}, ["r02", "r01", "r00"]),
        ({"id": {"+lt": "r03"}, "+limit": 1, "+whatever": True}, ["r00", "r01", "r02"]),
        ({"id": {"+lt": "r02", "+future_operator": 1}}, ["r00", "r01"]),
    ],
)
def test_x_filter_operators(regions, anonymous, x_filter, expected):
    assert ids(anonymous.get("/v4/regions", filters=x_filter)) == expected


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ('{"capabilities": "Linodes"}', "Cannot filter on capabilities"),
        ('{"+or": [{"resolvers.ipv4": "1.1.1.1"}]}', "Cannot filter on resolvers.ipv4"),
        ('{"+order_by": "capabilities"}', "Cannot order by capabilities"),
        ('{"+order": "sideways"}', "+order must be asc or desc"),
        ("{not json", "X-Filter is not valid JSON"),
        ("[1, 2]", "X-Filter must be a JSON object"),
        ('{"+or": {"id": "r01"}}', "+or takes a list of objects"),
        ('{"id": ["r01", "r02"]}', "id takes a value or an object of operators, not a list"),
        ('{"id": {"gt": "r01"}}', "id: 'gt' is not an operator such as +gte"),
    ],
)
def test_x_filter_mistakes_are_400s_with_a_reason(regions, anonymous, header, reason):
    response = anonymous.get("/v4/regions", headers={"X-Filter": header})
    assert response.status_code == 400
    assert errors(response) == [{"reason": reason, "field": "X-Filter"}]


def test_x_filter_nesting_is_bounded(regions, anonymous):
    deep = '{"+and": [' * 20 + "{}" + "]}" * 20
    response = anonymous.get("/v4/regions", headers={"X-Filter": deep})
    assert response.status_code == 400 and "nested deeper" in reasons(response)[0]


def test_timestamps_are_linode_utc_seconds(db, anonymous):
    from tests.builders import make_image

    make_image("linode/debian12")
    created = anonymous.get("/v4/images").json()["data"][0]["created"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", created), created


def test_an_unknown_path_under_v4_is_a_json_404_whatever_the_method(anonymous):
    for response in (
        anonymous.get("/v4/nothing/here"),
        anonymous.post("/v4/linode/volumes", {"x": 1}),
        anonymous.delete("/v4beta/nothing"),
        anonymous.get("/v4/regions/"),
    ):
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert errors(response) == [{"reason": "Not found"}]


def test_a_method_an_endpoint_lacks_is_a_json_405(world, anonymous):
    response = anonymous.delete("/v4/regions")
    assert response.status_code == 405
    assert reasons(response) == ['Method "DELETE" not allowed.']


def test_v4beta_serves_the_same_endpoints(world, anonymous):
    assert anonymous.get("/v4beta/regions").json() == anonymous.get("/v4/regions").json()


def test_an_unexpected_error_is_a_json_500_and_is_logged(world, anonymous, monkeypatch, caplog):
    from inventory.api import selectors

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(selectors, "public_images", broken)
    response = anonymous.get("/v4/images")
    assert response.status_code == 500
    assert reasons(response) == ["An unexpected error occurred; it has been logged. Please try again."]
    assert "boom" in caplog.text


def test_django_level_errors_under_v4_are_json_too(db):
    # A Host header Django refuses never reaches a view: Django's handler400 answers.
    client = Client(raise_request_exception=False)
    response = client.get("/v4/regions", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response.json() == {"errors": [{"reason": "Bad request"}]}
    assert client.get("/admin/nothing", HTTP_HOST="evil.example")["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("handler", "status"), [("handler400", 400), ("handler403", 403), ("handler404", 404)]
)
def test_djangos_error_handlers_answer_json_under_v4_and_html_elsewhere(rf, handler, status):
    from gpuadmin.api import errors as api_errors

    view = getattr(api_errors, handler)
    for path in ("/v4beta/linode/instances", "/v4"):
        api = view(rf.get(path), Exception("x"))
        assert api.status_code == status and api["Content-Type"] == "application/json"
        assert json.loads(api.content)["errors"][0]["reason"]
    assert view(rf.get("/admin/"), Exception("x"))["Content-Type"].startswith("text/html")


def test_djangos_500_handler_answers_json_under_v4(rf):
    from gpuadmin.api.errors import handler500

    response = handler500(rf.get("/v4/account"))
    assert response.status_code == 500
    assert json.loads(response.content) == {
        "errors": [{"reason": "An unexpected error occurred; it has been logged. Please try again."}]
    }
