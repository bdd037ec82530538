"""Domain errors of inventory writes. The admin (and any other edge) turns them into messages."""


class InventoryError(Exception):
    """A change that cannot be made, with a message a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class GpuBusy(InventoryError):
    """The card is held by an instance's active allocation."""


class InvalidStateChange(InventoryError):
    """The host or card cannot go to that state from where it is (or a required reason is missing)."""


class HostBusy(InventoryError):
    """The host holds active allocations, so where and how it is driven cannot change under them."""
