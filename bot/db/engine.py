"""The store on two engines: SQLite (one process, zero setup: a file) or PostgreSQL (several
processes sharing the jobs, the line and the credits), behind the same queries.

Queries are plain SQL with named parameters (`:name`), which SQLite's driver takes as they are;
for PostgreSQL, SQLAlchemy's compiler renders each query once in psycopg's style (`%(name)s`,
with literal `%` escaped), and psycopg runs it. (SQLAlchemy's own async engine costs about eight
times more per statement than the drivers themselves, so only its compiler is used.)

Write transactions are serialised on both engines, so every check-then-write (a reservation, a
dispatch from the line) sees a state no one else is changing:
- SQLite: one connection and one lock in the process, and BEGIN IMMEDIATE (the database's write
  lock) against any other process on the same file;
- PostgreSQL: a transaction-scoped advisory lock that every write transaction of every process
  takes first; reads outside a transaction use the pool's connections freely.
Migrations (numbered, in bot/migrations) are applied at open by yoyo, which locks against other
processes starting at the same moment.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiosqlite
from yoyo import get_backend, read_migrations

from bot.db.ddl import POSTGRESQL, SQLITE

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

Params = Mapping[str, Any]

# Every write transaction of every process takes this lock first (PostgreSQL): one writer at a
# time, as SQLite's BEGIN IMMEDIATE gives. The number only has to be the bot's own.
WRITE_LOCK_KEY = 0x57616E42  # "WanB"


class Row(Protocol):
    """A result row, whichever engine answered: by column name (`row["id"]`) or position,
    iterated (and `tuple(row)`) as its values, and `dict(row)` by name, as sqlite3.Row reads."""

    def __getitem__(self, key: str | int) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...
    def keys(self) -> list[str]: ...


class DatabaseClosed(RuntimeError):
    """A statement was asked of a database already closed (the bot is stopping)."""


def is_postgresql_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def apply_migrations(target: str | Path) -> list[str]:
    """Apply the numbered migrations in bot/migrations that this database has not seen yet.

    yoyo records what it applied and takes a lock, so several processes starting at once
    (one per shard group) migrate exactly once.
    """
    if is_postgresql_url(target):
        # yoyo picks its PostgreSQL driver from the scheme: psycopg (3), the one the bot uses.
        backend = get_backend("postgresql+psycopg://" + str(target).split("://", 1)[1])
    else:
        path = Path(target)
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


class Transaction(ABC):
    """The statements of one open transaction (handed out by Database.transaction)."""

    def __init__(self) -> None:
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once this transaction has committed, and never if it rolls back: for
        telling others (metrics) of a write only once it lasts. It must be quick and must not
        await; an error in it is logged, never raised into the code that committed."""
        self._after_commit.append(action)

    def _committed(self) -> None:
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            try:
                action()
            except Exception:
                log.exception("An action after a commit failed")

    @abstractmethod
    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run a statement; returns how many rows it changed."""

    @abstractmethod
    async def insert(self, sql: str, params: Params | None = None) -> int:
        """Run an INSERT ... RETURNING id; returns the new row's id."""

    @abstractmethod
    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None: ...

    @abstractmethod
    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]: ...


class Database(ABC):
    """All access goes through `transaction()` (writes, and reads that must see one state) and
    `fetchone`/`fetchall` (single reads). Never await network I/O inside a transaction."""

    dialect: str

    @classmethod
    async def open(cls, target: str | Path) -> Database:
        """A SQLite file (a path), created and migrated; or a PostgreSQL database (a
        `postgresql://user:password@host:port/name` URL), migrated."""
        applied = await asyncio.to_thread(apply_migrations, target)
        if applied:
            log.info("Database migrated: %s", ", ".join(applied))
        if is_postgresql_url(target):
            return await PostgresDatabase.connect(str(target))
        return await SqliteDatabase.connect(Path(target))

    @property
    def shared(self) -> bool:
        """Whether other processes may be using this database at the same time (PostgreSQL)."""
        return self.dialect == POSTGRESQL

    @abstractmethod
    async def close(self) -> None:
        """Wait for the statement under way, then let no other one start."""

    @abstractmethod
    def transaction(self) -> Any:
        """`async with db.transaction() as tx`: a write transaction, serialised with every other."""

    @abstractmethod
    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None: ...

    @abstractmethod
    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]: ...


# -- SQLite ---------------------------------------------------------------------------------------


