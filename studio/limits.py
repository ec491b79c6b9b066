"""Per-client rate limits: a token bucket per (user or client address, action)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from studio.solving import InputError

MAX_BUCKETS = 10_000  # idle buckets beyond this are dropped (a full bucket is the default state)


@dataclass(frozen=True)
class Rate:
    """``per_minute`` requests a minute on average, ``burst`` at once."""

    per_minute: float
    burst: int


RATES: dict[str, Rate] = {
    "solve": Rate(12, 4),
    "check": Rate(120, 20),  # the live re-solve runs as people type
    "save_correction": Rate(30, 10),
}


class RateLimited(InputError):
    """Too many requests from one user or address; the message says when to retry."""


class RateLimiter:
    def __init__(
        self, rates: dict[str, Rate] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rates = RATES if rates is None else rates
        self.clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # tokens, when
        self._lock = threading.Lock()

    def hit(self, key: str, action: str) -> None:
        """Take one request of ``action`` by ``key``, or raise :class:`RateLimited`."""
        rate = self.rates.get(action)
        if rate is None:
            return
        now = self.clock()
        per_s = rate.per_minute / 60
        with self._lock:
            tokens, since = self._buckets.get((key, action), (rate.burst, now))
            tokens = min(rate.burst, tokens + (now - since) * per_s)
            if tokens < 1:
                wait = (1 - tokens) / per_s
                raise RateLimited(
                    f"Too many {action.replace('_', ' ')} requests from you: try again in "
                    f"{wait:.0f} s."
                )
            self._buckets[(key, action)] = (tokens - 1, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._prune(now)

    def _prune(self, now: float) -> None:
        for (key, action), (tokens, since) in list(self._buckets.items()):
            rate = self.rates[action]
            if tokens + (now - since) * rate.per_minute / 60 >= rate.burst:
                del self._buckets[(key, action)]
