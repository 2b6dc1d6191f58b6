"""Request log entries: batched inserts, keyset pages newest first, and the secret that signs page tokens."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from yolowatch.records import SEVERITY_LEVELS
from yolowatch.store.base import StoreBase
from yolowatch.store.database import Tx
from yolowatch.store.rows import LOG_COLUMNS, insert_sql

INSERT_LOG = insert_sql("logs", LOG_COLUMNS)


@dataclass(frozen=True)
class LogPage:
    entries: list[dict[str, Any]]
    next_cursor: tuple[int, int] | None  # (ts_ms, id) of the last entry when more remain


class LogQueries(StoreBase):
    _secret: bytes | None = None

    @staticmethod
    async def insert_logs(tx: Tx, rows: Sequence[tuple[Any, ...]]) -> None:
        """Log rows in LOG_COLUMNS order."""
        if rows:
            await tx.execute_many(INSERT_LOG, rows)

    async def logs(
        self,
        deployment: str,
        limit: int = 50,
        severities: Iterable[str] | None = None,
        before: tuple[int, int] | None = None,
        trace_id: str | None = None,
    ) -> LogPage:
        """Newest first; `before` is the cursor of the previous page (keyset paging, stable under inserts);
        `trace_id` keeps one trace's entries."""
        where = ["deployment = ?"]
        params: list[Any] = [deployment]
        if trace_id is not None:
            where.append("trace_id = ?")
            params.append(trace_id)
        if severities:
            levels = [SEVERITY_LEVELS[name] for name in severities]
            where.append(f"severity IN ({', '.join('?' * len(levels))})")
            params += levels
        if before is not None:
            where.append("(ts_ms, id) < (?, ?)")
            params += list(before)
        rows = await self.db.fetch_all(
            f"SELECT id, {', '.join(LOG_COLUMNS)} FROM logs WHERE {' AND '.join(where)} "
            "ORDER BY ts_ms DESC, id DESC LIMIT ?",
            (*params, limit + 1),
        )
        more = len(rows) > limit
        entries = [dict(row) for row in rows[:limit]]
        return LogPage(entries, (entries[-1]["ts_ms"], entries[-1]["id"]) if more and entries else None)

    async def secret(self) -> bytes:
        """This database's random signing secret, made on first use (every process sharing it agrees on it)."""
        if self._secret is None:
            async with self.db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('token_secret', ?) ON CONFLICT (key) DO NOTHING",
                    (secrets.token_hex(32),),
                )
                row = await tx.fetch_one("SELECT value FROM meta WHERE key = 'token_secret'")
            assert row is not None
            self._secret = bytes.fromhex(row["value"])
        return self._secret
