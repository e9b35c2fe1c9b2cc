"""Differentially private engagement analytics for editors and content teams."""

from __future__ import annotations

import time

from fastapi import APIRouter

from api.auth import Caller, allow
from api.deps import RecsDep
from api.params import ItemIdPath
from api.privacy_schemas import ItemAnalyticsOut
from medley.keys import Role
from medley.privacy.analytics import ItemAnalytics

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])


@router.get("/items/{item_id}", response_model=ItemAnalyticsOut,
            dependencies=[allow(Role.EDITOR, Role.CONTENT)])
def item_analytics(recs: RecsDep, caller: Caller,
                   item_id: ItemIdPath
                   ) -> ItemAnalyticsOut:
    """Distinct users per event type for one item, with noise; each call spends this key's
    privacy budget (429 with Retry-After once it is spent)."""
    analytics = ItemAnalytics(recs.db, recs.settings.privacy)
    counts = analytics.item(item_id, caller.key_id, time.time())
    return ItemAnalyticsOut.of(counts)
