"""The SQLite dialect (the embedded default): connections (aiosqlite, WAL), transactions and fetch helpers.

aiosqlite runs each connection on its own thread: one writer connection (batched transactions) and one
reader connection, so reads never queue behind a write. Coroutines take turns on the writer connection (a
lock held for a whole transaction): a statement of one must never land inside another's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import aiosqlite

from yolowatch.store.rows import Row

# The database refused (locked, read-only, full, corrupt) or the disk did.
ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)


class SQLiteTx:
    """Statements on one connection (inside a transaction, or in autocommit mode outside one)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        cursor = await self.connection.execute(sql, params)
        return cursor.rowcount

    async def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.connection.executemany(sql, rows)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = await self.connection.execute(sql, params)
        return cast(list[Row], list(await cursor.fetchall()))  # sqlite3.Row: see _connect

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cursor = await self.connection.execute(sql, params)
        return cast("Row | None", await cursor.fetchone())

    def ddl(self, statement: str) -> str:
        return statement  # the schema is written in SQLite's types

    async def try_lock(self, name: str) -> bool:
        return True  # a transaction holds the file's write lock already (BEGIN IMMEDIATE)

    async def lock(self, name: str) -> None:
        """Nothing to take: a transaction holds the file's write lock already (BEGIN IMMEDIATE)."""


class SQLiteDatabase:
    """One SQLite file: a writer connection and a reader connection, each opened on first use.

    `prepare` runs once on every new writer connection, inside a transaction (the schema migrations), so
    nothing reads a file whose schema is not current.
    """

    dialect = "sqlite"

    def __init__(
        self, path: str | Path, prepare: Callable[[SQLiteTx], Awaitable[None]], max_pages: int | None = None
    ) -> None:
        self.path = Path(path)
        self.prepare = prepare
        self.max_pages = max_pages
        self._write: aiosqlite.Connection | None = None
        self._read: aiosqlite.Connection | None = None
        self._writing = asyncio.Lock()

    @property
    def shown(self) -> str:
        """How messages name this database."""
        return str(self.path)

    async def _connect(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(self.path, isolation_level=None)
        connection.row_factory = sqlite3.Row  # by name, built in C: a Python factory cost 15-25 % on range queries
        try:
            await connection.execute("PRAGMA busy_timeout=2000")
            await connection.execute("PRAGMA synchronous=NORMAL")  # reads the schema: can fail when locked
        except BaseException:
            await connection.close()  # else its worker thread outlives us and blocks interpreter exit
            raise
        return connection

    async def writer(self) -> SQLiteTx:
        if self._write is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = await self._connect()
            try:
                await connection.execute("PRAGMA journal_mode=WAL")
                async with _transaction(connection) as tx:
                    await self.prepare(tx)
                if self.max_pages is not None:
                    await connection.execute(f"PRAGMA max_page_count={int(self.max_pages)}")
            except BaseException:
                await connection.close()
                raise
            if self._write is None:
                self._write = connection
            else:  # another task connected while this one waited: keep one, close the other
                await connection.close()
        return SQLiteTx(self._write)

    async def open(self) -> None:
        """Connect now (raises if the file cannot be used)."""
        await self.writer()
        await self.reader()

    async def reader(self) -> SQLiteTx:
        if self._read is None:
            if self._write is None:
                # The schema must be current before anything reads it; a file we cannot write is read as it is.
                with contextlib.suppress(*ERRORS):
                    await self.writer()
            connection = await self._connect()
            if self._read is None:
                self._read = connection
            else:  # another task connected while this one waited: keep one, close the other
                await connection.close()
        return SQLiteTx(self._read)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[SQLiteTx]:
        """`async with db.transaction() as tx:` on the writer connection: committed at the end of the block,
        rolled back if it raises."""
        async with self._writing:
            tx = await self.writer()
            async with _transaction(tx.connection) as inner:
                yield inner

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await (await self.reader()).fetch_all(sql, params)

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await (await self.reader()).fetch_one(sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement on the writer connection, committed on its own; the number of rows it changed."""
        async with self._writing:
            return await (await self.writer()).execute(sql, params)

    async def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement per row, in one transaction."""
        async with self.transaction() as tx:
            await tx.execute_many(sql, rows)

    async def set_max_pages(self, pages: int) -> None:
        """Cap the database size in pages (SQLite answers 'database or disk is full' past it)."""
        self.max_pages = pages
        await self.execute(f"PRAGMA max_page_count={int(pages)}")

    async def reconnect_writer(self) -> None:
        """Drop the writer connection; the next write opens a new one (a read-only file may have become writable)."""
        async with self._writing:
            if self._write is not None:
                connection, self._write = self._write, None
                with contextlib.suppress(sqlite3.Error):
                    await connection.close()

    async def close(self) -> None:
        for connection in (self._read, self._write):
            if connection is not None:
                await connection.close()
        self._read = self._write = None


@contextlib.asynccontextmanager
async def _transaction(connection: aiosqlite.Connection) -> AsyncIterator[SQLiteTx]:
    # IMMEDIATE takes the write lock now, so two writers wait for each other at BEGIN rather than deadlock later.
    await connection.execute("BEGIN IMMEDIATE")
    try:
        yield SQLiteTx(connection)
        await connection.execute("COMMIT")
    except BaseException:
        # Unconditionally: a task cancelled while awaiting BEGIN has not seen it run yet, but aiosqlite runs a
        # connection's statements in order, so this ROLLBACK comes after it (and fails harmlessly if nothing is open).
        with contextlib.suppress(sqlite3.Error):
            await connection.execute("ROLLBACK")
        raise
