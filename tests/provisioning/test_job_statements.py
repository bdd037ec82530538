"""What a create job sends to the database: a fixed number of statements, whatever the fleet holds (the
worker's CPU per job is mostly the ORM's per statement; docs/performance.md, "Create to running")."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from provisioning import workflows
from provisioning.models import Instance, Job
from tests.provisioning.conftest import enroll_rtx_host
from tests.provisioning.helpers import create, last_job

pytestmark = pytest.mark.django_db

# One job, by kind: the job with its instance, the switch, the lease taken and read back, the allocation,
# the disk size, the address, the spec's four reads, a renewal per step (4), and the last transaction
# (lock the instance, check the job, the instance running, the job finished).
CREATE_JOB_STATEMENTS = {"SELECT": 11, "UPDATE": 8}


def statements_of_a_create(django_capture_on_commit_callbacks, *, user, plan, region, image):
    with django_capture_on_commit_callbacks(execute=False):  # the job is run below, not on commit
        instance = create(user=user, plan=plan, region=region, image=image)
    job = last_job(instance)
    with CaptureQueriesContext(connection) as queries:
        workflows.job_run(job_id=job.pk)
    job.refresh_from_db()
    instance.refresh_from_db()
    assert (job.status, instance.status) == (Job.Status.FINISHED, Instance.Status.RUNNING), job.error
    kinds: dict[str, int] = {}
    for query in queries.captured_queries:
        kind = query["sql"].split()[0].upper()
        # On PostgreSQL a PreparedRead is an EXECUTE: the SELECT it is. Its PREPARE is sent once per
        # database session, not per job, and is counted apart (the first job of a session has them).
        kind = {"EXECUTE": "SELECT"}.get(kind, kind)
        if kind not in ("SAVEPOINT", "RELEASE"):  # the test's own transaction turns BEGIN into these
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def test_a_create_job_sends_a_fixed_number_of_statements(
    django_capture_on_commit_callbacks, gpu_host, employee, plans, region, image
):
    for n in range(3):  # more instances on the host and in the region change nothing
        kinds = statements_of_a_create(
            django_capture_on_commit_callbacks, user=employee, plan=plans[1], region=region, image=image
        )
        if n == 0:
            kinds.pop("PREPARE", None)  # this session's first job prepares the reads (PostgreSQL)
        assert kinds == CREATE_JOB_STATEMENTS
    enroll_rtx_host(region)  # nor does another host
    kinds = statements_of_a_create(
        django_capture_on_commit_callbacks, user=employee, plan=plans[2], region=region, image=image
    )
    assert kinds == CREATE_JOB_STATEMENTS
