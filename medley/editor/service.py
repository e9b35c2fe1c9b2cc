"""What the editor API calls: profiles, previews, offline evaluation, publish and rollback."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from medley import fusion_state
from medley.db.models import Evaluation, FusionAudit, FusionJob, FusionProfile, Media, Transcript
from medley.domain import MediaKind, Modality
from medley.editor import preview, profiles
from medley.editor.jobs import EvaluationJobs
from medley.editor.profiles import JobStatus
from medley.errors import InvalidInput
from medley.fusion_state import Action, Serving
from medley.recs import store
from medley.recs.items import FusionView
from medley.recs.service import Recommendations

EVAL_EVENTS = 200_000  # the newest events an evaluation reads (a request, not a batch job)
EVAL_USERS = 200  # users ranked per view: ~4 s for two views at 1k items on 2 cores


@dataclass(frozen=True)
class Candidate:
    weights: Mapping[Modality, float]
    surfaces: Mapping[str, Mapping[Modality, float]] = field(default_factory=dict)
    profile: FusionProfile | None = None

    def __post_init__(self) -> None:
        check_weights(self.weights)

    def view(self) -> FusionView:
        return FusionView(self.weights, self.surfaces,
                          profile_id=self.profile.id if self.profile else None)


def check_weights(weights: Mapping[Modality, float], where: str = "weights") -> None:
    if not any(w > 0 for w in weights.values()):
        raise InvalidInput(f"{where}: at least one modality needs a weight above zero")


class FusionEditor:
    def __init__(self, recs: Recommendations, dispatch: Callable[[str], None]) -> None:
        self.recs = recs
        self.db = recs.db
        self.defaults = recs.settings.fusion_weights
        self._dispatch = dispatch
        self.evaluations = EvaluationJobs(self.db, self.evaluate_views)

    # --- profiles ---------------------------------------------------------------------------
    def overview(self) -> tuple[Serving, list[FusionProfile], FusionJob | None]:
        with self.db.session() as s:
            return (fusion_state.serving(s, self.defaults), profiles.listing(s),
                    profiles.open_job(s))

    def create(self, name: str, weights: Mapping[Modality, float],
               surfaces: Mapping[str, Mapping[Modality, float]], note: str | None, actor: str
               ) -> FusionProfile:
        check_weights(weights)
        for surface, w in surfaces.items():
            check_weights(w, f"surfaces.{surface}")
        with self.db.session() as s:
            fusion_state.state(s, self.defaults)
            return profiles.create(s, name, weights, surfaces, note, actor)

    def profile(self, profile_id: int) -> FusionProfile:
        with self.db.session() as s:
            return profiles.get(s, profile_id)

    def candidate(self, profile_id: int) -> Candidate:
        p = self.profile(profile_id)
        return Candidate(fusion_state.weights_of(p.weights),
                         fusion_state.surfaces_of(p.surfaces or {}), p)

    def live(self) -> Serving:
        with self.db.session() as s:
            return fusion_state.serving(s, self.defaults)

    # --- preview and evaluation -------------------------------------------------------------
    def preview(self, cand: Candidate, items: Sequence[str], users: Sequence[str],
                queries: Sequence[str], n: int) -> list[preview.Comparison]:
        if not (items or users or queries):
            raise InvalidInput("pick at least one item, user or query to preview")
        for item in items:
            self.recs.require_item(item)
        live_view = self.recs.table.view
        rec = self.recs.rec
        sides = (preview.under(rec, live_view, self.recs.index_search),
                 preview.under(rec, cand.view(), self.recs.index_search))
        out = [preview.preview_item(sides, item, n) for item in items]
        for user in users:
            out.append(preview.preview_user(sides, user, n, self.recs.preferences(user)))
        for query in queries:
            answers = (self.recs.search_with(sides[0], query, n),
                       self.recs.search_with(sides[1], query, n))
            out.append(preview.preview_query(answers, query))
        return out

    def evaluate(self, cand: Candidate) -> dict[str, Any]:
        return self.evaluate_views({"active": self.recs.table.view, "candidate": cand.view()})

    def evaluate_views(self, views: Mapping[str, FusionView],
                       progress: Callable[[float], None] | None = None) -> dict[str, Any]:
        """The evaluation protocol (`medley.recs.evaluation`) on the newest EVAL_EVENTS events,
        under each view."""
        from medley.editor.evaluate import evaluate_views

        with self.db.session() as s:
            start = max(self.recs.behavior.last_seq - EVAL_EVENTS, 0)
            events = list(store.events_after(s, start))
        return evaluate_views(events, self.recs.table, views, self.recs.settings.recommendations,
                              now=time.time(), max_users=EVAL_USERS, progress=progress)

    def evaluate_later(self, cand: Candidate, actor: str) -> Evaluation:
        """The same as `evaluate`, as a background job (medley/editor/jobs.py)."""
        subject = f"profile:{cand.profile.id}" if cand.profile else "draft"
        return self.evaluations.submit(
            subject, {"active": self.recs.table.view, "candidate": cand.view()}, actor)

    # --- publishing -------------------------------------------------------------------------
    def publish(self, profile_id: int, action: Action, actor: str) -> FusionJob:
        with self.db.session() as s:
            job = profiles.start(s, profile_id, action, actor, self.defaults)
        if job.status == JobStatus.QUEUED.value:
            self._dispatch(job.id)
        else:
            self.recs.sync.wake.set()  # an instant switch: serve it now, not at the next tick
        return job

    def job(self, job_id: str) -> FusionJob:
        with self.db.session() as s:
            return profiles.job(s, job_id)

    def history(self, limit: int) -> list[tuple[FusionAudit, FusionProfile]]:
        with self.db.session() as s:
            return profiles.history(s, limit)

    def resume(self) -> None:
        """Send again a job a stopped process left open (the in-memory broker lost it)."""
        with self.db.session() as s:
            job = profiles.open_job(s)
        if job is not None:
            self._dispatch(job.id)

    def decorations(self, ids: set[str]) -> tuple[dict[str, str], set[str]]:
        """Transcript snippets, and which items have artwork to show, for preview rows."""
        if not ids:
            return {}, set()
        with self.db.session() as s:
            texts = s.execute(select(Transcript.item_id, Transcript.text)
                              .where(Transcript.item_id.in_(ids))).all()
            kinds = (MediaKind.IMAGE.value, MediaKind.VIDEO.value)
            art = set(s.scalars(select(Media.item_id).where(Media.item_id.in_(ids),
                                                            Media.kind.in_(kinds))))
        return {i: _snippet(t) for i, t in texts if t and t.strip()}, art


def _snippet(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "\u2026"
