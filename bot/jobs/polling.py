"""When to ask EvoLink about a task again: as few polls as possible, each one when it can tell
something new, and the last one just after the task finishes.

Each poll of an unfinished task makes EvoLink query its upstream provider and costs the bot a
request against rate limits, so a poll is only worth making when it can end the wait or sharpen
the guess of when the wait ends. A `PollPlan` keeps that guess for one task:

- before any progress is seen, the task ends around its `estimated_time`: the first poll comes
  after a quiet part of the estimate, when there is progress to read;
- once two polls have seen progress rise, the rate between them predicts the finish; a far
  prediction is refined by a poll on the way (progress is rarely linear, and a guess made near
  the end is much better), a near one is polled just after it;
- a task past its prediction is asked again at short, then growing intervals, with a hard floor
  and ceiling per kind.

In callback mode (PUBLIC_BASE_URL set) EvoLink says when a task ends, so the plan is only a slow
safety net in case a callback is lost.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PollPolicy:
    default_estimate: float    # seconds, when the API gives no estimated_time
    quiet_fraction: float      # the first poll comes after this fraction of the estimate
    min_delay: float           # never poll sooner than this after the previous poll
    max_delay: float           # never wait longer than this while the task should be running
    overdue_delay: float       # the interval once a task runs past twice its estimate
    safety_factor: float       # callback mode: the first safety poll, in estimates
    safety_delay: float        # callback mode: the interval of the safety polls after that
    finish_margin: float = 0.5     # poll this long after the predicted finish
    refine_within: float = 6.0     # a predicted finish farther than this gets a refining poll first
    refine_fraction: float = 0.7   # ... this far into the remaining time

    def plan(self, estimated: float | None, *, callbacks: bool = False) -> PollPlan:
        return PollPlan(self, estimated or self.default_estimate, callbacks=callbacks)


class PollPlan:
    """The polling schedule of one task. Times are seconds since EvoLink accepted the task."""

    def __init__(self, policy: PollPolicy, estimate: float, *, callbacks: bool) -> None:
        self._policy = policy
        self._estimate = estimate
        self._callbacks = callbacks
        # (elapsed, progress) of the last two polls that saw the task processing.
        self._samples: list[tuple[float, int]] = []
        # The next poll is planned just after the predicted finish: its answer should be the
        # result, so showing the progress read now would be an edit the result soon replaces.
        self.finish_expected = False

    def first_delay(self) -> float:
        policy = self._policy
        if self._callbacks:
            return policy.safety_factor * self._estimate
        return max(policy.min_delay, policy.quiet_fraction * self._estimate)

    def observe(self, elapsed: float, progress: int) -> None:
        """What a poll saw of an unfinished task."""
        if 0 < progress < 100 and (not self._samples or progress > self._samples[-1][1]):
            self._samples = [*self._samples[-1:], (elapsed, progress)]

    def predicted_finish(self) -> float:
        """When the task should complete: from the rate of progress between the last two polls
        that saw it rise; from one poll, halfway between the estimate and the straight line
        through it (the line is late: progress starts only after the task left EvoLink's queue);
        with no progress seen, the estimate."""
        if len(self._samples) == 2:
            (first_at, first), (last_at, last) = self._samples
            rate = (last - first) / (last_at - first_at) if last_at > first_at else 0.0
            if rate > 0:
                return last_at + (100 - last) / rate
        if self._samples:
            seen_at, seen = self._samples[-1]
            return (seen_at * 100 / seen + self._estimate) / 2
        return self._estimate

    def next_delay(self, elapsed: float) -> float:
        """Seconds from now (`elapsed`) until the next poll of a task still unfinished."""
        policy = self._policy
        self.finish_expected = False
        if self._callbacks:
            return policy.safety_delay
        if elapsed > 2 * self._estimate:
            return policy.overdue_delay
        remaining = self.predicted_finish() - elapsed
        if remaining <= 0:
            # Past the prediction: ask again soon, then less often the longer it runs over.
            delay = 0.2 * elapsed
        elif remaining <= policy.refine_within:
            delay = remaining + policy.finish_margin
            self.finish_expected = True
        else:
            delay = policy.refine_fraction * remaining
        return min(policy.max_delay, max(policy.min_delay, delay))


IMAGE_POLLING = PollPolicy(
    default_estimate=30, quiet_fraction=0.5, min_delay=2, max_delay=15, overdue_delay=10,
    safety_factor=1.5, safety_delay=30,
)
VIDEO_POLLING = PollPolicy(
    default_estimate=120, quiet_fraction=0.5, min_delay=2, max_delay=30, overdue_delay=20,
    safety_factor=1.5, safety_delay=60,
)
