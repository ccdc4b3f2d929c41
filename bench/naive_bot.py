"""The baseline the benchmark compares with: the same bot, but polling every task every 3 s from
the start, as a straightforward bot would (each poll's new percentage then costs one edit).

`python -m bench.naive_bot run` takes the same settings as `python -m bot run`.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from bot.__main__ import main as bot_main
from bot.app import WanBot
from bot.jobs.kinds import JobKindRules
from bot.jobs.store import JobKind

FIXED_INTERVAL = 3.0


class FixedPlan:
    """Every 3 s, whatever the task says; the prediction is only used for the ETA shown."""

    finish_expected = False

    def __init__(self, estimate: float) -> None:
        self._estimate = estimate

    def first_delay(self) -> float:
        return FIXED_INTERVAL

    def observe(self, elapsed: float, progress: int) -> None:
        pass

    def predicted_finish(self) -> float:
        return self._estimate

    def next_delay(self, elapsed: float) -> float:
        return FIXED_INTERVAL


class FixedPolicy:
    def __init__(self, default_estimate: float) -> None:
        self.default_estimate = default_estimate

    def plan(self, estimated: float | None, *, callbacks: bool = False) -> FixedPlan:
        return FixedPlan(estimated or self.default_estimate)


class NaiveBot(WanBot):
    def job_kinds(self) -> dict[JobKind, JobKindRules]:
        return {kind: replace(rules, polling=FixedPolicy(rules.polling.default_estimate))  # type: ignore[type-var]
                for kind, rules in super().job_kinds().items()}


if __name__ == "__main__":
    sys.exit(bot_main(bot_class=NaiveBot))
