"""The waiting line's order: round-robin across guilds, then members, least recently served first."""

from __future__ import annotations

from bot.jobs.queue import FairQueue, QueuedJob


def ids(jobs: list[QueuedJob]) -> list[int]:
    return [job.job_id for job in jobs]


def test_one_member_keeps_arrival_order():
    queue = FairQueue()
    for job_id in (1, 2, 3):
        queue.add(QueuedJob(job_id, guild_id=10, user_id=100))
    assert ids(queue.order()) == [1, 2, 3]
    assert queue.positions() == {1: 1, 2: 2, 3: 3}


def test_members_of_a_guild_take_turns():
    queue = FairQueue()
    for job_id in range(1, 11):  # member A queues ten
        queue.add(QueuedJob(job_id, guild_id=10, user_id=100))
    queue.add(QueuedJob(11, guild_id=10, user_id=200))  # then member B queues one
    assert ids(queue.order())[:3] == [1, 11, 2]


def test_a_member_just_served_goes_after_one_never_served():
    queue = FairQueue()
    for job_id in range(1, 11):
        queue.add(QueuedJob(job_id, guild_id=10, user_id=100))
    assert queue.take_next(lambda job: True).job_id == 1  # A's first starts at once
    queue.add(QueuedJob(11, guild_id=10, user_id=200))    # B arrives while A's others wait
    assert queue.take_next(lambda job: True).job_id == 11
    assert queue.take_next(lambda job: True).job_id == 2
    assert queue.positions() == {job_id: job_id - 2 for job_id in range(3, 11)}


def test_guilds_take_turns_before_members():
    queue = FairQueue()
    # Guild 10 has three busy members; guild 20 one member, who arrived last.
    for job_id, user in ((1, 100), (2, 101), (3, 102), (4, 100)):
        queue.add(QueuedJob(job_id, guild_id=10, user_id=user))
    queue.add(QueuedJob(5, guild_id=20, user_id=300))
    assert ids(queue.order()) == [1, 5, 2, 3, 4]


def test_take_next_skips_members_who_may_not_start():
    queue = FairQueue()
    queue.add(QueuedJob(1, guild_id=10, user_id=100))
    queue.add(QueuedJob(2, guild_id=10, user_id=100))
    queue.add(QueuedJob(3, guild_id=10, user_id=200))
    taken = queue.take_next(lambda job: job.user_id != 100)  # 100 is at their in-flight limit
    assert taken is not None and taken.job_id == 3
    assert queue.take_next(lambda job: job.user_id != 100) is None
    assert ids(queue.order()) == [1, 2] and len(queue) == 2


def test_removed_jobs_leave_the_line():
    queue = FairQueue()
    queue.add(QueuedJob(1, guild_id=10, user_id=100))
    queue.add(QueuedJob(2, guild_id=10, user_id=200))
    assert queue.remove(1) and not queue.remove(1)
    assert 1 not in queue and 2 in queue
    assert queue.positions() == {2: 1}
