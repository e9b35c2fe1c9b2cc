"""The token bucket behind per-key rate limits, on a clock the test controls."""

from __future__ import annotations

import pytest

from medley.ratelimit import Bucket, RateLimiter, take


@pytest.mark.parametrize(
    ("tokens", "elapsed", "rate", "burst", "wait", "left"),
    [
        (5.0, 0.0, 1.0, 5.0, 0.0, 4.0),  # a full bucket admits at once
        (0.0, 0.0, 2.0, 5.0, 0.5, 0.0),  # empty: the next token comes in 1/rate seconds
        (0.5, 0.0, 1.0, 5.0, 0.5, 0.5),  # half a token: half the wait
        (0.0, 1.0, 2.0, 5.0, 0.0, 1.0),  # a second at 2/s refills two; one is spent
        (0.0, 100.0, 1.0, 3.0, 0.0, 2.0),  # refill stops at the burst
        (0.0, -5.0, 1.0, 3.0, 1.0, 0.0),  # a clock that steps back refills nothing
    ],
)
def test_take(tokens: float, elapsed: float, rate: float, burst: float, wait: float,
              left: float) -> None:
    bucket = Bucket(tokens=tokens, at=10.0)
    assert take(bucket, rate, burst, 10.0 + elapsed) == pytest.approx(wait)
    assert bucket.tokens == pytest.approx(left)


def test_limits_are_per_key_and_per_role() -> None:
    limiter = RateLimiter({"client": (1.0, 2.0)})
    assert [limiter.check("a", "client", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limiter.check("b", "client", 0.0) == 0.0  # another key has its own bucket
    assert limiter.check("a", "client", 1.0) == 0.0  # a second later, one more
    assert all(limiter.check("e", "editor", 0.0) == 0.0 for _ in range(100))  # no limit set


def test_zero_rate_never_refills() -> None:
    assert take(Bucket(tokens=0.0, at=0.0), 0.0, 1.0, 50.0) == float("inf")


def test_settings_refuse_limits_that_would_lock_a_role_out() -> None:
    from pydantic import ValidationError

    from medley.config import Settings

    for bad in ({"client": (0.0, 5.0)}, {"client": (5.0, 0.5)}, {"root": (1.0, 1.0)}):
        with pytest.raises(ValidationError):
            Settings(rate_limits=bad)
