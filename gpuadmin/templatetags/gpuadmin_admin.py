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
