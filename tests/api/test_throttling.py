"""Per-token rate limits with Linode's headers; the figures come from settings."""

import pytest

from tests.api.conftest import reasons, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_a_window(settings):
    settings.GPUADMIN_API_RATE_LIMITS = {"requests": (3, 120), "linode_create": (2, 30)}


def test_headers_count_down_then_429_with_an_integer_retry_after(world, bob, three_a_window):
    seen = []
    for _ in range(3):
        response = bob.get("/v4/regions")
        assert response.status_code == 200
        seen.append(int(response["X-RateLimit-Remaining"]))
        assert response["X-RateLimit-Limit"] == "3"
    assert seen == [2, 1, 0]
    refused = bob.get("/v4/regions")
    assert refused.status_code == 429
    assert reasons(refused)[0].startswith("Request was throttled.")
    assert 1 <= int(refused["Retry-After"]) <= 120
    assert int(refused["X-RateLimit-Reset"]) > 0


def test_each_token_has_its_own_budget(world, customer, bob, three_a_window):
    for _ in range(4):
        bob.get("/v4/regions")
    assert bob.get("/v4/regions").status_code == 429
    other = bob.as_(token_for(customer))
    assert other.get("/v4/regions").status_code == 200


def test_anonymous_callers_are_counted_by_address(world, anonymous, three_a_window):
    for _ in range(3):
        assert anonymous.get("/v4/linode/types").status_code == 200
    assert anonymous.get("/v4/linode/types").status_code == 429


def test_creates_have_their_own_tighter_window(world, bob, settings):
    settings.GPUADMIN_API_RATE_LIMITS = {"requests": (100, 120), "linode_create": (2, 30)}
    body = {"type": "g6-standard-2", "region": "us-central"}
    assert [bob.post("/v4/linode/instances", body).status_code for _ in range(2)] == [200, 200]
    refused = bob.post("/v4/linode/instances", body)
    assert refused.status_code == 429 and refused["X-RateLimit-Limit"] == "2"
    assert 1 <= int(refused["Retry-After"]) <= 30
    assert bob.get("/v4/linode/instances").json()["results"] == 2
