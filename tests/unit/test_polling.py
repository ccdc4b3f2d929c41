"""The poll plan: quiet early, a refining poll on the way, the last one just after the finish."""

import math
import random

import pytest

from bot.evolink.fake import FakeTask
from bot.jobs.polling import IMAGE_POLLING, VIDEO_POLLING, PollPolicy


def test_the_first_poll_waits_out_half_of_the_estimate():
    assert IMAGE_POLLING.plan(30).first_delay() == 15
    assert VIDEO_POLLING.plan(120).first_delay() == 60
    assert IMAGE_POLLING.plan(None).first_delay() == 15  # the kind's default estimate
    assert IMAGE_POLLING.plan(1).first_delay() == 2  # never sooner than the minimum


def test_without_progress_the_estimate_is_the_prediction():
    plan = IMAGE_POLLING.plan(30)
    plan.observe(15, 0)  # still pending: nothing learnt
    assert plan.predicted_finish() == 30
    assert plan.next_delay(15) == pytest.approx(0.7 * 15)  # far: a refining poll on the way


def test_one_reading_is_weighed_against_the_estimate():
    plan = IMAGE_POLLING.plan(30)
    plan.observe(10, 50)  # the straight line says 20 s, the estimate 30 s
    assert plan.predicted_finish() == 25


def test_two_readings_predict_from_the_rate_of_progress():
    plan = IMAGE_POLLING.plan(30)
    plan.observe(10, 40)
    plan.observe(14, 60)  # 5 %/s: 40 % left is 8 s, so done at 22 s
    assert plan.predicted_finish() == 22
    assert plan.next_delay(14) == pytest.approx(0.7 * 8)  # 8 s away: refine first
    plan.observe(19.6, 88)  # still 5 %/s: 12 % left is 2.4 s, close enough to poll just after
    assert plan.next_delay(19.6) == pytest.approx(2.4 + 0.5)


def test_progress_that_does_not_rise_is_ignored():
    plan = IMAGE_POLLING.plan(30)
    plan.observe(10, 40)
    plan.observe(14, 40)
    assert plan.predicted_finish() == (10 * 100 / 40 + 30) / 2


def test_bounds_and_an_overdue_task():
    plan = IMAGE_POLLING.plan(30)
    plan.observe(20, 98)
    plan.observe(21, 99)  # due in one second: still no sooner than the minimum
    assert plan.next_delay(21) == IMAGE_POLLING.min_delay
    assert plan.next_delay(40) == pytest.approx(0.2 * 40)  # past the prediction: back off
    assert plan.next_delay(61) == IMAGE_POLLING.overdue_delay  # over twice the estimate
    assert VIDEO_POLLING.plan(600).next_delay(0) == VIDEO_POLLING.max_delay  # the ceiling


def test_callback_mode_polls_only_as_a_safety_net():
    plan = IMAGE_POLLING.plan(20, callbacks=True)
    assert plan.first_delay() == 30
    plan.observe(30, 90)
    assert plan.next_delay(30) == IMAGE_POLLING.safety_delay


def _simulate(policy: PollPolicy | None, estimate: float, tasks: int = 4000) -> tuple[float, float]:
    """Poll a crowd of fake tasks (durations spread by 30 % around the estimate, progress curves
    that rise faster or slower than a line): mean polls per task and the 95th percentile of the
    time between completion and the poll that saw it. `None` is a fixed 3 s schedule."""
    pick = random.Random(7)
    polls: list[int] = []
    late: list[float] = []
    for _ in range(tasks):
        task = FakeTask(id="t", kind="image", model="m", prompt="p", created=0, started_at=0.0,
                        duration=estimate * pick.uniform(0.7, 1.3), estimated_time=int(estimate),
                        credits_reserved=0, result_count=1,
                        progress_exponent=math.exp(pick.uniform(-0.3, 0.3)))
        plan = policy.plan(estimate) if policy else None
        now, count = (plan.first_delay() if plan else 3.0), 0
        while True:
            count += 1
            status, progress = task.state_at(now)
            if status == "completed":
                break
            if plan is None:
                now += 3.0
            else:
                plan.observe(now, progress)
                now += plan.next_delay(now)
        polls.append(count)
        late.append(now - task.ends_at)
    late.sort()
    return sum(polls) / len(polls), late[int(len(late) * 0.95)]


@pytest.mark.parametrize(("policy", "estimate"), [(IMAGE_POLLING, 20), (IMAGE_POLLING, 30),
                                                  (VIDEO_POLLING, 30), (VIDEO_POLLING, 120)])
def test_half_the_polls_of_a_fixed_three_second_schedule_and_no_later(policy, estimate):
    ours, our_late = _simulate(policy, estimate)
    fixed, fixed_late = _simulate(None, estimate)
    assert ours <= fixed / 2
    assert our_late <= fixed_late
