"""Validation before an insert on the request path, without the queries the database answers anyway.

`full_clean()` looks up every foreign key it is given (one SELECT each), and runs a SELECT per unique
and check constraint of the model. On a create that was a third of its statements: the instance, its
job and its audit row sent 20 such queries for objects the request had just read, and for constraints
the service had checked already with the error a user reads. The database holds every one of those
invariants (foreign keys at commit, constraints at the insert), so they are not asked twice.
"""

import uuid

from django.db import models


def clean_for_insert(obj: models.Model) -> None:
    """`full_clean()` for a row built from objects the caller read: every field's validators (types,
    lengths, choices, blank and null) and the model's clean() run; a foreign key whose object is set
    on `obj` is not looked up again, and the model's constraints are left to the database.

    Only for callers that check each of the model's constraints themselves first, with the clear
    error, and turn the IntegrityError of a race into that same error."""
    loaded = [
        field.name
        for field in obj._meta.concrete_fields
        if field.is_relation and field.many_to_one and field.is_cached(obj)
    ]
    # A unique field drawn from uuid4 (a domain's UUID) is not asked about: two draws collide once in
    # 2^61 pairs, and the unique index answers that one.
    drawn = [
        field.name for field in obj._meta.concrete_fields if field.unique and field.default is uuid.uuid4
    ]
    obj.full_clean(exclude=loaded + drawn, validate_constraints=False)
