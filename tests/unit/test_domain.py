from __future__ import annotations

import pytest

from medley.domain import ItemStatus as I
from medley.domain import ModalityStatus as S
from medley.domain import overall_status


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([S.QUEUED, S.QUEUED], I.QUEUED),
        ([S.QUEUED, S.PROCESSING], I.PROCESSING),
        ([S.READY, S.QUEUED], I.PROCESSING),
        ([S.READY, S.READY], I.READY),
        ([S.READY, S.ABSENT], I.READY),
        ([S.READY, S.FAILED], I.PARTIAL),
        ([S.READY, S.UNAVAILABLE], I.PARTIAL),
        ([S.FAILED, S.UNAVAILABLE], I.FAILED),
        ([S.FAILED, S.ABSENT], I.FAILED),
    ],
)
def test_overall_status(states: list[S], expected: I) -> None:
    assert overall_status(states) is expected
