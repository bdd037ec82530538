from django import template
from django.utils.http import urlencode

register = template.Library()


@register.filter
def gib(mib: int | None) -> str:
    """MiB as GiB, the unit plans and hosts are spoken of in: 155648 -> "152 GiB"."""
    if mib is None:
        return ""
    value = mib / 1024
    return f"{value:.0f} GiB" if value == int(value) or value >= 100 else f"{value:.1f} GiB"


@register.simple_tag
def query(**params) -> str:
    """A query string from keyword arguments, empty values left out: ?plan=g1-gpu-rtx6000-1&region=us-east"""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


ACCOUNT_COLOURS = 12  # account-0 .. account-11 in static/gpuadmin/console.css


@register.filter
def colour_of(account_id: int | None, colours: dict[int, str]) -> str:
    """The CSS class of an account's colour in a picture (host topology), "" for nobody."""
    return colours.get(account_id, "") if account_id is not None else ""


def account_colours(accounts: list[tuple[int, str]]) -> dict[int, str]:
    """A colour class per account, in order; colours repeat past twelve accounts (the legend names them)."""
    return {account_id: f"account-{i % ACCOUNT_COLOURS}" for i, (account_id, _) in enumerate(accounts)}
