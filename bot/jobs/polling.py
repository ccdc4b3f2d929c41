"""When to ask EvoLink about a task again: few polls early, steady ones near the end, a hard cap.

Each poll of an unfinished task makes EvoLink query its upstream provider, so polling before the
task can plausibly be done only costs. The schedule waits out the first part of the estimate,
then polls at the kind's steady interval (EvoLink's own clients use 3-5 s for images, 8-15 s for
video), polls earlier when the reported progress predicts an earlier finish, and slows down once a
task runs well past its estimate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PollPolicy:
    default_estimate: float      # seconds, when the API gives no estimated_time
    quiet_fraction: float        # no polls before this fraction of the estimate
    min_delay: float             # never poll sooner than this after the previous poll
    interval: float              # the steady interval
    overdue_interval: float      # the interval once a task runs past twice its estimate

    def first_delay(self, estimated: float | None) -> float:
        return max(self.min_delay, self.quiet_fraction * (estimated or self.default_estimate))

    def next_delay(self, *, elapsed: float, estimated: float | None, progress: int) -> float:
        """Seconds until the next poll, `elapsed` seconds after the task was accepted."""
        estimate = estimated or self.default_estimate
        if elapsed > 2 * estimate:
            return self.overdue_interval
        delay = self.interval
        if 0 < progress < 100:
            # Progress rises roughly linearly: predict the finish and be there when it happens.
            predicted_remaining = elapsed * (100 - progress) / progress
            delay = min(delay, predicted_remaining)
        return max(self.min_delay, delay)


IMAGE_POLLING = PollPolicy(
    default_estimate=30, quiet_fraction=0.5, min_delay=2, interval=4, overdue_interval=8
)
VIDEO_POLLING = PollPolicy(
    default_estimate=120, quiet_fraction=0.5, min_delay=5, interval=10, overdue_interval=20
)
