"""Path parameters shared by the routers: ids under one rule (`medley.ids`), so a 10 KB id or
one with control characters is a readable 422, never echoed back whole in a 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator

from medley import ids

ItemIdPath = Annotated[str, Path(min_length=1, max_length=ids.ITEM_MAX),
                       AfterValidator(ids.clean)]
UserIdPath = Annotated[str, Path(min_length=1, max_length=ids.USER_MAX),
                       AfterValidator(ids.clean)]
# Row ids: within a 32-bit integer, so a huge number is a readable 422, not a database error.
ROW_ID_MAX = 2**31 - 1
RowIdPath = Annotated[int, Path(ge=1, le=ROW_ID_MAX)]
