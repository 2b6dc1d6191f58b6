"""What every part of the store shares: the database (its dialect) and the clock."""

from __future__ import annotations

from yolowatch._types import Clock
from yolowatch.store.database import Database


class StoreBase:
    """The attributes the query mixins read; `Store` sets them."""

    db: Database
    clock: Clock
