"""django-q2 entry points; each calls one service and is safe to run twice."""

from billing import services


def billing_cycle() -> str:
    return str(services.billing_run())
