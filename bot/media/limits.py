"""Bounds on the bot's media work: how many downloads and how many picture decodes or ffmpeg runs
happen at once (shared fairly between guilds), and one picture in preparation per member.

Downloads and decodes cost memory (a 40-megapixel picture decodes to hundreds of MB) and CPU, and
they happen before anything is reserved for a picture a member sends. Without a bound, six
parallel /animate calls, or one busy guild's burst of finished videos, could take the machine
from every other guild. So every such piece of work takes a slot first, and when slots are short
the waiting guilds take turns: a guild's burst waits behind itself, never in front of another
guild's single job.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


class FairSlots:
    """At most `limit` holders at once; waiters are served one guild at a time, round-robin, and
    in arrival order within a guild."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a slot limit is at least 1")
        self.limit = limit
        self._in_use = 0
        self._waiters: dict[int, deque[asyncio.Future[None]]] = {}  # guild -> its waiters
        self._turns: deque[int] = deque()  # the guilds with waiters, in the order they are served

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiters.values())

    @asynccontextmanager
    async def slot(self, guild_id: int) -> AsyncIterator[None]:
        await self._acquire(guild_id)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, guild_id: int) -> None:
        if self._in_use < self.limit and not self._turns:
            self._in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters.get(guild_id)
        if queue is None:
            queue = self._waiters[guild_id] = deque()
            self._turns.append(guild_id)
        queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # granted just as the waiter was cancelled: pass the slot on
            else:
                self._forget(guild_id, future)
            raise

    def _release(self) -> None:
        self._in_use -= 1
        self._grant_next()

    def _grant_next(self) -> None:
        while self._in_use < self.limit and self._turns:
            guild_id = self._turns.popleft()
            queue = self._waiters[guild_id]
            future = queue.popleft()
            if queue:
                self._turns.append(guild_id)  # its next waiter comes after the other guilds'
            else:
                del self._waiters[guild_id]
            if not future.done():
                self._in_use += 1
                future.set_result(None)

    def _forget(self, guild_id: int, future: asyncio.Future[None]) -> None:
        queue = self._waiters.get(guild_id)
        if queue is None or future not in queue:
            return
        queue.remove(future)
        if not queue:
            del self._waiters[guild_id]
            self._turns.remove(guild_id)


@dataclass
class _Preparation:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or awaiting the lock


class MediaLimits:
    """The bot's media slots: `downloads` (input pictures, results, re-fetched files) and
    `processing` (picture decodes and repairs, image shrinking, ffmpeg runs)."""

    def __init__(self, *, downloads: int, processing: int) -> None:
        self.downloads = FairSlots(downloads)
        self.processing = FairSlots(processing)
        self._preparing: dict[int, _Preparation] = {}

    @classmethod
    def unbounded(cls) -> MediaLimits:
        """For tools and tests that build a runner by hand; the bot takes its bounds from the settings."""
        return cls(downloads=1_000_000, processing=1_000_000)

    @asynccontextmanager
    async def preparing_picture(self, user_id: int) -> AsyncIterator[None]:
        """One picture in preparation per member, across every guild: a member's second picture
        waits until the first is prepared and reserved for, then finds out whether it still fits."""
        preparation = self._preparing.setdefault(user_id, _Preparation())
        preparation.users += 1
        try:
            async with preparation.lock:
                yield
        finally:
            preparation.users -= 1
            if preparation.users == 0:
                del self._preparing[user_id]  # nobody holds or awaits it: nothing to keep
