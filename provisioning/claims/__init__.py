"""Claiming, releasing and moving what a guest holds: GPUs, whole cores and memory, NUMA-local.

`services` holds the transactions and their rules; `rows` is the claim's hot path in plain SQL.
"""

from provisioning.claims.services import (
    allocation_claim,
    allocation_move,
    allocation_move_abandon,
    allocation_move_finish,
    allocation_release,
    capacity_explanation,
)

__all__ = [
    "allocation_claim",
    "allocation_move",
    "allocation_move_abandon",
    "allocation_move_finish",
    "allocation_release",
    "capacity_explanation",
]
