"""Which database a target names (a path: SQLite; a postgresql:// URL: PostgreSQL) and what both dialects offer.

The queries speak to a `Database` through these few calls, with `?` placeholders and SQL both dialects run
(`ON CONFLICT ... DO UPDATE/NOTHING`, row values, CAST); the schema's statements are written once, in SQLite's
types, and `Tx.ddl` turns them into the dialect's. Each dialect is one module: `sqlite` and `postgres`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from yolowatch._util import is_postgres_url
from yolowatch.store import postgres, sqlite
from yolowatch.store.rows import Row

# What the store's callers catch: the database refused or went away, or the disk or network did.
STORE_ERRORS: tuple[type[BaseException], ...] = (*sqlite.ERRORS, *postgres.ERRORS)


class Tx(Protocol):
    """Statements on one connection, inside a transaction (or in autocommit mode outside one)."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def ddl(self, statement: str) -> str:
        """A schema statement written in SQLite's types, in this dialect's."""
        ...

    async def lock(self, name: str) -> None:
        """Wait for the lock named `name`, held until the transaction ends (across every process and host)."""
        ...

    async def try_lock(self, name: str) -> bool:
        """Take a lock named `name` until the transaction ends, unless another session holds it: one process at a
        time across every host on the database (retention, say)."""
        ...


class Database(Protocol):
    dialect: str

    @property
    def shown(self) -> str:
        """How messages name this database (never with a password)."""
        ...

    async def open(self) -> None: ...

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Tx]: ...

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def reconnect_writer(self) -> None: ...

    async def close(self) -> None: ...


def open_database(
    target: str | Path,
    prepare: Callable[[Any], Awaitable[None]],
    pool_size: int = 4,
    max_pages: int | None = None,
) -> sqlite.SQLiteDatabase | postgres.PostgresDatabase:
    """The database `target` names; nothing connects until first use. `prepare` runs in the first transaction
    (the schema's migrations)."""
    if is_postgres_url(target):
        return postgres.PostgresDatabase(str(target), prepare, pool_size)
    return sqlite.SQLiteDatabase(target, prepare, max_pages)
