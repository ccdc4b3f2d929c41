"""The poll schedule: quiet early, steady near the end, earlier when progress predicts it."""

from bot.jobs.polling import IMAGE_POLLING, VIDEO_POLLING


def test_no_poll_in_the_first_half_of_the_estimate():
    assert IMAGE_POLLING.first_delay(30) == 15
    assert VIDEO_POLLING.first_delay(120) == 60
    assert IMAGE_POLLING.first_delay(None) == 15   # the kind's default estimate
    assert IMAGE_POLLING.first_delay(1) == 2       # never sooner than the minimum


def test_steady_interval_then_slower_when_overdue():
    assert IMAGE_POLLING.next_delay(elapsed=16, estimated=30, progress=0) == 4
    assert IMAGE_POLLING.next_delay(elapsed=61, estimated=30, progress=95) == 8
    assert VIDEO_POLLING.next_delay(elapsed=70, estimated=120, progress=0) == 10


def test_progress_that_predicts_an_earlier_finish_brings_the_poll_forward():
    # 90% after 27 s: about 3 s left, so poll in 3 s rather than 4.
    assert IMAGE_POLLING.next_delay(elapsed=27, estimated=30, progress=90) == 3
    # Never below the minimum, however close the prediction.
    assert IMAGE_POLLING.next_delay(elapsed=20, estimated=30, progress=99) == 2


def test_schedule_for_a_typical_image_job_stays_small():
    """A 30 s task polled by this schedule needs a handful of polls, not one every 3 s."""
    elapsed, polls, progress = IMAGE_POLLING.first_delay(30), 0, 0
    while True:
        polls += 1
        progress = min(100, int(elapsed / 30 * 100))
        if progress >= 100:
            break
        elapsed += IMAGE_POLLING.next_delay(elapsed=elapsed, estimated=30, progress=progress)
    assert polls <= 6
    assert elapsed - 30 <= 4  # found done within one interval of finishing
