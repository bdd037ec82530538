"""Schema-based fuzzing: schemathesis reads /v4/openapi.json from a live server with a seeded database
and sends what the schema allows, then what it does not, with a fixed seed (derandomized). Every one of
schemathesis's checks runs on every answer: no 5xx; status code, content type, body and headers as the
schema says; what the schema allows is accepted and what it does not is refused (so the schema tells
the truth: label and tag lengths, the typed X-Filter, `page` rules); public endpoints need no token and
the others refuse a request without one. About 2,000 cases, bounded to a few minutes.

One allowance, and why: a request body can be well formed and still refused for what it means (a plan,
region or image id that does not exist, a root password without three character classes, a label
another Linode has), as Linode's own API does with a 400; no schema can list those. For the operations
that judge meanings (create, rebuild, resize, password resets) a 400 to schema-valid data is accepted;
everywhere else it fails the run. And the X-Filter header's 8,192-character limit (its description
says so) cannot be a JSON Schema keyword on the header's structure: a schema-valid filter over it is a
400 the run accepts; so is a body key the schema does not declare (ignored by the server) whose content
holds a control character, which OpenAPI 3.0 has no keyword to forbid.
"""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from provisioning.models import Job
from tests.api.conftest import token_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

MIN_CASES = 1800
POSITIVE_CASES, NEGATIVE_CASES = 30, 20  # per operation: about 2,000 cases over 43 operations
# Bodies whose values the services judge beyond their shape (see above).
JUDGES_MEANING = {
    ("POST", "/v4/linode/instances"),
    ("POST", "/v4/linode/instances/{instance_id}/rebuild"),
    ("POST", "/v4/linode/instances/{instance_id}/resize"),
    ("POST", "/v4/linode/instances/{instance_id}/password"),
    ("POST", "/v4/linode/instances/{instance_id}/disks/{disk_id}/password"),
}
CONFIG = """
[generation]
allow-x00 = false
# Unknown query parameters are ignored, as Linode ignores them: sending them proves nothing either way.
allow-extra-parameters = false
"""


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


def refused_for_a_key_it_does_not_declare(response, case) -> bool:
    """A body key the schema does not name (ignored, as Linode ignores them) whose content holds a control
    character is refused like any text: OpenAPI 3.0 cannot say "other keys, but no control characters"."""
    declared = _declared(case)
    try:
        found = response.json()["errors"]
    except (ValueError, KeyError, TypeError):
        return False
    return all(
        "control character" in e["reason"] and str(e.get("field", "")).split(".")[0] not in declared
        for e in found
    )


def _declared(case) -> set[str]:
    """The body keys the operation's schema names (none when it takes no body)."""
    body = case.operation.definition.raw.get("requestBody")
    if not body:
        return set()
    ref = body["content"]["application/json"]["schema"]["$ref"]
    components = case.operation.schema.raw_schema["components"]["schemas"]
    return set(components[ref.rsplit("/", 1)[1]].get("properties", {}))


def positive_data_acceptance_but_the_filter_limit(ctx, response, case):
    """schemathesis's own check, except for the X-Filter length limit and undeclared keys (see above)."""
    if response.status_code == 400 and (
        "X-Filter is longer than" in response.text or refused_for_a_key_it_does_not_declare(response, case)
    ):
        return None
    if response.status_code in (413, 414):  # no schema can say how long a URL or body may get
        return None
    return schemathesis.checks.positive_data_acceptance(ctx, response, case)


def negative_data_rejection_counting_the_size_limits(ctx, response, case):
    """schemathesis's own check, which knows no 413 or 414: the API's answers to a body or URL over its
    limits (documented on every operation) are rejections too, in Linode's error body."""
    if response.status_code in (413, 414) and "errors" in response.json():
        return None
    return schemathesis.checks.negative_data_rejection(ctx, response, case)


def fuzz(operation, mode: GenerationMode, examples: int, token: str, seen: dict, session) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    excluded = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]
    additional = [negative_data_rejection_counting_the_size_limits]
    if (operation.method.upper(), operation.path) not in JUDGES_MEANING:
        additional.append(positive_data_acceptance_but_the_filter_limit)

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
        # checks=None: every check schemathesis has (the stateful ones skip without a recorded scenario).
        case.validate_response(
            response, excluded_checks=excluded, additional_checks=additional,
            headers={"Authorization": f"Bearer {token}"}, transport_kwargs={"session": session},
        )  # fmt: skip

    try:
        run()
    except Unsatisfiable:
        # Nothing the schema forbids can be sent here (e.g. a path whose only parameter any string
        # satisfies): there is no negative case, which is not a failure.
        assert mode == GenerationMode.NEGATIVE, operation.label
        seen.setdefault("no negative case", []).append(operation.label)


def test_no_5xx_and_every_response_matches_the_schema(live_server, seeded_token):
    schema = schemathesis.openapi.from_url(
        live_server.url + "/v4/openapi.json", config=SchemathesisConfig.from_str(CONFIG)
    )
    seen: dict[int, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 21
    # One session, closed while the live server is still up (see test_sdk's fixture for why).
    with requests.Session() as session:
        for operation in operations:
            fuzz(operation, GenerationMode.POSITIVE, POSITIVE_CASES, seeded_token, seen, session)
            if operation.body or any(True for _ in operation.iter_parameters()):
                fuzz(operation, GenerationMode.NEGATIVE, NEGATIVE_CASES, seeded_token, seen, session)
    without_negatives = seen.pop("no negative case", [])
    cases = sum(seen.values())
    summary = f"fuzzed {len(operations)} operations with {cases} cases: {dict(sorted(seen.items()))}"
    print(f"{summary}; no negative case for {without_negatives}")  # noqa: T201
    assert cases >= MIN_CASES
    assert 200 in seen and 400 in seen and 404 in seen
