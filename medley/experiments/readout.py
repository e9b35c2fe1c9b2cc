"""An experiment's results as an editor reads them: now (`results`), or recomputed at evenly
spaced times since its start (`timeline`, what the console charts), from one read of its
exposures, the events that cite them and its users' activity."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from medley.db.models import Experiment
from medley.experiments import online, packing, store, verdict
from medley.experiments.spec import METRICS, Arm, Mode, arms_of, guardrails_of

MAX_POINTS = 60


@dataclass(frozen=True)
class Readout:
    row: Experiment
    shown: list[online.Shown]
    credited: list[store.Credited]
    activity: dict[str, list[store.Activity]]
    is_new: Callable[[str, float], bool]
    catalog_size: int

    @classmethod
    def read(cls, s: Session, experiment_id: int, is_new: Callable[[str, float], bool],
             catalog_size: int) -> Readout:
        row = store.get(s, experiment_id)
        shown = [online.Shown(x.recommendation_id, x.arm, x.user_id, x.ts,
                              packing.unpack(x.items), x.teams, x.ms)
                 for x in store.exposures(s, experiment_id)]
        return cls(row, shown, store.credited(s, experiment_id),
                   store.activity(s, {x.user_id for x in shown}, row.started_at or 0.0),
                   is_new, catalog_size)

    def _metrics(self, until: float) -> tuple[list[online.Shown], list[Any],
                                              dict[str, online.ArmMetrics]]:
        shown = [x for x in self.shown if x.ts <= until]
        credited = [c[:4] for c in self.credited if c[4] <= until]
        activity = {u: [e for e in evs if e[0] <= until] for u, evs in self.activity.items()}
        return shown, credited, online.per_arm(shown, credited, activity, now=until,
                                               is_new=self.is_new,
                                               catalog_size=self.catalog_size)

    def results(self, now: float) -> dict[str, Any]:
        row, arms = self.row, arms_of(self.row.arms)
        shown, credited, metrics = self._metrics(now)
        compared = verdict.compare_arms(arms, metrics)
        out: dict[str, Any] = {
            "experiment_id": row.id, "status": row.status, "mode": row.mode,
            "ramp_share": float(row.ramp[row.ramp_step]), "arms": compared,
            "sample_ratio": verdict.sample_ratio(arms, metrics),
            "guardrails": {"breached": [{"arm": a, "why": w} for a, w in
                                        verdict.breaches(arms, guardrails_of(row.guardrails),
                                                         compared)],
                           "stopped": {a.name: a.stopped for a in arms if a.stopped}},
            "holdout": None}
        if "holdout" in metrics:
            out["holdout"] = verdict.compare_arms((arms[0], Arm("holdout")), metrics)["holdout"]
        if row.mode == Mode.INTERLEAVE.value:
            out["interleaving"] = verdict.interleaving(online.preferences(shown, credited), arms)
        return out

    def timeline(self, metric: str, points: int, now: float) -> dict[str, Any]:
        """The metric per arm (mean, and for treatment arms the relative interval against
        control) at `points` evenly spaced times from the start (or first exposure) to now."""
        if metric not in METRICS:
            from medley.errors import InvalidInput

            raise InvalidInput(f"metric: one of {', '.join(METRICS)}")
        points = max(1, min(points, MAX_POINTS))
        start = self.row.started_at or min((x.ts for x in self.shown), default=now)
        end = min(now, self.row.ended_at or now)
        out = []
        for k in range(1, points + 1):
            at = start + (end - start) * k / points
            compared = verdict.compare_arms(arms_of(self.row.arms), self._metrics(at)[2])
            arms: dict[str, Any] = {}
            for name, r in compared.items():
                mean = (r.get("metrics") or {}).get(metric)
                entry: dict[str, Any] = {"users": r["users"],
                                         "mean": None if mean is None or math.isnan(mean)
                                         else mean}
                d = (r.get("versus_control") or {}).get(metric)
                if "versus_control" in r:
                    entry |= {key: d[key] if d else None
                              for key in ("relative", "relative_low", "relative_high")}
                arms[name] = entry
            out.append({"at": datetime.fromtimestamp(at, UTC).isoformat(), "arms": arms})
        return {"experiment_id": self.row.id, "metric": metric, "points": out}
