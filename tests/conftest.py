"""Shared fixtures: a fresh migrated database per test, a controllable clock, and a real PostgreSQL
server (started on first use) with a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.clock import ScaledClock
from bot.db import Database
from tests.postgres import PostgresServer, PostgresUnavailable


@pytest.fixture
def clock() -> ScaledClock:
    # Fast enough that minutes of job time pass in a second, slow enough to keep ordering honest.
    return ScaledClock(speed=50, start=datetime(2026, 11, 21, 12, 0, tzinfo=UTC))


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(tmp_path / "bot.db")
    yield database
    await database.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server on 127.0.0.1 (tests/postgres.py), started when a test first
    asks for it and stopped at the end of the session."""
    server = PostgresServer()
    try:
        server.start()
        problem = None
    except PostgresUnavailable as error:
        problem = str(error)
    if problem is not None:
        # Fail, never skip: a missing PostgreSQL must be noticed, not silently untested.
        pytest.fail(problem, pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the test server, as the bot reads it from DATABASE_URL
    (postgresql://user:password@127.0.0.1:PORT/dbname); dropped after the test."""
    with postgres_server.fresh_database() as url:
        yield url
