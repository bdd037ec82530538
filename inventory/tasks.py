"""django-q2 entry points of the inventory app."""

from inventory.services import capacity_sample_record


def capacity_sample() -> str:
    samples = capacity_sample_record()
    return f"capacity sampled: {len(samples)} region/model row(s)"
