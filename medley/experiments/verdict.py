"""From per-arm metrics to what an editor reads: each treatment arm against control on every
metric (always-valid intervals of the relative difference), the sample-ratio check, the
interleaving verdict, and which guardrails an arm breached."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medley.experiments import stats
from medley.experiments.online import ArmMetrics
from medley.experiments.spec import LATENCY, LOWER_IS_BETTER, METRICS, Arm, Guardrail

MIN_EXPOSURES_FOR_LATENCY = 50


def _num(x: float | None, digits: int = 6) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def _diff(d: stats.Difference | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"diff": _num(d.diff), "low": _num(d.low), "high": _num(d.high),
            "relative": _num(d.rel), "relative_low": _num(d.rel_low),
            "relative_high": _num(d.rel_high), "p_value": _num(d.p), "significant": d.significant}


def compare_arms(arms: Sequence[Arm], metrics: Mapping[str, ArmMetrics]
                 ) -> dict[str, dict[str, Any]]:
    """Per arm: users, exposures, coverage, latency, each metric's mean, and (treatment arms)
    each metric against control."""
    control = arms[0].name
    base = metrics.get(control)
    out: dict[str, dict[str, Any]] = {}
    for arm in arms:
        m = metrics.get(arm.name)
        if m is None:
            out[arm.name] = {"users": 0, "exposures": 0, "stopped": arm.stopped}
            continue
        row: dict[str, Any] = {
            "users": m.users, "exposures": m.exposures, "coverage": _num(m.coverage),
            "p50_ms": _num(m.p50_ms, 2), "p95_ms": _num(m.p95_ms, 2), "stopped": arm.stopped,
            "metrics": {k: _num(float(np.nanmean(v)) if np.isfinite(v).any() else math.nan)
                        for k, v in m.per_user.items()}}
        if arm.name != control and base is not None:
            row["versus_control"] = {
                k: _diff(stats.compare(stats.Summary.of(base.per_user[k]),
                                       stats.Summary.of(m.per_user[k])))
                for k in METRICS}
        out[arm.name] = row
    return out


def sample_ratio(arms: Sequence[Arm], metrics: Mapping[str, ArmMetrics]) -> dict[str, Any]:
    counts = [metrics[a.name].users if a.name in metrics else 0 for a in arms]
    p = stats.srm(counts, [a.weight for a in arms]) if not any(a.stopped for a in arms) \
        else None
    return {"users": dict(zip([a.name for a in arms], counts, strict=True)),
            "p_value": _num(p), "mismatch": p is not None and p < stats.SRM_P}


def interleaving(verdicts: Mapping[str, int], arms: Sequence[Arm]) -> dict[str, Any]:
    values = list(verdicts.values())
    d = stats.versus_zero(stats.Summary.of(values))
    wins = sum(v > 0 for v in values), sum(v < 0 for v in values)
    winner = None
    if d is not None and d.significant:
        winner = arms[0].name if d.diff > 0 else arms[1].name
    return {"users": len(values), "wins": {arms[0].name: wins[0], arms[1].name: wins[1]},
            "ties": len(values) - sum(wins), "preference": _diff(d), "winner": winner}


def breaches(arms: Sequence[Arm], guardrails: Sequence[Guardrail],
             compared: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(arm, why) for every running treatment arm a guardrail condemns: a metric worse than
    control by more than its bound, with the whole always-valid interval past the bound; or
    its p95 latency above the bound over enough answers."""
    out = []
    for arm in arms[1:]:
        row = compared.get(arm.name, {})
        if arm.stopped or not row.get("exposures"):
            continue
        for g in guardrails:
            if g.metric == LATENCY and g.max_value is not None:
                p95 = row.get("p95_ms")
                if row["exposures"] >= MIN_EXPOSURES_FOR_LATENCY and p95 and p95 > g.max_value:
                    out.append((arm.name, f"p95 latency {p95:.1f} ms is above {g.max_value} ms"))
                    break
                continue
            d = (row.get("versus_control") or {}).get(g.metric)
            if d is None or d["relative_low"] is None or g.max_drop is None:
                continue
            worse = d["relative_low"] > g.max_drop if g.metric in LOWER_IS_BETTER \
                else d["relative_high"] < -g.max_drop
            if worse:
                out.append((arm.name, f"{g.metric} is worse than control by more than "
                                      f"{g.max_drop:.0%} (relative difference "
                                      f"[{d['relative_low']:+.1%}, {d['relative_high']:+.1%}])"))
                break
    return out
