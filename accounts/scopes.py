"""Linode OAuth scopes for personal access tokens: `*` or space-separated `area:level` pairs.

`read_write` includes `read_only`; `*` is `read_write` on every area. Unknown areas are refused when a
token is made, so a typo ("linode:read_write") is caught then rather than as a puzzling 403 later.
"""

from dataclasses import dataclass

READ_ONLY = "read_only"
READ_WRITE = "read_write"
LEVELS = (READ_ONLY, READ_WRITE)
ALL = "*"

# The areas Linode defines; gpuadmin serves linodes, account and events, and accepts the rest so
# that scope strings copied from Linode's Cloud Manager still work.
AREAS = (
    "account",
    "databases",
    "domains",
    "events",
    "firewall",
    "images",
    "ips",
    "linodes",
    "lke",
    "longview",
    "nodebalancers",
    "object_storage",
    "stackscripts",
    "volumes",
    "vpc",
)


class InvalidScopes(ValueError):
    """A scope string that is not `*` nor `area:level` pairs of known areas."""


@dataclass(frozen=True)
class Scopes:
    """What a token may do: a level per area, or everything."""

    grants: tuple[tuple[str, str], ...] = ()
    everything: bool = False

    def allows(self, area: str, level: str) -> bool:
        if self.everything:
            return True
        granted = dict(self.grants).get(area)
        return granted == READ_WRITE or (granted == READ_ONLY and level == READ_ONLY)

    def __str__(self) -> str:
        if self.everything:
            return ALL
        return " ".join(f"{area}:{level}" for area, level in self.grants)


def parse_scopes(text: str) -> Scopes:
    words = text.replace(",", " ").split()
    if not words:
        raise InvalidScopes("Scopes are empty: use '*' or pairs such as 'linodes:read_write'.")
    if ALL in words:
        if len(words) > 1:
            raise InvalidScopes("'*' already grants every scope; give it alone.")
        return Scopes(everything=True)
    grants: dict[str, str] = {}
    for word in words:
        area, _, level = word.partition(":")
        if area not in AREAS:
            raise InvalidScopes(f"Unknown scope area {area!r} in {word!r}; known areas: {', '.join(AREAS)}.")
        if level not in LEVELS:
            raise InvalidScopes(f"Scope {word!r} needs a level: {area}:read_only or {area}:read_write.")
        if grants.get(area) != READ_WRITE:
            grants[area] = level
    return Scopes(grants=tuple(sorted(grants.items())))
