"""What the API calls for experiments: editors create, start, pause, stop and ship them and read
their results; client answers go through `for_user` and `similar`, which serve each user's arm
and log what was shown. Background loops keep every process's view of the running experiments
current (REFRESH_S) and, in one process, watch the guardrails and advance ramps (GUARD_S)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from index.base import Where
from medley import metrics
from medley.db.models import Evaluation, Experiment, ExperimentAudit
from medley.editor.service import FusionEditor
from medley.errors import Conflict, InvalidInput, NotFound
from medley.experiments import arms as arm_recs
from medley.experiments import packing, store, verdict
from medley.experiments.assign import place
from medley.experiments.exposures import ExposureLog
from medley.experiments.interleave import team_draft
from medley.experiments.readout import Readout
from medley.experiments.spec import Arm, Mode, Spec, Status, arms_of, guardrails_of
from medley.fusion_state import Action
from medley.recs.answers import Answer, Scored
from medley.recs.service import Recommendations

log = logging.getLogger(__name__)
REFRESH_S = 2.0  # how soon another process's start, stop or breaker reaches this one
GUARD_S = 20.0  # how often guardrails are checked: a breach stops its arm within ~half a minute
GUARD_ACTOR = "guardrail"


@dataclass(frozen=True)
class Live:
    """A running (or shipped) experiment as serving needs it."""

    id: int
    mode: Mode
    status: Status
    arms: tuple[Arm, ...]
    holdout: float
    share: float  # the ramp's current share of users enrolled
    salt: str
    winner: str | None

    @classmethod
    def of(cls, row: Experiment) -> Live:
        return cls(row.id, Mode(row.mode), Status(row.status), arms_of(row.arms), row.holdout,
                   float(row.ramp[row.ramp_step]), row.salt, row.winner)

    def arm_for(self, user_id: str) -> tuple[Arm | None, bool]:
        """(the arm whose answers the user gets, whether to log them); (None, False): not in
        the experiment, served as everyone else."""
        if self.status is Status.SHIPPED:
            return next(a for a in self.arms if a.name == self.winner), False
        p = place(self.salt, user_id, [a.weight for a in self.arms], holdout=self.holdout,
                  exposure=self.share)
        if p.holdout:
            return Arm("holdout"), True
        if p.arm is None or self.arms[p.arm].stopped:  # a stopped arm's users: back to control
            return None, False
        return self.arms[p.arm], True


class Experiments:
    def __init__(self, recs: Recommendations, editor: FusionEditor) -> None:
        self.recs = recs
        self.editor = editor
        self.db = recs.db
        self.exposures = ExposureLog(recs.db)
        self._live: dict[str, Live] = {}  # surface -> the experiment on it
        self.arms = arm_recs.ArmRecommenders(recs, editor)

    # --- editors ----------------------------------------------------------------------------
    def create(self, spec: Spec, actor: str) -> Experiment:
        spec.check()
        for arm in spec.arms:
            if arm.profile_id is not None:
                try:
                    self.editor.profile(arm.profile_id)
                except NotFound as exc:
                    raise InvalidInput(f"arm {arm.name}: {exc.message}") from exc
        with self.db.session() as s:
            return store.create(s, spec, actor)

    def get(self, experiment_id: int) -> tuple[Experiment, list[ExperimentAudit]]:
        with self.db.session() as s:
            return store.get(s, experiment_id), store.history(s, experiment_id)

    def listing(self) -> list[Experiment]:
        with self.db.session() as s:
            return store.listing(s)

    def act(self, experiment_id: int, action: str, actor: str, arm: str | None = None
            ) -> Experiment:
        if action == "ship":
            self._publish_winner(experiment_id, arm, actor)
        with self.db.session() as s:
            row = store.transition(s, experiment_id, action, actor, arm)
        self.refresh()
        return row

    def _publish_winner(self, experiment_id: int, arm: str | None, actor: str) -> None:
        """Shipping an arm with a fusion profile publishes that profile (the publish job)."""
        with self.db.session() as s:
            row = store.get(s, experiment_id)
        if Status(row.status) not in store.ALLOWED["ship"]:
            raise Conflict(f"experiment {experiment_id} is {row.status}: cannot ship it")
        chosen = [a for a in arms_of(row.arms) if a.name == arm]
        if not chosen:
            raise InvalidInput(f"arm: one of {', '.join(a['name'] for a in row.arms)}")
        if chosen[0].profile_id is not None:
            self.editor.publish(chosen[0].profile_id, Action.PUBLISH, actor)

    def results(self, experiment_id: int, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return self._readout(experiment_id).results(now)

    def timeline(self, experiment_id: int, metric: str = "ctr", points: int = 12,
                 now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return self._readout(experiment_id).timeline(metric, points, now)

    def evaluate(self, experiment_id: int, actor: str) -> Evaluation:
        """Each arm's offline figures (the evaluation protocol on the event log, as the
        fusion editor's evaluate), as a background job. The replay ranks under each arm's
        fusion profile; its ranker, MMR and exploration settings are for live traffic only."""
        with self.db.session() as s:
            arms = arms_of(store.get(s, experiment_id).arms)
        live = self.recs.table.view
        views = {f"arm:{a.name}": self.arms.view(a.profile_id) if a.profile_id else live
                 for a in arms}
        return self.editor.evaluations.submit(f"experiment:{experiment_id}", views, actor)

    def clicks(self) -> dict[tuple[int, str], int]:
        """Clicks per (experiment, arm) of the running experiments (for /metrics)."""
        running = sorted({live.id for live in self._live.values()
                          if live.status is Status.RUNNING})
        with self.db.session() as s:
            return store.clicks_by_arm(s, running)

    def _readout(self, experiment_id: int) -> Readout:
        with self.db.session() as s:
            return Readout.read(s, experiment_id, self._is_new, len(self.recs.table))

    def _is_new(self, item_id: str, at: float) -> bool:
        r = self.recs.table.row.get(item_id)
        if r is None:
            return False
        published = float(self.recs.table.published[r])
        return published <= at <= published + self.recs.settings.new_item_max_age_days * 86400

    # --- answers ----------------------------------------------------------------------------
    def for_user(self, user_id: str, n: int, where: Where | None, context: dict[str, str], *,
                 only_new: bool = False, max_audience: int | None = None) -> Answer:
        surface = "new-items" if only_new else "recommendations"

        def under(arm: Arm | None) -> Answer:
            rec, key = self.arms.get(arm)
            return self.recs.for_user(user_id, n, where, context, only_new=only_new,
                                      max_audience=max_audience, rec=rec, variant=key)

        return self._serve(surface, user_id, n, under)

    def similar(self, item_id: str, n: int, where: Where | None, user_id: str | None) -> Answer:
        def under(arm: Arm | None) -> Answer:
            rec, key = self.arms.get(arm)
            return self.recs.similar(item_id, n, where, rec=rec, variant=key)

        return self._serve("similar", user_id, n, under)

    def _serve(self, surface: str, user_id: str | None, n: int,
               under: Callable[[Arm | None], Answer]) -> Answer:
        live = self._live.get(surface)
        if live is None or not user_id:
            return under(None)
        arm, logged = live.arm_for(user_id)
        if arm is None:
            return under(None)
        started = time.perf_counter()
        teams = None
        if live.mode is Mode.INTERLEAVE and arm.name != "holdout":
            answer, teams = self._interleaved(live, n, under)
        else:
            answer = under(None if arm.name == "holdout" else arm)
        answer = replace(answer, experiment=live.id, arm=arm.name if teams is None else None)
        if logged:
            arm_label = "interleaved" if teams is not None else arm.name
            metrics.EXPOSURES.labels(str(live.id), arm_label).inc()  # experiments x arms: few
            self.exposures.add({
                "recommendation_id": answer.recommendation_id, "experiment_id": live.id,
                "arm": arm_label, "user_id": user_id,
                "surface": surface, "ts": time.time(),
                "items": packing.pack([s.item_id for s in answer.items]),
                "teams": teams, "ms": (time.perf_counter() - started) * 1000})
        return answer

    def _interleaved(self, live: Live, n: int, under: Callable[[Arm | None], Answer]
                     ) -> tuple[Answer, str]:
        a, b = under(live.arms[0]), under(live.arms[1])
        rec_id = a.recommendation_id
        items, teams = team_draft([s.item_id for s in a.items], [s.item_id for s in b.items], n,
                                  random.Random(rec_id))
        by_team = {"A": {s.item_id: s for s in a.items}, "B": {s.item_id: s for s in b.items}}
        scored = [by_team[t.upper()].get(i) or Scored(i, 0.0, []) for i, t in zip(items, teams,
                                                                          strict=True)]
        return Answer(scored, recommendation_id=rec_id, fallback=a.fallback and b.fallback,
                      note=a.note or b.note), "".join(teams)

    # --- background -------------------------------------------------------------------------
    def threads(self, stop: threading.Event, owner: bool = True
                ) -> list[tuple[Callable[[], None], str]]:
        loops = [(lambda: self._every(stop, REFRESH_S, self.refresh), "medley-exp-refresh"),
                 (lambda: self.exposures.run(stop), "medley-exposure-writer")]
        if owner:
            loops.append((lambda: self._every(stop, GUARD_S, self.guard), "medley-exp-guard"))
        return loops

    def _every(self, stop: threading.Event, interval: float, step: Callable[[], Any]) -> None:
        while not stop.wait(interval):
            try:
                step()
            except Exception:  # the database away: said, and tried again next time
                log.exception("experiments: %s failed", getattr(step, "__name__", "a step"))

    def refresh(self) -> None:
        """Re-read the running experiments. A row that cannot be read (written by another
        version, say) is left out and said, so the others still serve."""
        with self.db.session() as s:
            rows = store.live(s)
        live: dict[str, Live] = {}
        for row in rows:
            try:
                experiment = Live.of(row)
            except Exception as exc:
                log.warning("experiment %s is set aside: %s", row.id, exc)
                continue
            live.update(dict.fromkeys(row.surfaces, experiment))
        self._live = live

    def guard(self, now: float | None = None) -> list[tuple[int, str, str]]:
        """Stop every arm a guardrail condemns; advance ramps whose guardrails hold. Returns
        (experiment, arm, why) for each arm stopped. One experiment that fails to evaluate is
        logged and skipped: the others are still guarded."""
        now = time.time() if now is None else now
        stopped = []
        with self.db.session() as s:
            running = [r for r in store.live(s) if r.status == Status.RUNNING.value]
        for row in running:
            try:
                stopped += self._guard_one(row, now)
            except Exception:
                log.exception("experiment %s: guardrail check failed", row.id)
        self.refresh()
        return stopped

    def _guard_one(self, row: Experiment, now: float) -> list[tuple[int, str, str]]:
        results = self.results(row.id, now)
        out = []
        with self.db.session() as s:
            for arm, why in verdict.breaches(arms_of(row.arms), guardrails_of(row.guardrails),
                                             results["arms"]):
                if store.stop_one_arm(s, row.id, arm, why, GUARD_ACTOR):
                    log.warning("experiment %s: arm %s stopped: %s", row.id, arm, why)
                    out.append((row.id, arm, why))
            if not out and now - (row.stepped_at or now) >= row.ramp_every_s:
                store.advance_ramp(s, row.id, GUARD_ACTOR, now)
        return out