class SqliteDatabase(Database):
    """One aiosqlite connection and one lock.

    A single connection shared by many coroutines would let one coroutine's read see another's
    uncommitted writes, and SQLite refuses nested BEGINs; the lock makes every read and every
    transaction whole."""

    dialect = SQLITE

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def connect(cls, path: Path) -> SqliteDatabase:
        # isolation_level=None: we issue BEGIN ourselves, so nothing commits behind our back.
        connection = await aiosqlite.connect(path, isolation_level=None)
        connection.row_factory = aiosqlite.Row
        # WAL lets readers in other processes work during our writes; busy_timeout makes
        # concurrent writers from other processes wait instead of failing at once.
        for pragma in ("journal_mode = WAL", "foreign_keys = ON", "busy_timeout = 5000", "synchronous = NORMAL"):
            await connection.execute(f"PRAGMA {pragma}")
        return cls(connection)

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            await self._connection.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """BEGIN IMMEDIATE takes the write lock up front, so a check-then-write (like a credit
        reservation) cannot interleave with another writer."""
        async with self._lock:
            _refuse_if(self._closed)
            await self._connection.execute("BEGIN IMMEDIATE")
            tx = _SqliteTransaction(self._connection)
            try:
                yield tx
            except BaseException:
                await self._connection.rollback()
                raise
            else:
                await self._connection.commit()
        tx._committed()

    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        async with self._lock:
            _refuse_if(self._closed)
            return await _SqliteTransaction(self._connection).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        async with self._lock:
            _refuse_if(self._closed)
            return await _SqliteTransaction(self._connection).fetchall(sql, params)


class _SqliteTransaction(Transaction):
    def __init__(self, connection: aiosqlite.Connection) -> None:
        super().__init__()
        self._connection = connection

    async def execute(self, sql: str, params: Params | None = None) -> int:
        async with self._connection.execute(sql, params or {}) as cursor:
            return cursor.rowcount

    async def insert(self, sql: str, params: Params | None = None) -> int:
        async with self._connection.execute(sql, params or {}) as cursor:
            row = await cursor.fetchone()
        assert row is not None, "an INSERT ... RETURNING id answers its row"
        return int(row[0])

    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        async with self._connection.execute(sql, params or {}) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        async with self._connection.execute(sql, params or {}) as cursor:
            return list(await cursor.fetchall())


# -- PostgreSQL -----------------------------------------------------------------------------------


class PostgresDatabase(Database):
    """A pool of psycopg connections; write transactions take the shared write lock first."""

    dialect = POSTGRESQL

    def __init__(self, pool: AsyncConnectionPool, url: str) -> None:
        self._pool = pool
        self._closed = False
        self.url = url  # for a connection of its own (LISTEN); holds the password: never log it

    @classmethod
    async def connect(cls, url: str) -> PostgresDatabase:
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(url, min_size=2, max_size=10, open=False,
                                   kwargs={"autocommit": True, "row_factory": _pg_row})
        await pool.open(wait=True)
        return cls(pool, url)

    async def close(self) -> None:
        self._closed = True
        await self._pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        _refuse_if(self._closed)
        async with self._pool.connection() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": WRITE_LOCK_KEY})
            tx = _PostgresTransaction(connection)
            yield tx
        # Reached only when the block above committed: an error in it (or a failed COMMIT)
        # propagates past this line.
        tx._committed()

    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        _refuse_if(self._closed)
        async with self._pool.connection() as connection:
            return await _PostgresTransaction(connection).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        _refuse_if(self._closed)
        async with self._pool.connection() as connection:
            return await _PostgresTransaction(connection).fetchall(sql, params)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection of the pool, for what only PostgreSQL does (LISTEN/NOTIFY)."""
        _refuse_if(self._closed)
        async with self._pool.connection() as connection:
            yield connection


class _PostgresTransaction(Transaction):
    def __init__(self, connection: AsyncConnection[Any]) -> None:
        super().__init__()
        self._connection = connection

    async def execute(self, sql: str, params: Params | None = None) -> int:
        cursor = await self._connection.execute(postgres_sql(sql), params or {})
        return cursor.rowcount

    async def insert(self, sql: str, params: Params | None = None) -> int:
        cursor = await self._connection.execute(postgres_sql(sql), params or {})
        row = await cursor.fetchone()
        assert row is not None, "an INSERT ... RETURNING id answers its row"
        return int(row[0])

    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        cursor = await self._connection.execute(postgres_sql(sql), params or {})
        return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        cursor = await self._connection.execute(postgres_sql(sql), params or {})
        return list(await cursor.fetchall())


@lru_cache(maxsize=1024)
def postgres_sql(sql: str) -> str:
    """A query written for SQLite's named parameters (`:name`), in psycopg's (`%(name)s`), by
    SQLAlchemy's compiler (which knows quoting and escapes a literal `%`). Cached: the bot has a
    few dozen distinct queries."""
    from sqlalchemy import text
    from sqlalchemy.dialects.postgresql import psycopg

    return str(text(sql).compile(dialect=psycopg.dialect()))


class _PgRow(Sequence[Any]):
    """What psycopg answers, read like sqlite3.Row (see Row)."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: tuple[str, ...], values: Sequence[Any]) -> None:
        self._names = names
        self._values = tuple(values)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._values[self._names.index(key)]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._names)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._names, self._values, strict=True))!r})"


def _pg_row(cursor: Any) -> Any:
    """psycopg's row factory: makes rows that read like sqlite3.Row."""
    names = tuple(column.name for column in cursor.description or ())

    def make(values: Sequence[Any]) -> _PgRow:
        return _PgRow(names, values)

    return make


def _refuse_if(closed: bool) -> None:
    # A closed pool or connection must say so, not open a new one behind the caller's back.
    if closed:
        raise DatabaseClosed("the database is closed")
