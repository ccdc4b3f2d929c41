"""The fake EvoLink's callbacks: a POST of the task to its `callback_url` when it ends, retried
after 1, 2 and 4 s as documented, every attempt recorded in `callbacks`."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from bot.evolink.fake.base import FakeEvoLinkBase
from bot.evolink.fake.models import CallbackAttempt, FakeTask

log = logging.getLogger("bot.evolink.fake")

# As documented: a callback is tried once, then again after 1, 2 and 4 s, each with a 10 s timeout.
CALLBACK_RETRY_DELAYS = (1.0, 2.0, 4.0)
CALLBACK_TIMEOUT = aiohttp.ClientTimeout(total=10)


class Callbacks(FakeEvoLinkBase):
    """Calls back a task's callback_url when the task ends (EvoLink only calls public HTTPS hosts;
    this fake also calls `http://` on loopback, because tests have no certificate)."""

    # Set up by FakeEvoLink.__init__ (server.py).
    callbacks: list[CallbackAttempt]
    _callback_session: aiohttp.ClientSession | None
    _callback_tasks: set[asyncio.Task[None]]

    def _spawn_callback(self, task: FakeTask, base_url: str) -> None:
        pending = asyncio.create_task(self._call_back(task, base_url), name=f"callback-{task.id}")
        self._callback_tasks.add(pending)
        pending.add_done_callback(self._callback_tasks.discard)

    async def _call_back(self, task: FakeTask, base_url: str) -> None:
        """When the task ends, POST it to its callback_url like EvoLink: one try and three retries."""
        assert task.callback_url is not None
        await self.clock.sleep(task.ends_at - self.clock.monotonic())
        if self._callback_session is None:
            self._callback_session = aiohttp.ClientSession(headers={"User-Agent": "EvoLink-Callback"})
        for retry_delay in (*CALLBACK_RETRY_DELAYS, None):
            now = self.clock.monotonic()
            body = task.to_wire(now, base_url)
            answer: int | None = None
            try:
                async with self._callback_session.post(
                        task.callback_url, json=body, timeout=CALLBACK_TIMEOUT) as response:
                    answer = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.debug("callback for %s failed: %s", task.id, exc)
            self.callbacks.append(CallbackAttempt(task.id, body["status"], now, answer))
            if (answer is not None and answer < 500 and answer != 429) or retry_delay is None:
                return  # delivered, or refused for good (4xx), or out of retries
            await self.clock.sleep(retry_delay)

    async def _stop_callbacks(self) -> None:
        """Cancel the callbacks still to come and close their session (on close())."""
        for pending in list(self._callback_tasks):
            pending.cancel()
        await asyncio.gather(*self._callback_tasks, return_exceptions=True)
        if self._callback_session is not None:
            await self._callback_session.close()
            self._callback_session = None
