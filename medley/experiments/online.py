"""Online metrics per arm, from what each answer showed (exposures) and the events that cite it.

Impressions are inferred from the served answer: its first K items count as seen. Clients
that send `impression` events are fewer than those that fetch answers, and an answer's
recommendation_id already says exactly what was shown, at which positions; the inference
counts an answer the app fetched but did not show, which dilutes both arms alike.

Every metric is one value per user (the unit that was randomised), so the arms' user means can
be compared by `medley.experiments.stats`:

- ctr: distinct items clicked (view, complete, like or share citing the answer) per impression
- like_rate, skip_rate: likes and skips citing the answer, per impression
- completion_rate: completes per clicked item (users with a click)
- dwell: mean `value` of the views that cite an answer (seconds or percent, as the app sends)
- items_per_session: items consumed per session since the first exposure; a session is the
  app's `session_id` where its events carry one, else it ends after SESSION_GAP_S without an
  event
- return_1d, return_7d: whether the user started another session within a day (a week) of the
  first exposure; only users first exposed at least that long ago count
- new_share: share of impressions that were new items (published within the new-item age)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

K = 10
SESSION_GAP_S = 30 * 60
CLICKS = frozenset({"view", "complete", "like", "share"})
CONSUMING = frozenset({"view", "complete"})


@dataclass(frozen=True)
class Shown:
    """One exposure, as the metrics read it."""

    recommendation_id: str
    arm: str
    user_id: str
    ts: float
    items: Sequence[str]
    teams: str | None = None
    ms: float = 0.0


@dataclass
class _User:
    first: float
    impressions: int = 0
    new: int = 0
    clicked: set[tuple[str, str]] = field(default_factory=set)
    likes: int = 0
    skips: int = 0
    completes: int = 0
    dwell: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class ArmMetrics:
    users: int
    exposures: int
    per_user: Mapping[str, np.ndarray]  # metric -> one value per user (NaN: not defined)
    coverage: float  # distinct items shown over the catalog's size
    p50_ms: float
    p95_ms: float


Activity = tuple[float, str, str | None]  # (time, event type, the app's session id)


def sessions(events: Sequence[Activity], gap_s: float = SESSION_GAP_S) -> list[float]:
    """Start times of the sessions in time-ordered events: each session id the app sent starts
    one at its first event; events without one form sessions split by gaps over `gap_s`."""
    named: dict[str, float] = {}
    starts: list[float] = []
    last = None
    for t, _, session in events:
        if session is not None:
            named.setdefault(session, t)
            continue
        if last is None or t - last > gap_s:
            starts.append(t)
        last = t
    return sorted(starts + list(named.values()))


def per_arm(shown: Iterable[Shown], credited: Iterable[tuple[str, str, str, float | None]],
            activity: Mapping[str, Sequence[Activity]], *, now: float,
            is_new: Callable[[str, float], bool], catalog_size: int, k: int = K
            ) -> dict[str, ArmMetrics]:
    shown = list(shown)
    by_rec = {x.recommendation_id: x for x in shown}
    users: dict[str, dict[str, _User]] = defaultdict(dict)
    items_shown: dict[str, set[str]] = defaultdict(set)
    latency: dict[str, list[float]] = defaultdict(list)
    for x in sorted(shown, key=lambda e: e.ts):
        u = users[x.arm].setdefault(x.user_id, _User(first=x.ts))
        top = x.items[:k]
        u.impressions += len(top)
        u.new += sum(is_new(i, x.ts) for i in top)
        items_shown[x.arm].update(top)
        latency[x.arm].append(x.ms)
    for rec_id, item, kind, value in credited:
        cited = by_rec.get(rec_id)
        if cited is None or item not in cited.items[:k]:
            continue  # an event citing the answer for an item it did not show
        u = users[cited.arm][cited.user_id]
        if kind in CLICKS:
            u.clicked.add((rec_id, item))
        u.likes += kind == "like"
        u.skips += kind == "skip"
        u.completes += kind == "complete"
        if kind == "view" and value is not None:
            u.dwell.append(value)
    return {arm: _metrics(group, activity, now, items_shown[arm], latency[arm], catalog_size)
            for arm, group in users.items()}


def _metrics(group: Mapping[str, _User], activity: Mapping[str, Sequence[Activity]],
             now: float, shown: set[str], latency: list[float], catalog_size: int
             ) -> ArmMetrics:
    nan = float("nan")
    cols: dict[str, list[float]] = defaultdict(list)
    for user_id, u in group.items():
        imp = max(u.impressions, 1)
        clicks = len(u.clicked)
        cols["ctr"].append(clicks / imp)
        cols["like_rate"].append(u.likes / imp)
        cols["skip_rate"].append(u.skips / imp)
        cols["completion_rate"].append(u.completes / clicks if clicks else nan)
        cols["dwell"].append(float(np.mean(u.dwell)) if u.dwell else nan)
        cols["new_share"].append(u.new / imp)
        events = [e for e in activity.get(user_id, ()) if e[0] >= u.first]
        starts = sessions(events)
        consumed = sum(kind in CONSUMING for _, kind, _ in events)
        cols["items_per_session"].append(consumed / len(starts) if starts else 0.0)
        for days in (1, 7):
            horizon = u.first + days * 86400
            cols[f"return_{days}d"].append(
                nan if now < horizon else float(any(u.first < s <= horizon for s in starts[1:])))
    ms = np.asarray(latency or [nan])
    return ArmMetrics(len(group), len(latency), {m: np.asarray(v) for m, v in cols.items()},
                      len(shown) / max(catalog_size, 1), float(np.percentile(ms, 50)),
                      float(np.percentile(ms, 95)))


def preferences(shown: Iterable[Shown], credited: Iterable[tuple[str, str, str, float | None]],
                k: int = K) -> dict[str, int]:
    """Interleaving: each user's verdict (+1 the first arm, -1 the second, 0 a tie or no
    click) from the teams of the items they clicked."""
    from medley.experiments.interleave import preference

    teams = {x.recommendation_id: (x.user_id, dict(zip(x.items[:k], x.teams or "",
                                                         strict=False)))
             for x in shown if x.teams}
    clicks: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for rec_id, item, kind, _ in credited:
        if kind in CLICKS and rec_id in teams and item in teams[rec_id][1]:
            user, team_of = teams[rec_id]
            clicks[user].add((rec_id, item, team_of[item]))
    verdict = {user: 0 for user, _ in teams.values()}
    for user, got in clicks.items():
        verdict[user] = preference((item, team) for _, item, team in got)
    return verdict
