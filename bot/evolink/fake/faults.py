"""Faults a test injects into the fake EvoLink: HTTP errors (`fail_next`, `fail_every`), slow
answers (`stall_next_create`, `hold_results`) and tasks that end failed (`fail_tasks_matching`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from bot.evolink.fake.base import FakeEvoLinkBase

_CREATE_PATHS = ("/v1/images/generations", "/v1/videos/generations")


@dataclass
class _FailRule:
    path_prefix: str
    status: int
    code: str | int
    message: str
    retry_after: str | None
    raw_body: str | None
    remaining: int


@dataclass
class _EveryRule:
    failure: _FailRule  # the error to answer with; its `remaining` is not used
    every: int
    seen: int = 0  # matching requests since fail_every()


@dataclass
class _TaskFailureRule:
    substring: str
    code: str
    message: str


class FakeHold:
    """Requests a fake keeps waiting until the test calls `release()`.

    Lets a test act at the exact moment a request is in flight (e.g. stop the bot while a
    download hangs) instead of guessing with sleeps.
    """

    def __init__(self) -> None:
        self.arrived = asyncio.Event()  # set once a held request is waiting
        self.waiting = 0  # held requests waiting right now
        self._released = asyncio.Event()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def release(self) -> None:
        """Let every waiting request (and any later one) through; the hold is then inactive."""
        self._released.set()

    async def _block(self) -> None:
        self.waiting += 1
        self.arrived.set()
        try:
            await self._released.wait()
        finally:
            self.waiting -= 1


class Faults(FakeEvoLinkBase):
    """The test controls that make the fake fail or wait, and how the server applies them."""

    # Set up by FakeEvoLink.__init__ (server.py).
    _fail_rules: list[_FailRule]
    _every_rules: list[_EveryRule]
    _create_stalls: list[float]
    _results_hold: FakeHold | None
    _closing: asyncio.Event
    _task_failure_rules: list[_TaskFailureRule]

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        code: str | int,
        message: str = "Simulated failure",
        *,
        retry_after: str | None = None,
        times: int = 1,
        raw_body: str | None = None,
    ) -> None:
        """The next `times` requests whose path starts with `path_prefix` get this HTTP error,
        in the documented error body (the files-API shape under /api/v1/files), with a
        Retry-After header when given. `raw_body` sends that text as text/html instead, like a
        proxy's error page."""
        if times < 1:
            raise ValueError("times must be at least 1")
        self._fail_rules.append(
            _FailRule(path_prefix, status, code, message, retry_after, raw_body, times)
        )

    def fail_every(
        self,
        path_prefix: str,
        every: int,
        status: int,
        code: str | int,
        message: str = "Simulated failure",
        *,
        retry_after: str | None = None,
    ) -> None:
        """From now on every `every`-th request whose path starts with `path_prefix` (the
        every-th, 2*every-th, ... counted from this call) gets this HTTP error, in the same
        body as `fail_next`: a steady, predictable failure rate for retry logic. A pending
        `fail_next` rule answers first; its requests still count here. Until `stop_failing()`."""
        if every < 1:
            raise ValueError("every must be at least 1")
        failure = _FailRule(path_prefix, status, code, message, retry_after, None, 0)
        self._every_rules.append(_EveryRule(failure, every))

    def stop_failing(self) -> None:
        """Remove every `fail_every` rule (`fail_next` rules stay)."""
        self._every_rules.clear()

    def stall_next_create(self, seconds: float, times: int = 1) -> None:
        """The next `times` create requests (image or video) are processed normally: the task
        is created, recorded in `tasks` and its credits reserved. Only the HTTP answer waits
        `seconds` of real time (not clock time), so a client with a shorter timeout gives up
        although EvoLink accepted the task, and must not assume nothing was created.
        Requests refused before the route (auth, injected failures) are answered at once."""
        if times < 1:
            raise ValueError("times must be at least 1")
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._create_stalls.extend([seconds] * times)

    def hold_results(self) -> FakeHold:
        """Result downloads (GET /results/...) do not answer until `release()` on the returned
        hold; then they are served as usual (from the task's state at that moment). One such
        hold at a time; `close()` releases it."""
        if self._results_hold is not None and not self._results_hold.released:
            raise RuntimeError("a results hold is already active; release it first")
        self._results_hold = FakeHold()
        return self._results_hold

    def fail_tasks_matching(self, substring: str, code: str, message: str) -> None:
        """Tasks created from now on whose prompt contains `substring` end as "failed" with this
        error (partway through their duration) instead of completing."""
        self._task_failure_rules.append(_TaskFailureRule(substring, code, message))

    # --- applied by the server and the routes -------------------------------------------------

    def _injected_failure(self, request: web.Request) -> web.Response | None:
        # Every fail_every rule counts each matching request, whichever rule answers it.
        due: _FailRule | None = None
        for every_rule in self._every_rules:
            if request.path.startswith(every_rule.failure.path_prefix):
                every_rule.seen += 1
                if due is None and every_rule.seen % every_rule.every == 0:
                    due = every_rule.failure
        for rule in self._fail_rules:
            if rule.remaining > 0 and request.path.startswith(rule.path_prefix):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._fail_rules.remove(rule)
                return self._failure_response(request, rule)
        return self._failure_response(request, due) if due is not None else None

    def _failure_response(self, request: web.Request, rule: _FailRule) -> web.Response:
        headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
        if rule.raw_body is not None:
            return web.Response(
                status=rule.status,
                text=rule.raw_body,
                content_type="text/html",
                headers=headers,
            )
        return self._error(request, rule.status, rule.code, rule.message, headers=headers)

    async def _stall_create(self, request: web.Request) -> None:
        if self._create_stalls and request.method == "POST" and request.path in _CREATE_PATHS:
            seconds = self._create_stalls.pop(0)
            try:
                await asyncio.wait_for(self._closing.wait(), seconds)  # a sleep that close() ends
            except TimeoutError:
                pass

    def _failure_for_prompt(self, prompt: str) -> tuple[str, str] | None:
        """The (code, message) a new task with this prompt ends with, per fail_tasks_matching."""
        for rule in self._task_failure_rules:
            if rule.substring in prompt:
                return rule.code, rule.message
        return None
