"""Small values every process of the bot reads from the database (table `bot_state`): why new
generations are paused, and when each IDENTIFY bucket was last used.
"""

from __future__ import annotations

from bot.clock import Clock
from bot.db.engine import Database, Transaction
from bot.units import to_millis

PAUSE_KEY = "pause"


class SharedState:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def read(self, tx: Transaction, key: str) -> str | None:
        row = await tx.fetchone("SELECT value FROM bot_state WHERE key = :key", {"key": key})
        return row["value"] if row is not None else None

    async def write(self, tx: Transaction, key: str, value: str | None) -> None:
        await tx.execute(
            "INSERT INTO bot_state (key, value, updated_at) VALUES (:key, :value, :now) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            {"key": key, "value": value, "now": to_millis(self._clock.now())},
        )

    async def wait_turn(self, key: str, interval_seconds: float) -> None:
        """Return once `interval_seconds` have passed since any process last took a turn under
        `key`, taking this one (e.g. one IDENTIFY per bucket every 5 s across every process)."""
        while True:
            async with self._db.transaction() as tx:
                row = await tx.fetchone("SELECT updated_at FROM bot_state WHERE key = :key", {"key": key})
                now = to_millis(self._clock.now())
                waited = (now - row["updated_at"]) / 1000 if row is not None else interval_seconds
                if waited >= interval_seconds or waited < 0:  # a clock far behind must not block
                    await self.write(tx, key, None)
                    return
            await self._clock.sleep(interval_seconds - waited)
