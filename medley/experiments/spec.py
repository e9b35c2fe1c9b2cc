"""An experiment as the core knows it: arms (ranking configurations), surfaces, split, ramp and
guardrails, checked here so every caller (API, tests, the simulator) gets the same rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from medley.errors import InvalidInput

SURFACES = ("recommendations", "new-items", "similar")
MAX_ARMS = 6
# Exposure labels that are not arms: the holdout group, interleaved answers.
RESERVED_ARMS = frozenset({"holdout", "interleaved"})


class Mode(StrEnum):
    AB = "ab"
    INTERLEAVE = "interleave"  # team-draft: two arms merged into every answer


class Status(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    SHIPPED = "shipped"  # the winner serves everyone until the experiment is stopped


# Per-user metrics (medley.experiments.online); a guardrail may bound any of them, or latency.
METRICS = ("ctr", "like_rate", "skip_rate", "completion_rate", "dwell", "items_per_session",
           "return_1d", "return_7d", "new_share")
LOWER_IS_BETTER = frozenset({"skip_rate"})
LATENCY = "p95_ms"


@dataclass(frozen=True)
class Arm:
    """A ranking configuration. None: as the service is configured (the live profile, the
    learned ranker where one is trained, the settings' MMR λ and exploration share)."""

    name: str
    weight: float = 1.0
    profile_id: int | None = None  # a fusion profile version
    ranker: str | None = None  # "learned" | "blend"
    mmr_lambda: float | None = None
    exploration_share: float | None = None
    stopped: str | None = None  # why its traffic went back to control

    @property
    def key(self) -> tuple[Any, ...]:
        """What distinguishes its answers (an answer-cache key part)."""
        return (self.profile_id, self.ranker, self.mmr_lambda, self.exploration_share)


@dataclass(frozen=True)
class Guardrail:
    """`metric` down by more than `max_drop` (relative, with confidence), or `p95_ms` above
    `max_value`, stops the arm."""

    metric: str
    max_drop: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class Spec:
    name: str
    arms: tuple[Arm, ...]  # the first is control
    surfaces: tuple[str, ...] = ("recommendations",)
    mode: Mode = Mode.AB
    holdout: float = 0.0
    ramp: tuple[float, ...] = (1.0,)  # share of (non-holdout) users enrolled, step by step
    ramp_every_s: float = 3600.0
    guardrails: tuple[Guardrail, ...] = ()
    note: str | None = None

    def check(self) -> Spec:
        names = [a.name for a in self.arms]
        if not 2 <= len(self.arms) <= MAX_ARMS:
            raise InvalidInput(f"arms: between 2 and {MAX_ARMS} (the first is control)")
        if len(set(names)) != len(names):
            raise InvalidInput("arms: names must differ")
        if taken := RESERVED_ARMS & set(names):
            raise InvalidInput(f"arms: {', '.join(sorted(taken))} is a reserved name")
        if any(a.weight <= 0 for a in self.arms):
            raise InvalidInput("arms: every weight must be above zero")
        if any(a.ranker not in (None, "learned", "blend") for a in self.arms):
            raise InvalidInput("arms: ranker is 'learned' or 'blend'")
        if not self.surfaces or any(s not in SURFACES for s in self.surfaces):
            raise InvalidInput(f"surfaces: one or more of {', '.join(SURFACES)}")
        if self.mode is Mode.INTERLEAVE and (len(self.arms) != 2
                                             or tuple(self.surfaces) != ("recommendations",)):
            raise InvalidInput("interleaving compares exactly two arms on recommendations")
        if not 0 <= self.holdout < 1:
            raise InvalidInput("holdout: a share from 0 up to (not including) 1")
        if not self.ramp or any(not 0 < r <= 1 for r in self.ramp) or \
                list(self.ramp) != sorted(self.ramp):
            raise InvalidInput("ramp: rising shares in (0, 1], e.g. [0.01, 0.05, 0.25, 0.5]")
        for g in self.guardrails:
            if g.metric == LATENCY:
                if g.max_value is None or g.max_drop is not None:
                    raise InvalidInput(f"guardrails: {LATENCY} takes max_value (ms)")
            elif g.metric in METRICS:
                if g.max_drop is None or g.max_value is not None or not 0 < g.max_drop < 1:
                    raise InvalidInput(f"guardrails: {g.metric} takes max_drop in (0, 1)")
            else:
                raise InvalidInput(f"guardrails: unknown metric {g.metric!r}; one of "
                                   f"{', '.join((*METRICS, LATENCY))}")
        return self


def arms_of(raw: Sequence[Mapping[str, Any]]) -> tuple[Arm, ...]:
    return tuple(Arm(**dict(a)) for a in raw)


def plain_arms(arms: Sequence[Arm]) -> list[dict[str, Any]]:
    return [asdict(a) for a in arms]


def guardrails_of(raw: Sequence[Mapping[str, Any]]) -> tuple[Guardrail, ...]:
    return tuple(Guardrail(**dict(g)) for g in raw)


def stop_arm(arms: Sequence[Arm], name: str, why: str) -> tuple[Arm, ...]:
    return tuple(replace(a, stopped=why) if a.name == name else a for a in arms)
