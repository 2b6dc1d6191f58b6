"""Silences: created, listed, expired; shared by every process on the database. Which alerts they match is
`alerts.Silence`'s business; the store keeps them and says which are active at its clock's now."""

from __future__ import annotations

import json
import logging

from yolowatch.alerts import Silence, matcher_from_json, matcher_json
from yolowatch.store.base import StoreBase
from yolowatch.store.rows import Row, insert_sql

log = logging.getLogger("yolowatch.store")

SILENCE_COLUMNS = ("id", "matchers", "starts_s", "ends_s", "created_by", "comment", "created_s", "updated_s")
INSERT_SILENCE = insert_sql("silences", SILENCE_COLUMNS)
EXPIRED_KEPT_S = 5 * 86400  # expired silences stay listed this long (Alertmanager's default retention), then go


def _silence(row: Row) -> Silence | None:
    try:
        matchers = tuple(matcher_from_json(matcher) for matcher in json.loads(row["matchers"]))
    except ValueError as exc:  # written by a newer yolowatch, say: leave it out, keep the others
        log.warning("stored silence %s skipped: %s", row["id"], exc)
        return None
    return Silence(
        row["id"], matchers, row["starts_s"], row["ends_s"], row["created_by"], row["comment"], row["created_s"],
        row["updated_s"],
    )  # fmt: skip


class SilenceQueries(StoreBase):
    async def add_silence(self, silence: Silence) -> None:
        matchers = json.dumps([matcher_json(m) for m in silence.matchers], separators=(",", ":"))
        s = silence
        await self.db.execute(
            INSERT_SILENCE, (s.id, matchers, s.starts_at, s.ends_at, s.created_by, s.comment, s.created_at,
                             s.updated_at),
        )  # fmt: skip

    async def silence(self, silence_id: str) -> Silence | None:
        row = await self.db.fetch_one("SELECT * FROM silences WHERE id = ?", (silence_id,))
        return _silence(row) if row is not None else None

    async def silences(self) -> list[Silence]:
        """Every silence kept: active, pending, and those that ended in the last five days; newest first."""
        rows = await self.db.fetch_all(
            "SELECT * FROM silences WHERE ends_s >= ? ORDER BY created_s DESC, id",
            (int(self.clock()) - EXPIRED_KEPT_S,),
        )
        return [silence for silence in map(_silence, rows) if silence is not None]

    async def active_silences(self) -> list[Silence]:
        """The silences in force now (the store's clock): started, not yet ended."""
        now = int(self.clock())
        rows = await self.db.fetch_all("SELECT * FROM silences WHERE starts_s <= ? AND ends_s > ?", (now, now))
        return [silence for silence in map(_silence, rows) if silence is not None]

    async def expire_silence(self, silence_id: str) -> Silence | None:
        """End the silence now (a pending one never starts); one already over is left as it is. None: no such
        silence."""
        now = int(self.clock())
        await self.db.execute(
            "UPDATE silences SET ends_s = ?, starts_s = CASE WHEN starts_s > ? THEN ? ELSE starts_s END, "
            "updated_s = ? WHERE id = ? AND ends_s > ?",
            (now, now, now, now, silence_id, now),
        )
        return await self.silence(silence_id)
