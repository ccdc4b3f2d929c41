"""Shared fixtures: a fresh migrated database per test, and a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.clock import ScaledClock
from bot.db import Database


@pytest.fixture
def clock() -> ScaledClock:
    # Fast enough that minutes of job time pass in a second, slow enough to keep ordering honest.
    return ScaledClock(speed=50, start=datetime(2026, 11, 21, 12, 0, tzinfo=UTC))


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(tmp_path / "bot.db")
    yield database
    await database.close()
