"""The clock: the one source of time for the core, so tests can run minutes of job time in seconds."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Real time. `now()` is wall-clock UTC (for periods and timestamps shown to users),
    `monotonic()` measures intervals, `sleep()` waits."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock(Clock):
    """Time that runs `speed` times faster than real time, for tests and the demo's fake server.

    Every participant that shares one ScaledClock (the bot and the fake EvoLink server in one
    process) sees the same accelerated time, so a 30 s task takes 30/speed real seconds and the
    bot's cadence rules (poll intervals, 3 s between edits) keep their proportions.
    """

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._real_origin = time.monotonic()
        self._wall_origin = start or datetime.now(UTC)
        self._offset = 0.0  # seconds of clock time added by advance()

    def _elapsed(self) -> float:
        return (time.monotonic() - self._real_origin) * self.speed + self._offset

    def now(self) -> datetime:
        return self._wall_origin + timedelta(seconds=self._elapsed())

    def monotonic(self) -> float:
        return self._elapsed()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def advance(self, seconds: float) -> None:
        """Jump forward (e.g. across a UTC midnight) without waiting."""
        self._offset += seconds
