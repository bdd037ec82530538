"""The database broker (gpuadmin.broker): django-q2's ORM broker, with each queue operation one statement
on PostgreSQL. The same queue as django-q2's: the rows, their locks, the acknowledgement."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

from gpuadmin.broker import DatabaseBroker

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker(monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 0.01)
    return DatabaseBroker(list_key="test-queue")


def test_the_settings_choose_it_for_the_database_queue():
    if settings.Q_CLUSTER.get("redis"):
        pytest.skip("GPUADMIN_REDIS_URL is set: the queue is Redis")
    assert isinstance(get_broker(), DatabaseBroker)


def test_a_task_goes_through_the_queue(broker):
    task_id = broker.enqueue("payload-1")
    assert OrmQ.objects.get(pk=task_id).key == "test-queue"
    assert broker.queue_size() == 1
    assert broker.dequeue() == [(task_id, "payload-1")]
    assert broker.queue_size() == 0 and broker.lock_size() == 1  # taken, not yet acknowledged
    assert broker.dequeue() is None  # a taken task is not handed out again while its lock holds
    broker.acknowledge(task_id)
    assert not OrmQ.objects.filter(pk=task_id).exists()


def test_oldest_first_and_at_most_bulk(broker, monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 2)
    ids = [broker.enqueue(f"payload-{n}") for n in range(3)]
    assert broker.dequeue() == [(ids[0], "payload-0"), (ids[1], "payload-1")]
    assert broker.dequeue() == [(ids[2], "payload-2")]


def test_a_task_whose_lock_expired_is_taken_again(broker):
    task_id = broker.enqueue("payload")
    assert broker.dequeue() == [(task_id, "payload")]
    lock = OrmQ.objects.get(pk=task_id).lock
    assert lock > timezone.now() + timedelta(seconds=Conf.RETRY - 5)  # locked for django-q2's retry
    OrmQ.objects.filter(pk=task_id).update(lock=timezone.now() - timedelta(seconds=1))  # its worker died
    assert broker.dequeue() == [(task_id, "payload")]


def test_other_queues_are_left_alone(broker):
    other = DatabaseBroker(list_key="another-queue")
    task_id = other.enqueue("theirs")
    assert broker.dequeue() is None
    assert other.dequeue() == [(task_id, "theirs")]


@pytest.mark.postgres
def test_one_statement_per_operation(broker):
    with CaptureQueriesContext(connection) as queries:
        task_id = broker.enqueue("payload")
        broker.dequeue()
        broker.acknowledge(task_id)
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT", "UPDATE", "DELETE"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_clusters_never_take_the_same_task(monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 0.01)
    monkeypatch.setattr(Conf, "BULK", 3)
    ids = {DatabaseBroker(list_key="shared").enqueue(f"payload-{n}") for n in range(60)}
    taken: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def take(index: int) -> None:
        broker = DatabaseBroker(list_key="shared")
        start.wait()
        try:
            while tasks := broker.dequeue():
                taken[index].extend(task_id for task_id, _ in tasks)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken[0] + taken[1]) == sorted(ids)  # every task once, none twice


def test_elsewhere_it_is_django_q2s_own(broker, monkeypatch):
    """SQLite (development): every operation is the ORM broker's (no SKIP LOCKED there)."""
    monkeypatch.setattr(DatabaseBroker, "_fast", staticmethod(lambda: False))
    calls = []
    for name in ("enqueue", "dequeue", "delete"):
        original = getattr(ORM, name)
        monkeypatch.setattr(
            ORM, name, lambda self, *args, _o=original, _n=name: calls.append(_n) or _o(self, *args)
        )
    task_id = broker.enqueue("payload")
    assert broker.dequeue() == [(task_id, "payload")]
    broker.acknowledge(task_id)
    assert calls == ["enqueue", "dequeue", "delete"]
    assert not OrmQ.objects.filter(pk=task_id).exists()
