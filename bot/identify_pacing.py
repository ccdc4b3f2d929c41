"""When a gateway shard may IDENTIFY: Discord's one IDENTIFY per 5 seconds per bucket, kept within
this process, with a gate where the processes that share the buckets can wait for each other.

Discord starts at most `max_concurrency` sessions per 5 seconds (`session_start_limit` in
`GET /gateway/bot`): shard `s` belongs to bucket `s % max_concurrency`, and each bucket takes one
IDENTIFY per 5 seconds. An IDENTIFY too early in its bucket gets its session invalidated (op 9),
and the shard must identify again later. discord.py's own `before_identify_hook` sleeps 5 s before
every IDENTIFY but the first of the process, whatever the bucket: safe within one process, slow for a
bot whose max_concurrency is above 1, and blind to other processes.

Time here is real time (a plain Clock), never the tests' scaled clock: the rule is Discord's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.clock import Clock

# Discord's rule is 5 s, counted when it receives each IDENTIFY. The half second more covers the
# time an IDENTIFY spends on its way after its turn is given (network, the event loop), so that
# two IDENTIFYs of a bucket never arrive less than 5 s apart.
IDENTIFY_SPACING_SECONDS = 5.5

IdentifyGate = Callable[[int, int], Awaitable[None]]
"""The cross-process gate: `await gate(bucket, max_concurrency)` just before a shard of this process
IDENTIFYs in `bucket`, once this process's own spacing is kept. It returns when no other process has
identified a shard of that bucket for IDENTIFY_SPACING_SECONDS, and counts this IDENTIFY as the
bucket's latest (for example a row per bucket in the shared database, updated only where its time
is old enough, retried until it is). It should wait rather than raise: discord.py retries the
connection after an OSError or a TimeoutError, but most other exceptions raised while a shard
re-identifies close the bot. Without a gate, processes sharing buckets can trip Discord's limit."""


class IdentifyPacer:
    """Spaces this process's IDENTIFYs per bucket: one per IDENTIFY_SPACING_SECONDS in each bucket;
    shards of different buckets do not wait for each other. `max_concurrency` is learnt from
    `GET /gateway/bot` before any shard connects; `gate`, when set, is awaited per IDENTIFY."""

    def __init__(self, max_concurrency: int = 1, *, gate: IdentifyGate | None = None,
                 spacing: float = IDENTIFY_SPACING_SECONDS, clock: Clock | None = None) -> None:
        self.max_concurrency = max_concurrency
        self.gate = gate
        self.spacing = spacing
        self._clock = clock or Clock()
        self._last_turn: dict[int, float] = {}  # bucket -> when its latest IDENTIFY was let go
        self._locks: dict[int, asyncio.Lock] = {}

    @property
    def max_concurrency(self) -> int:
        return self._max_concurrency

    @max_concurrency.setter
    def max_concurrency(self, value: int) -> None:
        # Discord never reports less than 1; anything else would make every shard its own bucket.
        self._max_concurrency = max(1, int(value))

    def bucket(self, shard_id: int) -> int:
        return shard_id % self.max_concurrency

    async def wait_turn(self, shard_id: int) -> None:
        """Return when shard `shard_id` may send its IDENTIFY now."""
        bucket = self.bucket(shard_id)
        # One shard of a bucket at a time: a second one waits for the first's turn, then its own.
        async with self._locks.setdefault(bucket, asyncio.Lock()):
            last = self._last_turn.get(bucket)
            if last is not None:
                await self._clock.sleep(last + self.spacing - self._clock.monotonic())
            if self.gate is not None:
                await self.gate(bucket, self.max_concurrency)
            self._last_turn[bucket] = self._clock.monotonic()
