"""Experiments, their audit log and exposures as the database keeps them. Every rule an editor
can run into (two experiments on one surface, shipping a draft) is a domain error raised here."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from medley.db.models import EventRecord, Experiment, ExperimentAudit, Exposure
from medley.errors import Conflict, InvalidInput, NotFound
from medley.experiments.online import CLICKS
from medley.experiments.spec import Spec, Status, arms_of, plain_arms, stop_arm

# Which states each action leaves from.
ALLOWED: dict[str, tuple[Status, ...]] = {
    "start": (Status.DRAFT, Status.PAUSED),
    "pause": (Status.RUNNING,),
    "stop": (Status.RUNNING, Status.PAUSED, Status.SHIPPED),
    "ship": (Status.RUNNING, Status.PAUSED),
}
LIVE = (Status.RUNNING.value, Status.SHIPPED.value)  # states that change what users see


def audit(s: Session, experiment_id: int, actor: str, action: str, **detail: Any) -> None:
    s.add(ExperimentAudit(experiment_id=experiment_id, actor=actor, action=action,
                          detail=detail))


def create(s: Session, spec: Spec, actor: str) -> Experiment:
    row = Experiment(
        name=spec.name, mode=spec.mode.value, status=Status.DRAFT.value,
        surfaces=list(spec.surfaces), arms=plain_arms(spec.arms), holdout=spec.holdout,
        ramp=list(spec.ramp), ramp_step=0, ramp_every_s=spec.ramp_every_s,
        guardrails=[g.__dict__ for g in spec.guardrails], salt=secrets.token_hex(8),
        note=spec.note, created_by=actor)
    s.add(row)
    s.flush()
    audit(s, row.id, actor, "create", arms=[a.name for a in spec.arms])
    return row


def get(s: Session, experiment_id: int, *, lock: bool = False) -> Experiment:
    q = select(Experiment).where(Experiment.id == experiment_id)
    row = s.scalars(q.with_for_update() if lock else q).first()
    if row is None:
        raise NotFound(f"experiment {experiment_id} does not exist")
    return row


def listing(s: Session) -> list[Experiment]:
    return list(s.scalars(select(Experiment).order_by(Experiment.id.desc())))


def live(s: Session) -> list[Experiment]:
    return list(s.scalars(select(Experiment).where(Experiment.status.in_(LIVE))))


def history(s: Session, experiment_id: int) -> list[ExperimentAudit]:
    return list(s.scalars(select(ExperimentAudit)
                          .where(ExperimentAudit.experiment_id == experiment_id)
                          .order_by(ExperimentAudit.id)))


def transition(s: Session, experiment_id: int, action: str, actor: str,
               arm: str | None = None, now: float | None = None) -> Experiment:
    now = time.time() if now is None else now
    row = get(s, experiment_id, lock=True)
    if Status(row.status) not in ALLOWED[action]:
        raise Conflict(f"experiment {experiment_id} is {row.status}: cannot {action} it")
    if action == "start":
        busy = [e for e in live(s) if e.id != row.id and set(e.surfaces) & set(row.surfaces)]
        if busy:
            raise Conflict(f"experiment {busy[0].id} ({busy[0].name}) already runs on "
                           f"{', '.join(sorted(set(busy[0].surfaces) & set(row.surfaces)))}")
        row.started_at = row.started_at or now
        row.stepped_at = row.stepped_at or now
        row.status = Status.RUNNING.value
    elif action == "pause":
        row.status = Status.PAUSED.value
    elif action == "stop":
        row.status = Status.STOPPED.value
        row.ended_at = now
    elif action == "ship":
        names = [a.name for a in arms_of(row.arms)]
        if arm not in names:
            raise InvalidInput(f"arm: one of {', '.join(names)}")
        row.status = Status.SHIPPED.value
        row.winner = arm
        row.ended_at = now
    audit(s, row.id, actor, action, **({"arm": arm} if arm else {}))
    return row


def stop_one_arm(s: Session, experiment_id: int, arm: str, why: str, actor: str) -> bool:
    """A guardrail's circuit breaker: the arm's users go back to control. False when the
    experiment no longer runs or the arm was already stopped (another pass got there first)."""
    row = get(s, experiment_id, lock=True)
    arms = arms_of(row.arms)
    if row.status != Status.RUNNING.value or any(a.name == arm and a.stopped for a in arms):
        return False
    row.arms = plain_arms(stop_arm(arms, arm, why))
    audit(s, row.id, actor, "guardrail", arm=arm, why=why)
    if all(a.stopped for a in arms_of(row.arms)[1:]):  # only control is left
        row.status = Status.STOPPED.value
        row.ended_at = time.time()
        audit(s, row.id, actor, "stop", why="every treatment arm was stopped")
    return True


def advance_ramp(s: Session, experiment_id: int, actor: str, now: float) -> float | None:
    row = get(s, experiment_id, lock=True)
    if row.status != Status.RUNNING.value or row.ramp_step >= len(row.ramp) - 1:
        return None
    if now - (row.stepped_at or now) < row.ramp_every_s:
        return None  # re-read under the lock: another process's guard may have just stepped
    row.ramp_step += 1
    row.stepped_at = now
    share = float(row.ramp[row.ramp_step])
    audit(s, row.id, actor, "ramp", share=share)
    return share


# --- exposures and the events credited to them ---------------------------------------------------
def exposures(s: Session, experiment_id: int) -> list[Exposure]:
    return list(s.scalars(select(Exposure).where(Exposure.experiment_id == experiment_id)))


Credited = tuple[str, str, str, float | None, float]


def credited(s: Session, experiment_id: int) -> list[Credited]:
    """(recommendation_id, item, type, value, time) of events that cite an answer of the
    experiment."""
    q = (select(EventRecord.recommendation_id, EventRecord.item_id, EventRecord.type,
                EventRecord.value, EventRecord.ts)
         .join(Exposure, Exposure.recommendation_id == EventRecord.recommendation_id)
         .where(Exposure.experiment_id == experiment_id))
    return [(r[0] or "", r[1], r[2], r[3], r[4]) for r in s.execute(q)]


Activity = tuple[float, str, str | None]  # (time, event type, the app's session id)


def clicks_by_arm(s: Session, experiment_ids: Sequence[int]) -> dict[tuple[int, str], int]:
    """Clicks citing each experiment's answers, per (experiment, arm): one grouped join."""
    if not experiment_ids:
        return {}
    q = (select(Exposure.experiment_id, Exposure.arm, func.count())
         .join(EventRecord, EventRecord.recommendation_id == Exposure.recommendation_id)
         .where(Exposure.experiment_id.in_(experiment_ids),
                EventRecord.type.in_(sorted(CLICKS)))
         .group_by(Exposure.experiment_id, Exposure.arm))
    return {(e, arm): int(n) for e, arm, n in s.execute(q)}


def activity(s: Session, users: Iterable[str], since: float) -> dict[str, list[Activity]]:
    """Each user's events since `since`, in time order, for sessions and returns."""
    out: dict[str, list[Activity]] = {}
    ids = sorted(set(users))
    for k in range(0, len(ids), 500):
        q = (select(EventRecord.user_id, EventRecord.ts, EventRecord.type,
                    EventRecord.session_id)
             .where(EventRecord.user_id.in_(ids[k:k + 500]), EventRecord.ts >= since))
        for user, ts, kind, session in s.execute(q):
            out.setdefault(user, []).append((ts, kind, session))
    for events in out.values():
        events.sort(key=lambda e: e[0])
    return out


def write_exposures(s: Session, rows: Sequence[dict[str, Any]]) -> None:
    s.execute(insert(Exposure), list(rows))


def erase_user(s: Session, user_id: str) -> int:
    """An erasure takes the user's exposures too: they say what the user was shown."""
    gone = s.execute(delete(Exposure).where(Exposure.user_id == user_id))
    return int(getattr(gone, "rowcount", 0) or 0)

