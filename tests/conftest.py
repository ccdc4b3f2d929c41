"""Shared fixtures: a fresh migrated database per test, a controllable clock, and a real PostgreSQL
server (started on first use) with a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.clock import ScaledClock
from bot.db import Database, apply_migrations
from tests.postgres import PostgresServer, PostgresUnavailable


@pytest.fixture
def clock() -> ScaledClock:
    # Fast enough that minutes of job time pass in a second, slow enough to keep ordering honest.
    return ScaledClock(speed=50, start=datetime(2026, 11, 21, 12, 0, tzinfo=UTC))


# The stores every database test runs on: the same tests, the same assertions, both engines.
STORES = ("sqlite", "postgres")


@pytest.fixture(params=STORES)
def database_target(request, tmp_path):
    """Where a test's database lives: a SQLite file, then (a second run of the test) a fresh
    migrated PostgreSQL database's URL. Open it again to act as another process would."""
    if request.param == "sqlite":
        yield tmp_path / "bot.db"
        return
    with request.getfixturevalue("migrated_postgres_url") as url:
        yield url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked `store_independent` runs on SQLite only: its PostgreSQL run would repeat
    the same work on a store it does not exercise (and the whole suite must stay quick)."""
    def postgres_run_of_a_store_independent_test(item: pytest.Item) -> bool:
        callspec = getattr(item, "callspec", None)
        return (item.get_closest_marker("store_independent") is not None and callspec is not None
                and callspec.params.get("database_target") == "postgres")

    deselected = [item for item in items if postgres_run_of_a_store_independent_test(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


@pytest.fixture
async def db(database_target):
    """A fresh, migrated database per test, on SQLite and on PostgreSQL: the same tests, the same
    assertions, both engines."""
    database = await Database.open(database_target)
    yield database
    await database.close()


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres_server: PostgresServer) -> str:
    """A database with every migration applied, copied for each test (faster than migrating)."""
    # Not "test_": the session keeps it, while each test's own database is dropped after it.
    name = postgres_server.create_database(prefix="template")
    apply_migrations(postgres_server.url(name))
    return name


@pytest.fixture
def migrated_postgres_url(postgres_server: PostgresServer, migrated_postgres_template: str):
    """A context manager giving a fresh migrated PostgreSQL database's URL, dropped on exit."""
    return postgres_server.fresh_database(template=migrated_postgres_template)


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
