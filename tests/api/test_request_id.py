"""A request's id: echoed (or made) in the response, stored on the job it starts, in the job's log lines."""

import json
import logging

import pytest

from provisioning.models import Job
from telemetry.logs import JsonFormatter
from tests.api.conftest import token_for

pytestmark = pytest.mark.django_db

PASSWORD = "Corr3ct-Horse-Battery"


@pytest.fixture
def json_lines():
    """The JSON lines the provisioning loggers write while the test runs."""
    lines: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(json.loads(self.format(record)))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("provisioning")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_a_sane_request_id_is_echoed_and_a_bad_one_replaced(client):
    kept = client.get("/v4/regions", HTTP_X_REQUEST_ID="lb-7f3a.42")
    assert kept["X-Request-ID"] == "lb-7f3a.42"
    replaced = client.get("/v4/regions", HTTP_X_REQUEST_ID="evil\r\nSet-Cookie: x=1")
    assert replaced["X-Request-ID"] != "evil\r\nSet-Cookie: x=1" and len(replaced["X-Request-ID"]) == 32
    made = client.get("/admin/login/")
    assert len(made["X-Request-ID"]) == 32 and made["X-Request-ID"] != replaced["X-Request-ID"]


def test_the_create_job_keeps_the_request_id_and_its_log_lines_name_job_instance_and_request(
    world, client, employee, json_lines, django_capture_on_commit_callbacks
):
    body = {
        "type": "g1-gpu-rtx6000-1",
        "region": "us-east",
        "image": "linode/ubuntu22.04",
        "root_pass": PASSWORD,
    }
    with django_capture_on_commit_callbacks(execute=True):  # the job runs inline, as the worker would
        response = client.post(
            "/v4/linode/instances",
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token_for(employee)}",
            HTTP_X_REQUEST_ID="create-req-1",
        )
    assert response.status_code == 200, response.content
    job = Job.objects.get(instance_id=response.json()["id"])
    assert job.request_id == "create-req-1" and job.status == Job.Status.FINISHED
    job_lines = [line for line in json_lines if line.get("job_id") == job.pk]
    assert len(job_lines) >= 3  # started, each step, finished
    assert {(line["request_id"], line["instance_id"]) for line in job_lines} == {
        ("create-req-1", job.instance_id)
    }
    assert any("finished" in line["message"] for line in job_lines)
