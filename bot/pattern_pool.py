"""Blocked-pattern work off the bot's process: a few worker processes, in which guilds take turns.

A moderator's pattern can take as long as its timeout allows, and `regex` compiles a pattern in
Python code that holds the GIL: matching or compiling in the bot's process, even in a thread,
stalls the event loop, and with it every server's commands (20 patterns of 10 ms to compile
delayed another server's answers by 200 ms). Worker processes have their own interpreter and CPU
clock, so nothing a guild's patterns do reaches the bot's loop, and `regex`'s timeouts (counted in
the CPU time of the whole process) measure that work alone. The workers run at a lower priority,
so on a small machine the bot's own process comes first.

Each guild has one turn: at most one piece of a guild's work runs at a time, the rest of that
guild's work waits in line. With more workers than one, a guild whose patterns are slow holds one
worker and every other guild still finds a free one (until as many guilds as there are workers are
slow at the same moment). Waiting for a turn is bounded: work that cannot start within
`max_wait_seconds` gives up with GuildBusy. So when 50 prompts of one guild arrive at once, they
are checked one after the other while the wait allows, and the others are refused quickly instead
of being answered after Discord's 3-second deadline.

Work is a module-level function of plain values (it is pickled to the worker), such as those of
bot/pattern_matching.py. The workers start together on first use, as fresh interpreters ("spawn":
no copy of the bot's threads or connections) that import only what the work needs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# A slow guild holds one worker; two more guilds must be slow at the same moment before any other
# guild waits. Each worker is a process of ~14 MB of its own, started when patterns are first used.
WORKERS = 3
MAX_WAIT_SECONDS = 1.0
WORKER_NICENESS = 10


class GuildBusy(Exception):
    """A guild's earlier pattern work kept its turn longer than the wait allows."""

    def __init__(self, guild_id: int) -> None:
        self.guild_id = guild_id
        super().__init__(f"pattern work of guild {guild_id} is busy")


def _start_worker() -> None:
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)
    # Ctrl-C in a terminal reaches the whole process group: the bot stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding it or waiting for it; at 0 the entry is dropped


class PatternPool:
    def __init__(self, *, workers: int = WORKERS, max_wait_seconds: float = MAX_WAIT_SECONDS) -> None:
        if workers < 2:
            raise ValueError("one worker would let one guild's slow work hold up every other guild")
        self._workers = workers
        self._max_wait_seconds = max_wait_seconds
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._turns: dict[int, _Turn] = {}

    @property
    def max_wait_seconds(self) -> float:
        return self._max_wait_seconds

    async def run(self, guild_id: int, work: Callable[..., T], *args: object) -> T:
        """Run `work(*args)` in a worker process in the guild's turn. Raises GuildBusy if the turn
        does not come within the wait, BrokenProcessPool if a worker died meanwhile (the pool is
        replaced for the next call), and whatever `work` raises."""
        turn = self._turns.setdefault(guild_id, _Turn())
        turn.users += 1
        try:
            async with asyncio.timeout(self._max_wait_seconds):
                await turn.lock.acquire()
        except TimeoutError:
            self._leave(guild_id, turn)
            raise GuildBusy(guild_id) from None
        except BaseException:
            self._leave(guild_id, turn)
            raise
        loop = asyncio.get_running_loop()
        try:
            executor, done = self._submit(work, *args)
        except BaseException:
            self._finish(guild_id, turn)
            raise
        # The turn ends when the worker is done, not when the caller stops waiting: a cancelled
        # caller cannot stop a running worker, and the guild must not start a second one meanwhile.
        done.add_done_callback(lambda _: self._finish_from_any_thread(loop, guild_id, turn))
        try:
            return await asyncio.wrap_future(done)
        except BrokenProcessPool:
            self._replace_broken(executor)
            raise

    def close(self) -> None:
        """Stop the workers: queued work is cancelled, running work ends within its own timeout
        (every search has one). A later run() starts new workers, so a reloaded cog still works."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _submit(self, work: Callable[..., T], *args: object
                ) -> tuple[concurrent.futures.ProcessPoolExecutor, concurrent.futures.Future[T]]:
        for _ in range(2):  # a pool found broken (a worker died since the last call) is replaced once
            if self._executor is None:
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker)
                # All workers at once (a no-op each): a worker starts in ~60 ms, which the first
                # guild to need a second worker would otherwise wait for.
                for _ in range(self._workers):
                    self._executor.submit(int)
            executor = self._executor
            try:
                return executor, executor.submit(work, *args)
            except BrokenProcessPool:
                self._replace_broken(executor)
        raise BrokenProcessPool("blocked-pattern workers keep dying")

    def _replace_broken(self, executor: concurrent.futures.ProcessPoolExecutor) -> None:
        # All the work in a pool fails when one of its workers dies; the next call starts new ones.
        if self._executor is executor:
            log.error("A blocked-pattern worker process died; starting new ones")
            self.close()

    def _finish_from_any_thread(self, loop: asyncio.AbstractEventLoop, guild_id: int, turn: _Turn) -> None:
        try:
            loop.call_soon_threadsafe(self._finish, guild_id, turn)
        except RuntimeError:
            pass  # the loop is closed: nobody is left waiting for this turn

    def _finish(self, guild_id: int, turn: _Turn) -> None:
        turn.lock.release()
        self._leave(guild_id, turn)

    def _leave(self, guild_id: int, turn: _Turn) -> None:
        turn.users -= 1
        if turn.users == 0 and self._turns.get(guild_id) is turn:
            del self._turns[guild_id]
