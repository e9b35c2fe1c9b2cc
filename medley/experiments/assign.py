"""Who sees which arm. A salted hash of the user id decides, so assignment is the same in every
process and after every restart without storing it, and independent between experiments (each
has its own salt).

Two independent draws per user: one says whether the user is in the experiment at all (the
holdout first, then the ramp's share of the rest), the other which arm. Raising the ramp's share
only adds users; nobody already in changes arm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

HOLDOUT = "holdout"


def unit(salt: str, user_id: str, purpose: str) -> float:
    """A number in [0, 1), uniform over users, fixed for (salt, user, purpose)."""
    digest = hashlib.sha256(f"{salt}\x00{purpose}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def pick(weights: Sequence[float], u: float) -> int:
    """The index whose share of the total weight covers `u`."""
    total = float(sum(weights))
    edge = 0.0
    for k, w in enumerate(weights):
        edge += w / total
        if u < edge:
            return k
    return len(weights) - 1  # rounding at the top end


@dataclass(frozen=True)
class Placement:
    """`arm` is an index into the experiment's arms; None with `holdout` False: not enrolled
    (served as everyone else is, not logged)."""

    arm: int | None
    holdout: bool = False


def place(salt: str, user_id: str, weights: Sequence[float], *, holdout: float = 0.0,
          exposure: float = 1.0) -> Placement:
    u = unit(salt, user_id, "enrol")
    if u < holdout:
        return Placement(None, holdout=True)
    rest = (u - holdout) / (1.0 - holdout) if holdout < 1.0 else 1.0
    if rest >= exposure:
        return Placement(None)
    return Placement(pick(weights, unit(salt, user_id, "arm")))
