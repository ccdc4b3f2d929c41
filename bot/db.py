"""The SQLite database: one aiosqlite connection, migrations applied at open, serialised transactions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
from yoyo import get_backend, read_migrations

log = logging.getLogger(__name__)

Row = aiosqlite.Row
# Positional (?) or named (:name) parameters; SQL is always parameterised, never formatted.
Params = Sequence[Any] | Mapping[str, Any]


def apply_migrations(path: Path) -> list[str]:
    """Apply the numbered migrations in bot/migrations that this database has not seen yet.

    yoyo records what it applied and takes a lock, so several processes starting at once
    (one per shard group) migrate exactly once.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = get_backend(f"sqlite:///{path}")
    try:
        with resources.as_file(resources.files("bot") / "migrations") as folder:
            migrations = read_migrations(str(folder))
            with backend.lock():
                pending = backend.to_apply(migrations)
                backend.apply_migrations(pending)
        return [m.id for m in pending]
    finally:
        backend.connection.close()


class Database:
    """All access goes through one connection and one lock.

    A single connection shared by many coroutines would let one coroutine's read see another's
    uncommitted writes, and SQLite refuses nested BEGINs; the lock makes every read and every
    transaction whole. Never await network I/O while holding it.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Database:
        applied = await asyncio.to_thread(apply_migrations, path)
        if applied:
            log.info("Database %s migrated: %s", path, ", ".join(applied))
        # isolation_level=None: we issue BEGIN ourselves, so nothing commits behind our back.
        connection = await aiosqlite.connect(path, isolation_level=None)
        connection.row_factory = aiosqlite.Row
        # WAL lets readers in other processes work during our writes; busy_timeout makes
        # concurrent writers from other processes wait instead of failing at once.
        for pragma in ("journal_mode = WAL", "foreign_keys = ON", "busy_timeout = 5000",
                       "synchronous = NORMAL"):
            await connection.execute(f"PRAGMA {pragma}")
        return cls(connection)

    async def close(self) -> None:
        async with self._lock:
            await self._connection.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction: BEGIN IMMEDIATE takes the write lock up front, so a
        check-then-write (like a credit reservation) cannot interleave with another writer."""
        async with self._lock:
            await self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._connection)
            except BaseException:
                await self._connection.rollback()
                raise
            else:
                await self._connection.commit()

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self._lock:
            async with self._connection.execute(sql, params) as cursor:
                return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._lock:
            async with self._connection.execute(sql, params) as cursor:
                return list(await cursor.fetchall())


class Transaction:
    """The statements of one open transaction (handed out by Database.transaction)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; returns how many rows it changed."""
        async with self._connection.execute(sql, params) as cursor:
            return cursor.rowcount

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT; returns the new row's id."""
        async with self._connection.execute(sql, params) as cursor:
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self._connection.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._connection.execute(sql, params) as cursor:
            return list(await cursor.fetchall())
