"""The OpenAPI document at /v4/openapi.json: valid, and describing every endpoint that is served."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(anonymous):
    response = anonymous.get("/v4/openapi.json")
    assert response.status_code == 200
    return response.json()


def served_operations() -> set[tuple[str, str]]:
    """(path, method) for every API view under /v4, read from the URL configuration itself."""
    found = set()

    def walk(patterns, prefix):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("v4/") and "^" not in route:
                view = getattr(pattern.callback, "view_class", None)
                if view is None or getattr(view, "schema", True) is None or route.endswith("openapi.json"):
                    continue
                path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
                for method in ("get", "post", "put", "delete"):
                    if hasattr(view, method):
                        found.add((path, method))

    walk(get_resolver().url_patterns, "")
    return found


def test_schema_is_valid_openapi(schema):
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")


def test_schema_describes_every_endpoint(schema):
    described = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    served = served_operations()
    assert ("/v4/regions", "get") in served
    assert served == described


def test_lists_have_the_envelope_and_every_operation_the_error_body(schema):
    regions = schema["paths"]["/v4/regions"]["get"]
    envelope = regions["responses"]["200"]["content"]["application/json"]["schema"]
    target = schema["components"]["schemas"][envelope["$ref"].rsplit("/", 1)[1]]
    assert set(target["required"]) == {"data", "page", "pages", "results"}
    assert {p["name"] for p in regions["parameters"]} >= {"page", "page_size", "X-Filter"}
    for ops in schema["paths"].values():
        for operation in ops.values():
            # 413 and 414: the middleware's answers to any endpoint (the fuzzer reached a 414 on one).
            for code in ("400", "401", "403", "404", "413", "414", "429"):
                body = operation["responses"][code]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/Errors"}


def test_bearer_tokens_are_the_security_scheme(schema):
    assert schema["components"]["securitySchemes"]["personalAccessToken"]["scheme"] == "bearer"


def test_public_endpoints_need_no_token_and_the_others_do(schema):
    public = schema["paths"]["/v4/regions"]["get"]["security"]
    assert {} in public and {"personalAccessToken": []} in public
    for path in ("/v4/linode/types", "/v4/images", "/v4/regions/availability"):
        assert {} in schema["paths"][path]["get"]["security"], path
    assert schema["paths"]["/v4/linode/instances"]["get"]["security"] == [{"personalAccessToken": []}]
    assert schema["paths"]["/v4/account"]["get"]["security"] == [{"personalAccessToken": []}]


def test_labels_and_tags_are_described_as_the_server_checks_them(schema):
    for name in ("InstanceCreate", "InstanceUpdate"):
        body = schema["components"]["schemas"][name]["properties"]
        label = body["label"]
        assert (label["minLength"], label["maxLength"]) == (3, 64)
        pattern = re.compile(label["pattern"])
        assert pattern.search("web-1") and pattern.search("a.b_c")
        assert not pattern.search("ab") and not pattern.search("-web") and not pattern.search("we--b")
        tag = body["tags"]["items"]
        assert (tag["minLength"], tag["maxLength"]) == (3, 50)


def test_x_filter_is_a_typed_json_object(schema):
    (x_filter,) = [
        p for p in schema["paths"]["/v4/linode/instances"]["get"]["parameters"] if p["name"] == "X-Filter"
    ]
    typed = x_filter["content"]["application/json"]["schema"]
    assert typed["type"] == "object" and typed["additionalProperties"] is False
    assert typed["properties"]["id"]["anyOf"][0]["type"] == "integer"
    assert set(typed["properties"]["+order_by"]["enum"]) >= {"id", "label", "created"}
    assert typed["properties"]["+order"]["enum"] == ["asc", "desc"]


@pytest.mark.parametrize("value", ["", "１", "+1", " 1", "1_0", "0"])
def test_page_takes_ascii_digits_only_as_docs_api_says(anonymous, value):
    response = anonymous.get("/v4/regions", page=value)
    assert response.status_code == 400, value
    assert response.json()["errors"] == [{"reason": "page must be a positive integer", "field": "page"}]


def test_page_size_takes_ascii_digits_only(anonymous):
    assert anonymous.get("/v4/regions", page_size="").status_code == 400
    assert anonymous.get("/v4/regions", page_size="２５").status_code == 400
    assert anonymous.get("/v4/regions", page_size="25", page="2").status_code == 200
