"""The ledger: reservations are atomic, closing is exactly-once, days roll over at UTC midnight."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.clock import ScaledClock
from bot.credits import CreditLedger, InsufficientCredits, JobCost, format_credits, to_milli
from bot.db import Database
from bot.jobs.store import JobKind, JobStore
from bot.periods import Period
from bot.quotas import QuotaDefaults, QuotaStore


def make_ledger(db, clock, allowance=20, max_jobs=1000, **kwargs) -> CreditLedger:
    quotas = QuotaStore(db, clock, QuotaDefaults(to_milli(allowance), Period.DAY, max_jobs))
    return CreditLedger(db, clock, quotas, **kwargs)

GUILD, OTHER_GUILD, USER = 1001, 1002, 42


async def new_job(db, store, user=USER, guild=GUILD) -> int:
    async with db.transaction() as tx:
        return await store.create(tx, kind=JobKind.IMAGE, guild_id=guild, channel_id=5,
                                  user_id=user, interaction_id=None, request={})


async def reserve(db, ledger, job_id, amount, user=USER, guild=GUILD):
    async with db.transaction() as tx:
        return await ledger.reserve(tx, guild_id=guild, user_id=user, job_id=job_id, amount=amount)


@pytest.fixture
def store(db, clock):
    return JobStore(db, clock)


@pytest.fixture
def ledger(db, clock):
    return make_ledger(db, clock)


async def test_fifty_concurrent_reservations_never_exceed_the_allowance(db, store, ledger):
    jobs = [await new_job(db, store) for _ in range(50)]
    outcomes = await asyncio.gather(
        *(reserve(db, ledger, job, to_milli(2)) for job in jobs), return_exceptions=True
    )
    granted = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, InsufficientCredits)]
    assert len(granted) == 10 and len(refused) == 40  # 20 credits / 2 each
    balance = await ledger.balance(GUILD, USER)
    assert (balance.held, balance.remaining) == (to_milli(20), 0)
    # A refused reservation wrote nothing: the ledger has exactly the ten holds.
    rows = await db.fetchall("SELECT kind, COUNT(*) AS n FROM ledger GROUP BY kind")
    assert [tuple(r) for r in rows] == [("reserve", 10)]


async def test_settle_charges_what_was_produced_and_only_once(db, store, ledger):
    job = await new_job(db, store)
    await reserve(db, ledger, job, to_milli(8))  # n=4 at 2 each
    async with db.transaction() as tx:
        assert await ledger.settle(tx, job_id=job, amount=to_milli(6)) == to_milli(6)  # 3 images
    async with db.transaction() as tx:
        assert await ledger.settle(tx, job_id=job, amount=to_milli(6)) is None
        assert await ledger.refund(tx, job_id=job, reason="late") is None
    balance = await ledger.balance(GUILD, USER)
    assert (balance.spent, balance.held, balance.remaining) == (to_milli(6), 0, to_milli(14))


async def test_refund_gives_the_reservation_back(db, store, ledger):
    job = await new_job(db, store)
    await reserve(db, ledger, job, to_milli(4))
    assert (await ledger.balance(GUILD, USER)).remaining == to_milli(16)
    async with db.transaction() as tx:
        assert await ledger.refund(tx, job_id=job, reason="content_policy_violation") == to_milli(4)
    assert (await ledger.balance(GUILD, USER)).remaining == to_milli(20)


async def test_a_jobs_cost_is_what_it_was_charged_or_given_back(db, store, ledger):
    settled, refunded, running, never_held = [await new_job(db, store) for _ in range(4)]
    for job in (settled, refunded, running):
        await reserve(db, ledger, job, to_milli(4))
    async with db.transaction() as tx:
        await ledger.settle(tx, job_id=settled, amount=to_milli(3))
        await ledger.refund(tx, job_id=refunded, reason="content_policy_violation")
    assert await ledger.job_costs([settled, refunded, running, never_held]) == {
        settled: JobCost(charged=to_milli(3)),
        refunded: JobCost(refunded=to_milli(4)),
        running: JobCost(),
        never_held: JobCost(),
    }
    assert await ledger.job_cost(settled) == JobCost(charged=to_milli(3))
    assert await ledger.job_cost(running) == JobCost()
    assert await ledger.job_costs([]) == {}


async def test_refusal_says_what_is_left_and_when_it_refills(db, store, ledger):
    first, second = await new_job(db, store), await new_job(db, store)
    await reserve(db, ledger, first, to_milli(18))
    with pytest.raises(InsufficientCredits) as refused:
        await reserve(db, ledger, second, to_milli(4))
    assert refused.value.needed == to_milli(4)
    assert refused.value.balance.remaining == to_milli(2)
    assert refused.value.balance.refills_at == datetime(2026, 11, 22, tzinfo=UTC)


async def test_guilds_are_separate_accounts(db, store, ledger):
    here, there = await new_job(db, store), await new_job(db, store, guild=OTHER_GUILD)
    await reserve(db, ledger, here, to_milli(20))
    await reserve(db, ledger, there, to_milli(20), guild=OTHER_GUILD)
    assert (await ledger.balance(OTHER_GUILD, USER)).remaining == 0
    assert (await ledger.balance(GUILD, USER + 1)).remaining == to_milli(20)


async def test_the_day_rolls_over_at_utc_midnight_and_holds_survive_it(db, store):
    clock = ScaledClock(speed=1, start=datetime(2026, 11, 21, 23, 59, 0, tzinfo=UTC))
    ledger = make_ledger(db, clock)
    spent_job, running_job = await new_job(db, store), await new_job(db, store)
    await reserve(db, ledger, spent_job, to_milli(10))
    async with db.transaction() as tx:
        await ledger.settle(tx, job_id=spent_job, amount=to_milli(10))
    await reserve(db, ledger, running_job, to_milli(6))
    assert (await ledger.balance(GUILD, USER)).remaining == to_milli(4)

    clock.advance(120)  # 00:01 the next day
    balance = await ledger.balance(GUILD, USER)
    # Yesterday's spending is forgotten; the job still running keeps its hold.
    assert (balance.spent, balance.held, balance.remaining) == (0, to_milli(6), to_milli(14))
    assert balance.refills_at == datetime(2026, 11, 23, tzinfo=UTC)


def test_credit_amounts_are_exact():
    assert to_milli(__import__("decimal").Decimal("1.5")) == 1500
    assert [format_credits(m) for m in (2000, 1500, 1250, 100, 0)] == ["2", "1.5", "1.25", "0.1", "0"]


async def test_two_connections_cannot_overspend_either(db, store, clock, database_target):
    """Two processes (e.g. two shard groups) share the database: each check-and-hold is atomic
    across connections (BEGIN IMMEDIATE; PostgreSQL's shared write lock), not only across coroutines."""
    second_db = await Database.open(database_target)
    try:
        ledgers = [make_ledger(d, clock) for d in (db, second_db)]
        jobs = [await new_job(db, store) for _ in range(50)]
        outcomes = await asyncio.gather(
            *(reserve((db, second_db)[i % 2], ledgers[i % 2], job, to_milli(2))
              for i, job in enumerate(jobs)),
            return_exceptions=True,
        )
        assert sum(not isinstance(o, Exception) for o in outcomes) == 10
        assert all(isinstance(o, InsufficientCredits) for o in outcomes if isinstance(o, Exception))
        assert (await ledgers[1].balance(GUILD, USER)).held == to_milli(20)
    finally:
        await second_db.close()


async def test_budgets_count_what_was_settled_before_the_daily_totals_existed(tmp_path, clock):
    """Migration 0007 fills the per-day totals from the ledger already there, so an upgraded
    bot's budgets still count today's spending."""
    from importlib import resources

    from yoyo import get_backend, read_migrations

    path = tmp_path / "old.db"
    backend = get_backend(f"sqlite:///{path}")
    with resources.as_file(resources.files("bot") / "migrations") as folder:
        migrations = read_migrations(str(folder))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < "0007")))
    today = int(datetime(2026, 11, 21, 9, 0, tzinfo=UTC).timestamp() * 1000)
    yesterday = today - 86_400_000
    rows = [(GUILD, today, 3000), (GUILD, today, 1500), (OTHER_GUILD, today, 2000), (GUILD, yesterday, 9000)]
    for guild, at, amount in rows:
        backend.connection.execute(
            "INSERT INTO ledger (guild_id, user_id, kind, amount, created_at) VALUES (?, ?, 'settle', ?, ?)",
            (guild, USER, amount, at))
    backend.connection.commit()
    backend.connection.close()

    db = await Database.open(path)
    try:
        ledger = make_ledger(db, clock)
        charged_today, _ = await ledger.bot_totals_today()
        _, guild_spent, _, _ = await ledger.guild_usage(GUILD)
        assert (charged_today, guild_spent) == (6500, 4500)
    finally:
        await db.close()
