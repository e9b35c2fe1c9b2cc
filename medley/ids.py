"""What an id (item, user, event) may be: one rule for paths, queries and bodies.

An id is text a person could read back: valid Unicode, NFC-normalised (so the composed and the
decomposed spelling of "é" are one user, as they look), not blank, no control characters and
no U+FFFD (the mark of bytes that were not UTF-8: two different broken ids would otherwise
become one). Length caps are the callers' (items are UUIDs, user ids come from client apps).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

ITEM_MAX = 64
USER_MAX = 128
EVENT_MAX = 128


def clean(value: str) -> str:
    """The id as stored; ValueError (a validation message) when it cannot be one."""
    value = unicodedata.normalize("NFC", value)
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    for ch in value:
        if ch == "\ufffd":
            raise ValueError("holds U+FFFD: the client sent bytes that are not UTF-8")
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise ValueError(f"must not hold control characters (found U+{ord(ch):04X})")
    return value


ItemId = Annotated[str, StringConstraints(min_length=1, max_length=ITEM_MAX), AfterValidator(clean)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=USER_MAX), AfterValidator(clean)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=EVENT_MAX),
                    AfterValidator(clean)]
