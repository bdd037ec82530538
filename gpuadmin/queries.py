"""Query helpers the request paths share."""

from django.db.models import Model, QuerySet


def row_or_none(queryset: QuerySet) -> Model | None:
    """The row of a query on a unique key, or None. `first()` orders the query (by the model's ordering,
    else its primary key); for one row an order means nothing, and compiling it was a tenth of a view's
    CPU."""
    return next(iter(queryset.order_by()[:1]), None)
