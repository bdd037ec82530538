"""Task results: every one is saved with one insert, and the heartbeat prunes the successful ones beyond
GPUADMIN_Q_RESULTS_KEPT (django-q2's own save_limit would lock every kept row at each save)."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from django_q.models import Failure, Success, Task

from gpuadmin.services import task_results_prune
from gpuadmin.tasks import heartbeat

pytestmark = pytest.mark.django_db


def result(*, success: bool, minutes_ago: int) -> Task:
    stopped = timezone.now() - timedelta(minutes=minutes_ago)
    return Task.objects.create(
        id=uuid.uuid4().hex, name=f"task-{uuid.uuid4().hex[:8]}", func="gpuadmin.tasks.heartbeat",
        started=stopped - timedelta(seconds=1), stopped=stopped, success=success,
    )  # fmt: skip


def test_the_queue_itself_prunes_nothing_per_task():
    assert settings.Q_CLUSTER["save_limit"] == 0  # no count and lock of every kept result at each save


def test_prune_keeps_the_newest_successes_and_every_failure():
    successes = [result(success=True, minutes_ago=minutes) for minutes in range(5)]
    failures = [result(success=False, minutes_ago=60 + minutes) for minutes in range(2)]
    assert task_results_prune(keep=2) == 3
    assert set(Success.objects.values_list("pk", flat=True)) == {successes[0].pk, successes[1].pk}
    assert set(Failure.objects.values_list("pk", flat=True)) == {f.pk for f in failures}
    assert task_results_prune(keep=2) == 0


def test_prune_with_fewer_results_than_kept_deletes_nothing():
    result(success=True, minutes_ago=1)
    assert task_results_prune(keep=5) == 0
    assert Success.objects.count() == 1


@override_settings(GPUADMIN_Q_RESULTS_KEPT=1)
def test_the_heartbeat_prunes():
    newest, _older = result(success=True, minutes_ago=0), result(success=True, minutes_ago=3)
    assert heartbeat().endswith("; 1 old task results pruned")
    assert list(Success.objects.values_list("pk", flat=True)) == [newest.pk]
