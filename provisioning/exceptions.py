"""Domain errors of provisioning. Edges (API, admin) translate them; none of them knows HTTP."""


class ProvisioningError(Exception):
    """A request that cannot be carried out, with a message a person can act on.

    `field` names the request field at fault, when there is one.
    """

    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


class InvalidRequest(ProvisioningError):
    """A field of the request is missing or wrong (unknown plan, bad region, bad image, no credentials)."""


class PlanNotFound(InvalidRequest):
    """The plan does not exist, or the account may not see it (a dark-launched GPU plan)."""

    field = "type"


class RegionNotValid(InvalidRequest):
    field = "region"


class LabelTaken(InvalidRequest):
    field = "label"


class AccountSuspended(ProvisioningError):
    """The account is suspended (Account.active off): nothing new is created for it, whoever asks."""

    field = "account"


class NoCapacity(ProvisioningError):
    """Nothing fits now. `detail` says which resource is scarce, for the person who asked."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class AccountLimitReached(ProvisioningError):
    """The account would hold more GPUs or instances than staff allow it at once (Linode answers 403
    "Account Limit reached. Please open a support ticket."). `limit` is "gpus" or "instances"."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class InstanceBusy(ProvisioningError):
    """The instance has an operation in flight; Linode answers "Linode busy."."""


class ProvisioningDisabled(ProvisioningError):
    """The provisioning kill switch is off."""


class NotSupported(InvalidRequest):
    """A request Linode would carry out that gpuadmin does not (a disk or profile edited by hand)."""
