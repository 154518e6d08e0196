"""Per-client rate limits: a token bucket per client address, in the memory of one worker process.

Anonymous callers are limited (texts scored, feedback posted per minute); a caller with the API key or the
app token is not. Each worker process keeps its own buckets, so a server with N workers lets a client
through up to N times the limit: the limit bounds what one client can write, not an exact quota.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """`per_minute` units per client, refilled continuously, with bursts of up to a minute's worth."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def take(self, client: str, units: int = 1) -> float:
        """Spend `units` for the client: 0.0 when allowed, else the seconds to wait before retrying.

        `per_minute` 0 means no limit. A request larger than the whole bucket costs the whole bucket.
        """
        if self.per_minute <= 0:
            return 0.0
        capacity = float(self.per_minute)
        rate_per_s = capacity / 60.0
        units_f = min(float(units), capacity)
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate_per_s)
            self._buckets[client] = (tokens, now)  # most recently seen last
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)  # forget the client seen longest ago (its bucket refills)
            if tokens >= units_f:
                self._buckets[client] = (tokens - units_f, now)
                return 0.0
            return (units_f - tokens) / rate_per_s
