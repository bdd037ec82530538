"""Domain errors of networking. Edges translate them; provisioning turns them into its own."""


class NetworkingError(Exception):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class AddressesExhausted(NetworkingError):
    """The region's pools have no address to hand out now (all held, reserved or cooling down)."""


class PoolInvalid(NetworkingError):
    """A pool definition that cannot stand: a bad network, a gateway outside it, an overlap."""
