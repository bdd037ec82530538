"""Races on PostgreSQL: calls released at once from threads of their own, each with its own connection."""

import threading

from django.db import connection


def race(calls, *, what: str = "a call") -> list:
    """Runs every call in a thread of its own, all released together by a barrier; returns each call's
    result or the exception it raised, in the calls' order. A thread still running after two minutes
    fails the test: a deadlock or a lock wait that never ends."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def client(position: int, call) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[position] = call()
        except Exception as outcome:  # noqa: BLE001 - a refusal, or the failure the test looks for
            outcomes[position] = outcome
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), f"{what} hung: deadlock or lock wait"
    return outcomes
