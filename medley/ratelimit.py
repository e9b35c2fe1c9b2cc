"""Per-key rate limits: a token bucket per key, refilled continuously.

Pure arithmetic over a clock the caller passes in, so the table-driven tests need no sleeping.
Buckets live in the serving process; with N API processes a key may make N times the rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from medley.domain import Role


@dataclass
class Bucket:
    tokens: float
    at: float


def take(bucket: Bucket, rate: float, burst: float, now: float) -> float:
    """Spend one token. 0.0 when allowed; otherwise the seconds until one is available."""
    bucket.tokens = min(burst, bucket.tokens + max(0.0, now - bucket.at) * rate)
    bucket.at = now
    if bucket.tokens >= 1.0:
        bucket.tokens -= 1.0
        return 0.0
    return (1.0 - bucket.tokens) / rate if rate > 0 else float("inf")


class RateLimiter:
    def __init__(self, limits: Mapping[Role, tuple[float, float]], max_keys: int = 100_000
                 ) -> None:
        self.limits = limits
        self._buckets: dict[str, Bucket] = {}
        self._max = max_keys

    def check(self, key_id: str, role: Role, now: float) -> float:
        """Seconds the caller must wait (0.0: go ahead). Roles with no limit are not limited."""
        limit = self.limits.get(role)
        if limit is None:
            return 0.0
        rate, burst = limit
        bucket = self._buckets.get(key_id)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._buckets.clear()  # only real keys get here; a full reset is harmless
            bucket = self._buckets[key_id] = Bucket(tokens=burst, at=now)
        return take(bucket, rate, burst, now)
