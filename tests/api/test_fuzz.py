"""Schema-based fuzzing: schemathesis reads /v4/openapi.json from a live server with a seeded database
and sends what the schema allows, then what it does not. No answer may be a 5xx, and every answer must
match the schema (status codes, content type, body, headers). Over 1,000 cases a run.
"""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from provisioning.models import Job
from tests.api.conftest import token_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

MIN_CASES = 1000
POSITIVE_CASES, NEGATIVE_CASES = 40, 20  # per operation
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


@pytest.fixture
def seeded_token(world, employee, settings):
    """The test world, a running Linode of alice's with a finished event, and no rate limit in the way."""
    from accounts.selectors import account_of
    from provisioning import services

    settings.GPUADMIN_API_RATE_LIMITS = {"requests": (10**9, 120), "linode_create": (10**9, 30)}
    services.instance_create(
        account=account_of(user=employee),
        actor=employee,
        plan=world.gpu_plan,
        region=services.region_for(region_id="us-east"),
        image=world.image,
        label="fuzz-target",
        root_pass="Corr3ct-Horse-9",
    )
    assert Job.objects.filter(status=Job.Status.FINISHED).exists()
    return token_for(employee)


def fuzz(operation, mode: GenerationMode, examples: int, token: str, seen: dict, session) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=strategy)
    def run(case):
        response = case.call(session=session, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS)

    run()


def test_no_5xx_and_every_response_matches_the_schema(live_server, seeded_token):
    schema = schemathesis.openapi.from_url(live_server.url + "/v4/openapi.json")
    seen: dict[int, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 21
    # One session, closed while the live server is still up (see test_sdk's fixture for why).
    with requests.Session() as session:
        for operation in operations:
            fuzz(operation, GenerationMode.POSITIVE, POSITIVE_CASES, seeded_token, seen, session)
            if operation.body or any(True for _ in operation.iter_parameters()):
                fuzz(operation, GenerationMode.NEGATIVE, NEGATIVE_CASES, seeded_token, seen, session)
    cases = sum(seen.values())
    print(f"fuzzed {len(operations)} operations with {cases} cases: {dict(sorted(seen.items()))}")  # noqa: T201
    assert cases >= MIN_CASES
    assert 200 in seen and 400 in seen and 404 in seen
