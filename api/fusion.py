"""The fusion editor API: profiles, preview, evaluate, publish, rollback, jobs, history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.auth import Caller, allow
from api.deps import EditorDep, SettingsDep
from api.fusion_schemas import (
    ActiveOut,
    DraftIn,
    DraftPreviewIn,
    EvaluateOut,
    EvaluationOut,
    HistoryEntry,
    HistoryOut,
    JobOut,
    Metrics,
    OverviewOut,
    PreviewOut,
    ProfileIn,
    ProfileOut,
    Targets,
    comparison_out,
    side,
)
from medley.editor.service import Candidate, FusionEditor
from medley.fusion_state import Action
from medley.keys import Principal, Role

router = APIRouter(prefix="/v1/fusion", tags=["fusion editor"], dependencies=[allow(Role.EDITOR)])



def _actor(who: Principal) -> str:
    # The audit log names the key that made the change: a name a caller types could be anyone's.
    return f"{who.name} ({who.key_id})"[:80]


@router.get("/profiles", response_model=OverviewOut)
def overview(editor: EditorDep) -> OverviewOut:
    live, rows, job = editor.overview()
    return OverviewOut(active=ActiveOut.of(live),
                       profiles=[ProfileOut.of(p, live.profile.id) for p in rows],
                       job=JobOut.of(job) if job else None)


@router.post("/profiles", response_model=ProfileOut, status_code=201)
def create_profile(editor: EditorDep, body: ProfileIn, who: Caller) -> ProfileOut:
    profile = editor.create(body.name, body.weights, body.surfaces, body.note, _actor(who))
    return ProfileOut.of(profile, editor.live().profile.id)


@router.get("/profiles/{profile_id}", response_model=ProfileOut)
def get_profile(editor: EditorDep, profile_id: int) -> ProfileOut:
    return ProfileOut.of(editor.profile(profile_id), editor.live().profile.id)


def _preview(editor: FusionEditor, cand: Candidate, t: Targets) -> PreviewOut:
    live = editor.live()
    found = editor.preview(cand, t.items, t.users, t.queries, t.limit)
    ids = {r.item_id for c in found for r in (*c.before, *c.after)}
    snippets, thumbs = editor.decorations(ids | set(t.items))
    table = editor.recs.table
    return PreviewOut(active=side(live.profile, editor.recs.table.view.weights),
                      candidate=side(cand.profile, cand.weights),
                      results=[comparison_out(c, table, snippets, thumbs) for c in found])


@router.post("/preview", response_model=PreviewOut)
def preview_draft(editor: EditorDep, body: DraftPreviewIn) -> PreviewOut:
    """Preview weights that are not saved yet (the console's sliders)."""
    return _preview(editor, Candidate(body.weights, body.surfaces), body)


@router.post("/profiles/{profile_id}/preview", response_model=PreviewOut)
def preview_profile(editor: EditorDep, profile_id: int, body: Targets) -> PreviewOut:
    return _preview(editor, editor.candidate(profile_id), body)


def _evaluate(editor: FusionEditor, cand: Candidate) -> EvaluateOut:
    out = editor.evaluate(cand)
    return EvaluateOut(events=out["events"], users=out["users"],
                       active=Metrics.model_validate(out["active"]),
                       candidate=Metrics.model_validate(out["candidate"]), note=out.get("note"))


@router.post("/evaluate", response_model=EvaluateOut)
def evaluate_draft(editor: EditorDep, body: DraftIn) -> EvaluateOut:
    return _evaluate(editor, Candidate(body.weights, body.surfaces))


@router.post("/profiles/{profile_id}/evaluate", response_model=EvaluateOut)
def evaluate_profile(editor: EditorDep, profile_id: int) -> EvaluateOut:
    return _evaluate(editor, editor.candidate(profile_id))


@router.post("/evaluations", response_model=EvaluationOut, status_code=202)
def evaluate_draft_later(editor: EditorDep, body: DraftIn, who: Caller) -> EvaluationOut:
    """`evaluate` as a background job: answers at once; poll `GET /v1/fusion/evaluations/{id}`
    for progress and the result (what to use on a large event log)."""
    return EvaluationOut.of(editor.evaluate_later(Candidate(body.weights, body.surfaces),
                                                  _actor(who)))


@router.post("/profiles/{profile_id}/evaluations", response_model=EvaluationOut,
             status_code=202)
def evaluate_profile_later(editor: EditorDep, profile_id: int, who: Caller) -> EvaluationOut:
    return EvaluationOut.of(editor.evaluate_later(editor.candidate(profile_id), _actor(who)))


@router.get("/evaluations/{job_id}", response_model=EvaluationOut)
def evaluation(editor: EditorDep, job_id: Annotated[str, Path(max_length=36)]
               ) -> EvaluationOut:
    return EvaluationOut.of(editor.evaluations.get(job_id))


@router.post("/profiles/{profile_id}/publish", response_model=JobOut, status_code=202)
def publish(editor: EditorDep, profile_id: int, who: Caller) -> JobOut:
    """Re-fuse every item under this profile in the background, then serve it."""
    return JobOut.of(editor.publish(profile_id, Action.PUBLISH, _actor(who)))


@router.post("/profiles/{profile_id}/rollback", response_model=JobOut, status_code=202)
def rollback(editor: EditorDep, profile_id: int, who: Caller) -> JobOut:
    """Serve an earlier published version again (at once, when it is still on standby)."""
    return JobOut.of(editor.publish(profile_id, Action.ROLLBACK, _actor(who)))


@router.get("/jobs/{job_id}", response_model=JobOut)
def job(editor: EditorDep, job_id: str) -> JobOut:
    return JobOut.of(editor.job(job_id))


@router.get("/history", response_model=HistoryOut)
def history(editor: EditorDep, settings: SettingsDep,
            limit: Annotated[int, Query(ge=1)] = 50) -> HistoryOut:
    limit = min(limit, settings.max_page_size)
    return HistoryOut(entries=[HistoryEntry.of(a, p)
                               for a, p in editor.history(limit)])

