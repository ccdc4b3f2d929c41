"""How EvoLink's API has been answering lately: counts of calls, failures and 429s over a sliding window."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from bot.clock import Clock


@dataclass(frozen=True)
class CallSummary:
    calls: int
    errors: int        # non-2xx answers, unusable answers, timeouts and connection errors
    rate_limited: int  # the 429s among the errors

    @property
    def error_rate(self) -> float:
        """Errors per call, 0.0 when there were no calls."""
        return self.errors / self.calls if self.calls else 0.0


class _Bucket:
    __slots__ = ("second", "calls", "errors", "rate_limited")

    def __init__(self, second: int) -> None:
        self.second = second
        self.calls = 0
        self.errors = 0
        self.rate_limited = 0


class CallStats:
    """Outcomes of EvoLink calls over the last `window_seconds` of `clock.monotonic()` time.

    Calls are counted in one-second buckets rather than one entry per call, so memory stays at
    most `window_seconds` buckets however busy the bot is; a call leaves the window up to one
    second early, which nobody reading an hour's figures can notice.
    """

    def __init__(self, clock: Clock, window_seconds: float = 3600) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self._clock = clock
        self.window_seconds = window_seconds
        self._buckets: deque[_Bucket] = deque()

    def record(self, *, ok: bool, rate_limited: bool = False) -> None:
        """Count one call: `ok` for a usable 2xx answer; `rate_limited` for a 429 (a failure)."""
        now = self._clock.monotonic()
        self._prune(now)
        second = math.floor(now)
        if not self._buckets or self._buckets[-1].second != second:
            self._buckets.append(_Bucket(second))
        bucket = self._buckets[-1]
        bucket.calls += 1
        if not ok:
            bucket.errors += 1
            if rate_limited:
                bucket.rate_limited += 1

    def summary(self) -> CallSummary:
        self._prune(self._clock.monotonic())
        return CallSummary(
            calls=sum(bucket.calls for bucket in self._buckets),
            errors=sum(bucket.errors for bucket in self._buckets),
            rate_limited=sum(bucket.rate_limited for bucket in self._buckets),
        )

    @property
    def error_rate(self) -> float:
        return self.summary().error_rate

    def _prune(self, now: float) -> None:
        while self._buckets and now - self._buckets[0].second >= self.window_seconds:
            self._buckets.popleft()


__all__ = ["CallStats", "CallSummary"]
