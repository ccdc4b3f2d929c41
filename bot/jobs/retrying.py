"""Retry policies for EvoLink calls: which failures are worth another try, and how long to wait.

A poll (a read) may be retried freely. A create is a paid call: it is retried only when EvoLink
provably did not take it (a 429 refusal, or a connection that was never established).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from bot.clock import Clock
from bot.evolink.errors import EvoLinkConnectionError, EvoLinkError, RateLimited
from bot.media.downloads import DownloadError

# EvoLink's advice when a 429 comes without Retry-After.
RATE_LIMIT_FALLBACK_SECONDS = 30.0
# 2, 4, 8... seconds up to a minute, plus jitter so many jobs hit by one outage do not retry in step.
_backoff = wait_exponential(multiplier=2, max=60) + wait_random(0, 2)


def _wait_honouring_retry_after(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RateLimited):
        base = error.retry_after if error.retry_after is not None else RATE_LIMIT_FALLBACK_SECONDS
        return base + wait_random(0, 1)(state)
    return _backoff(state)


def _transient(error: BaseException) -> bool:
    return isinstance(error, EvoLinkError) and error.transient


def _create_never_reached(error: BaseException) -> bool:
    return isinstance(error, RateLimited) or (
        isinstance(error, EvoLinkConnectionError) and not error.request_sent
    )


def poll_retrying(
    clock: Clock,
    deadline: float,
    before_sleep: Callable[[RetryCallState], Awaitable[None]] | None = None,
) -> AsyncRetrying:
    """Retry a task read on 429, 5xx, timeouts and network errors until the job's deadline
    (a monotonic time on `clock`). `before_sleep` runs before each wait (to tell the member)."""
    return AsyncRetrying(
        retry=retry_if_exception(_transient),
        wait=_wait_honouring_retry_after,
        stop=lambda state: clock.monotonic() >= deadline,
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def create_retrying(clock: Clock, attempts: int = 4) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(_create_never_reached),
        wait=_wait_honouring_retry_after,
        stop=stop_after_attempt(attempts),
        sleep=clock.sleep,
        reraise=True,
    )


def download_retrying(clock: Clock, attempts: int = 3) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(lambda error: isinstance(error, DownloadError)),
        wait=wait_exponential(multiplier=1, max=10) + wait_random(0, 1),
        stop=stop_after_attempt(attempts),
        sleep=clock.sleep,
        reraise=True,
    )

