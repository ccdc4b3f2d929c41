"""The bot's database as the benchmark sees it: a fresh SQLite file or a fresh PostgreSQL database
per run, the setting that points the bot at it, and reading it back (never writing) from outside."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.process import process_tree_cpu_seconds
from tests.postgres import PostgresServer

STORES = ("sqlite", "postgres")
LOOPBACK = "127.0.0.1"


class BotDatabase:
    """One run's database: a SQLite file (`path`) or a PostgreSQL database (`url`). On PostgreSQL
    the benchmark reads through one connection kept open, so that its reads cost the server one
    backend, whose CPU is left out of the server's (see `backend_pid`), not a new one per read."""

    def __init__(self, *, path: Path | None = None, url: str | None = None) -> None:
        self.path = path
        self.url = url
        self._connection: psycopg.Connection[dict[str, Any]] | None = None
        self._lock = threading.Lock()  # reads run in worker threads, one at a time

    def env(self) -> dict[str, str]:
        """The bot's setting that names it (DATABASE_URL wins over DATABASE_PATH in the bot)."""
        return {"DATABASE_URL": self.url} if self.url is not None else {"DATABASE_PATH": str(self.path)}

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend serving the benchmark's own reads, if one is open."""
        connection = self._connection
        return connection.info.backend_pid if connection is not None and not connection.closed else None

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The rows of a query (no parameters: the same text runs on both stores), or none while
        the bot has not created its tables yet."""
        if self.url is not None:
            with self._lock:
                if self._connection is None or self._connection.closed:
                    self._connection = psycopg.connect(self.url, autocommit=True, row_factory=dict_row)
                try:
                    return self._connection.execute(sql.encode()).fetchall()
                except psycopg.errors.UndefinedTable:
                    return []
        assert self.path is not None
        if not self.path.exists():
            return []
        # Another process's WAL database, read without taking part in its writes.
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)) as db:
            db.row_factory = sqlite3.Row
            try:
                return [dict(row) for row in db.execute(sql).fetchall()]
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):
                    return []
                raise


class Store:
    """Where the runs' databases live: SQLite files in each run's folder, or databases on one
    throwaway PostgreSQL server that this benchmark starts on loopback and stops at the end."""

    def __init__(self, kind: str) -> None:
        if kind not in STORES:
            raise ValueError(f"unknown store {kind!r}: one of {', '.join(STORES)}")
        self.kind = kind
        self.server: PostgresServer | None = None

    async def __aenter__(self) -> Store:
        if self.kind == "postgres":
            self.server = await asyncio.to_thread(PostgresServer().start)
            # The bench's database server never listens beyond this machine.
            if self.server.host != LOOPBACK:
                raise RuntimeError(f"PostgreSQL is on {self.server.host}, not {LOOPBACK}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        server, self.server = self.server, None
        if server is not None:
            await asyncio.to_thread(server.stop)

    def describe(self) -> str:
        if self.server is None:
            return "SQLite (a file per run, WAL)"
        version = self.server.version.removeprefix("postgres (PostgreSQL) ")
        return (f"PostgreSQL {version} (a throwaway server on {LOOPBACK} started by the benchmark, "
                "fsync and synchronous_commit off; a fresh database per run)")

    async def fresh(self, folder: Path) -> BotDatabase:
        """A new, empty database for one run (the bot creates its tables when it starts)."""
        if self.server is None:
            return BotDatabase(path=folder / "bot.db")
        name = await asyncio.to_thread(self.server.create_database, prefix="bench")
        return BotDatabase(url=self.server.url(name))

    def server_cpu_seconds(self, reader: BotDatabase) -> float | None:
        """CPU used so far by the PostgreSQL server (its postmaster and every backend, including
        those that have ended) but for the backend of the benchmark's own reads, or None on
        SQLite, whose work is done inside the bot's process."""
        if self.server is None or self.server.pid is None:
            return None
        mine = reader.backend_pid
        return process_tree_cpu_seconds(self.server.pid, leave_out=() if mine is None else (mine,))
