"""Rate limits per token (per client address without one), as Linode counts them.

Fixed windows counted in the `default` cache with add+incr, which are atomic in Redis and in the
local-memory cache alike; a sliding log (DRF's throttles) needs a read-modify-write that loses
counts under concurrency. Limits come from settings.GPUADMIN_API_RATE_LIMITS so tests can lower them.
"""

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

REQUESTS = "requests"
LINODE_CREATE = "linode_create"


@dataclass(frozen=True)
class Window:
    bucket: str
    limit: int
    period: int
    count: int
    reset: int  # epoch seconds when the window starts over

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    def wait(self, now: float) -> int:
        return max(1, math.ceil(self.reset - now))


def _count(bucket: str, who: str, now: float) -> Window:
    limit, period = settings.GPUADMIN_API_RATE_LIMITS[bucket]
    start = int(now // period * period)
    key = f"api-rate:{bucket}:{who}:{start}"
    cache = caches["default"]
    cache.add(key, 0, timeout=period + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=period + 1)
        count = 1
    return Window(bucket, limit, period, count, start + period)


def _who(request) -> str:
    if request.auth is not None:
        return f"token:{request.auth.pk}"
    return f"addr:{request.META.get('REMOTE_ADDR', '')}"


class LinodeRateLimit(BaseThrottle):
    """Every request counts in `requests`; a view's `rate_buckets` maps methods to extra buckets
    (POST /linode/instances also counts in `linode_create`). The tightest window is reported in the
    X-RateLimit-* headers by the view."""

    def allow_request(self, request, view) -> bool:
        now = time.time()
        who = _who(request)
        buckets = [REQUESTS, *getattr(view, "rate_buckets", {}).get(request.method, ())]
        windows = [_count(bucket, who, now) for bucket in buckets]
        exceeded = [w for w in windows if w.exceeded]
        self.window = (
            max(exceeded, key=lambda w: w.reset) if exceeded else min(windows, key=lambda w: w.remaining)
        )
        self._wait = self.window.wait(now) if exceeded else None
        request.rate_window = self.window
        return not exceeded

    def wait(self):
        return self._wait


def rate_limit_headers(window: Window | None) -> dict[str, str]:
    if window is None:
        return {}
    return {
        "X-RateLimit-Limit": str(window.limit),
        "X-RateLimit-Remaining": str(window.remaining),
        "X-RateLimit-Reset": str(window.reset),
    }
