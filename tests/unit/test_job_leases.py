"""Job leases (bot/jobs/store.py), on SQLite and on PostgreSQL: two JobStores on one database act
as two processes. A job out of the line is held by exactly one of them; a lapsed lease can be
taken over; the process that lost it (a zombie) finds every write refused and the new owner's
row untouched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.clock import ScaledClock
from bot.db import Database
from bot.jobs.store import JobAlreadyFinished, JobKind, JobState, JobStore, LeaseLost
from bot.units import to_millis

LEASE_SECONDS = 30
GUILD, ALICE = 1001, 42


@pytest.fixture
def clock():
    # Real time: a lease lapses only when a test moves the clock past it.
    return ScaledClock(speed=1, start=datetime(2026, 11, 21, 12, 0, tzinfo=UTC))


@pytest.fixture
async def second_db(database_target):
    """The same database opened again, as a second process would."""
    database = await Database.open(database_target)
    yield database
    await database.close()


@pytest.fixture
def first(db, clock):
    return JobStore(db, clock, owner="first", lease_seconds=LEASE_SECONDS)


@pytest.fixture
def second(second_db, clock):
    return JobStore(second_db, clock, owner="second", lease_seconds=LEASE_SECONDS)


async def new_job(db: Database, store: JobStore, *, interaction_id: int | None = None) -> int:
    async with db.transaction() as tx:
        return await store.create(tx, kind=JobKind.IMAGE, guild_id=GUILD, channel_id=5, user_id=ALICE,
                                  interaction_id=interaction_id, request={"prompt": "a fox"})


async def claim(db: Database, store: JobStore, job_id: int):
    async with db.transaction() as tx:
        return await store.claim_queued(tx, job_id, callback_token=None)


async def running_job(db, first) -> int:
    job_id = await new_job(db, first)
    assert await claim(db, first, job_id) is not None
    await first.mark_running(job_id, task_id=f"task-{job_id}", estimated_seconds=30)
    return job_id


async def test_a_waiting_job_is_claimed_by_one_process_only(db, second_db, first, second):
    job_id = await new_job(db, first)

    job = await claim(db, first, job_id)
    assert job is not None and job.state is JobState.SUBMITTING and job.lease_owner == "first"
    assert await claim(second_db, second, job_id) is None
    assert first.leases_held == (job_id,) and second.leases_held == ()


async def test_a_live_lease_cannot_be_taken_over(db, first, second):
    job_id = await running_job(db, first)

    assert await second.expired_leases() == []
    assert await second.take_over(job_id) is None
    assert (await second.get(job_id)).lease_owner == "first"


async def test_a_lapsed_lease_is_taken_over_and_the_zombie_cannot_write(db, first, second, clock):
    job_id = await running_job(db, first)
    clock.advance(LEASE_SECONDS + 1)  # the first process stalled: it renewed nothing

    assert await second.expired_leases() == [job_id]
    taken = await second.take_over(job_id)
    assert taken is not None and taken.state is JobState.RUNNING and taken.task_id == f"task-{job_id}"
    assert taken.lease_owner == "second"

    # The zombie wakes up and carries on where it was: every write is refused...
    with pytest.raises(LeaseLost):
        await first.mark_downloading(job_id, result_urls=["https://files.example/zombie.png"])
    with pytest.raises(LeaseLost):
        await first.set_message(job_id, 999)
    # ...and the new owner's row is as it left it.
    row = await second.get(job_id)
    assert (row.state, row.result_urls, row.message_id, row.lease_owner) == (
        JobState.RUNNING, [], None, "second")
    await second.mark_downloading(job_id, result_urls=["https://files.example/real.png"])
    assert (await second.get(job_id)).result_urls == ["https://files.example/real.png"]


async def test_a_zombie_cannot_end_a_job_it_lost(db, first, second, clock):
    job_id = await running_job(db, first)
    clock.advance(LEASE_SECONDS + 1)
    assert await second.take_over(job_id) is not None

    async with db.transaction() as tx:
        with pytest.raises(LeaseLost):
            await first.mark_failed(tx, job_id, code="late", message="the zombie gave up")
    assert (await second.get(job_id)).state is JobState.RUNNING


async def test_renewing_keeps_a_lease_and_reports_the_ones_taken(db, first, second, clock):
    kept = await running_job(db, first)
    lost = await running_job(db, first)
    clock.advance(LEASE_SECONDS + 1)
    assert await second.take_over(lost) is not None

    assert await first.renew_leases() == {lost}
    assert first.leases_held == (kept,)
    clock.advance(LEASE_SECONDS - 1)  # renewed just now: still live
    assert await second.expired_leases() == []
    assert await second.take_over(kept) is None


async def test_a_process_knows_by_its_own_clock_when_its_lease_lapsed(db, first, clock):
    job_id = await running_job(db, first)
    assert not first.lease_lapsed(job_id)

    clock.advance(LEASE_SECONDS + 1)  # stalled: it could not renew in time
    # Processes sharing a database must renew; one on its own file holds its jobs for good.
    assert first.lease_lapsed(job_id) is db.shared
    assert await first.renew_leases() == set()  # nobody took it meanwhile: it is still its own
    assert not first.lease_lapsed(job_id)


async def test_a_waiting_job_stays_its_own_process_s_while_that_process_renews(db, first, second, clock):
    job_id = await new_job(db, first)
    waiting = await second.get(job_id)
    # Claimed without a token: the process that holds the command starts it when its turn comes.
    assert (waiting.state, waiting.lease_owner, waiting.lease_token) == (JobState.QUEUED, "first", None)
    assert waiting.lease_expires_at == waiting.created_at + LEASE_SECONDS * 1000

    clock.advance(LEASE_SECONDS - 1)
    await first.renew_leases()
    assert (await second.get(job_id)).lease_expires_at >= to_millis(clock.now()) + (LEASE_SECONDS - 1) * 1000
    await first.give_up_leases()  # stopping: any process may start it now
    assert (await second.get(job_id)).lease_expires_at == 0


async def test_leases_given_up_at_shutdown_are_taken_at_once(db, first, second):
    job_id = await running_job(db, first)

    assert await first.give_up_leases() == 1
    assert await second.expired_leases() == [job_id]
    assert (await second.take_over(job_id)).lease_owner == "second"


async def test_a_finished_job_holds_no_lease(db, first, second, clock):
    job_id = await running_job(db, first)
    async with db.transaction() as tx:
        await first.mark_done(tx, job_id)

    row = await second.get(job_id)
    assert (row.state, row.lease_owner, row.lease_token) == (JobState.DONE, None, None)
    clock.advance(LEASE_SECONDS + 1)
    assert await second.expired_leases() == []
    assert first.leases_held == ()


async def test_an_operator_ends_a_job_whoever_holds_it(db, first, second):
    job_id = await running_job(db, first)

    async with db.transaction() as tx:
        await second.mark_failed(tx, job_id, code="refunded", message="by an operator", overrule_lease=True)
    assert (await second.get(job_id)).state is JobState.FAILED
    # The holder's next step finds the job ended: it stops, and never overwrites the outcome.
    with pytest.raises(JobAlreadyFinished):
        await first.mark_downloading(job_id, result_urls=["https://files.example/late.png"])
    assert (await second.get(job_id)).result_urls == []


async def test_an_unacknowledged_command_waits_and_is_given_up_on(db, first, second, clock):
    job_id = await new_job(db, first, interaction_id=77)
    assert (await first.get(job_id)).acknowledged_at is None
    assert await first.unacknowledged_before(10**15) == [job_id]

    async with db.transaction() as tx:
        await second.mark_failed(tx, job_id, code="not_acknowledged", message="never answered",
                                 only_unacknowledged=True)
    # The command's process comes back to answer it: too late, the job must not run.
    assert await first.acknowledge(job_id, 555) is False
    assert (await first.get(job_id)).state is JobState.FAILED


async def test_an_acknowledged_command_is_never_given_up_on(db, first, second):
    job_id = await new_job(db, first, interaction_id=77)
    assert await first.acknowledge(job_id, 555) is True

    assert await second.unacknowledged_before(10**15) == []
    async with db.transaction() as tx:
        with pytest.raises(JobAlreadyFinished):
            await second.mark_failed(tx, job_id, code="not_acknowledged", message="never answered",
                                     only_unacknowledged=True)
    row = await first.get(job_id)
    assert (row.state, row.message_id) == (JobState.QUEUED, 555)


async def test_a_job_without_a_command_is_acknowledged_from_the_start(db, first):
    job_id = await new_job(db, first, interaction_id=None)

    assert (await first.get(job_id)).acknowledged_at is not None
    assert await first.unacknowledged_before(10**15) == []
