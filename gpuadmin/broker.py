"""The task queue's database broker: django-q2's ORM broker, with each queue operation one statement.

django-q2's own takes a task in two round trips per task (a SELECT of up to `bulk` rows, then an UPDATE
of each row's lock, each compiled by the ORM) and deletes an acknowledged task through the deletion
collector. A create job is a few milliseconds of work, so that was a tenth of the worker cluster's CPU
(docs/performance.md, "Create to running"). Here, on PostgreSQL, a poll takes its tasks with one
`UPDATE ... RETURNING` over the oldest unlocked rows (`FOR UPDATE SKIP LOCKED`: two clusters never take
the same task, and neither waits for the other), and an insert and a delete are one statement each.

What a task's row means is unchanged: `lock` is when another cluster may take the task again (a worker
that died without acknowledging it), the row is deleted when its result is saved. On other databases
(SQLite in development) every operation is django-q2's own.
"""

import time
from datetime import timedelta

from django.db import connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

TABLE = OrmQ._meta.db_table


class DatabaseBroker(ORM):
    def _cursor(self):
        self.get_connection()  # django-q2's connection hygiene: an obsolete or broken one is closed first
        return connections[Conf.ORM].cursor()

    @staticmethod
    def _fast() -> bool:
        return connections[Conf.ORM].vendor == "postgresql"

    def enqueue(self, task):
        if not self._fast():
            return super().enqueue(task)
        with self._cursor() as cursor:
            cursor.execute(
                f'INSERT INTO {TABLE} ("key", payload, lock) VALUES (%s, %s, %s) RETURNING id',
                [self.list_key or Conf.CLUSTER_NAME, task, timezone.now()],
            )
            return cursor.fetchone()[0]

    def dequeue(self):
        if not self._fast():
            return super().dequeue()
        now = timezone.now()
        until = now + timedelta(seconds=Conf.RETRY)
        with self._cursor() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET lock = %s WHERE id IN ("
                f'SELECT id FROM {TABLE} WHERE "key" = %s AND lock < %s '
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
                ") RETURNING id, payload",
                [until, self.list_key, now, Conf.BULK],
            )
            tasks = sorted(cursor.fetchall())  # RETURNING has no order: oldest first
        if tasks:
            return tasks
        time.sleep(Conf.POLL)  # an empty queue: spare the CPU, as django-q2 does
        return None

    def delete(self, task_id):
        if not self._fast():
            return super().delete(task_id)
        with self._cursor() as cursor:
            cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [task_id])
