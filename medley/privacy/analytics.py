"""Per-item engagement counts with differential privacy, and the per-key privacy budget.

The unit of privacy is a user: each count is the number of distinct users who sent that event
type for the item, so one user changes each count by at most 1 (sensitivity 1 per count, 7 in
L1 over all seven). A query releases all seven counts and spends `analytics_epsilon`, split
evenly (ε/7 each, basic composition). The budget a key may spend per window is kept in the
database, so it holds across processes and restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from medley.config import PrivacySettings
from medley.db import Database
from medley.db.models import AnalyticsBudget, EventRecord
from medley.errors import BudgetExhausted, NotFound
from medley.privacy import dp
from medley.recs import store
from medley.recs.events import EventType

TOLERANCE = 1e-9  # relative: float sums of ε must not refuse the query that spends exactly all


@dataclass(frozen=True)
class Spent:
    epsilon: float
    left: float
    total: float
    window_s: float
    resets_at: float  # epoch seconds


@dataclass(frozen=True)
class ItemCounts:
    item_id: str
    users: dict[str, int]  # event type -> noisy number of distinct users
    epsilon_per_count: float
    noise_stddev: float
    budget: Spent


def distinct_users(s: Session, item_id: str) -> dict[str, int]:
    """Exact distinct users per event type (every type present, 0 where none)."""
    rows = s.execute(select(EventRecord.type, func.count(func.distinct(EventRecord.user_id)))
                     .where(EventRecord.item_id == item_id).group_by(EventRecord.type)).all()
    found = {t: int(n) for t, n in rows}
    return {t.value: found.get(t.value, 0) for t in EventType}


def charge(s: Session, key_id: str, epsilon: float, budget: float, window_s: float,
           now: float) -> Spent:
    """Spend ε from the key's budget for the current window, or refuse. The conditional UPDATE
    is atomic, so two processes can never both spend the last of a budget."""
    start = math.floor(now / window_s) * window_s
    resets = start + window_s
    dialect = s.get_bind().dialect.name
    ins: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(AnalyticsBudget)
    s.execute(ins.values(key_id=key_id, window_start=start, spent=0.0)
              .on_conflict_do_nothing(index_elements=["key_id", "window_start"]))
    s.execute(delete(AnalyticsBudget).where(AnalyticsBudget.key_id == key_id,
                                            AnalyticsBudget.window_start < start))
    won = s.execute(update(AnalyticsBudget).where(
        AnalyticsBudget.key_id == key_id, AnalyticsBudget.window_start == start,
        AnalyticsBudget.spent + epsilon <= budget * (1 + TOLERANCE),
    ).values(spent=AnalyticsBudget.spent + epsilon))
    spent = float(s.scalar(select(AnalyticsBudget.spent).where(
        AnalyticsBudget.key_id == key_id, AnalyticsBudget.window_start == start)) or 0.0)
    if won.rowcount == 0:  # type: ignore[attr-defined]
        wait = max(1, math.ceil(resets - now))
        raise BudgetExhausted(
            f"this key's analytics privacy budget is spent ({spent:g} of {budget:g} epsilon in "
            f"this {window_s:g}-second window; a query costs {epsilon:g}); it refills in "
            f"{wait} s", retry_after_s=wait)
    return Spent(epsilon, max(budget - spent, 0.0), budget, window_s, resets)


class ItemAnalytics:
    def __init__(self, db: Database, settings: PrivacySettings) -> None:
        self.db = db
        self.settings = settings

    def item(self, item_id: str, key_id: str, now: float,
             rng: np.random.Generator | None = None) -> ItemCounts:
        cfg = self.settings
        with self.db.session() as s:
            if not store.existing_items(s, {item_id}):
                raise NotFound(f"item {item_id} does not exist")  # free: no count is released
            # Charge and count in one transaction: a refused query reads nothing.
            spent = charge(s, key_id, cfg.analytics_epsilon, cfg.analytics_budget,
                           cfg.analytics_budget_window_s, now)
            exact = distinct_users(s, item_id)
        # A fresh generator seeded from the OS each time: noise must not be predictable.
        noisy = dp.release(exact, cfg.analytics_epsilon, rng or np.random.default_rng())
        per = dp.split(cfg.analytics_epsilon, len(exact))
        return ItemCounts(item_id, noisy, per, math.sqrt(dp.variance(per)), spent)
