"""Moderator quotas at the ledger: how allowances combine, and that every limit holds atomically
and takes effect at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.clock import ScaledClock
from bot.credits import (
    BotBudgetExhausted,
    CreditLedger,
    GuildBudgetExhausted,
    InsufficientCredits,
    MemberBlocked,
    TooManyJobs,
)
from bot.jobs.store import JobKind, JobStore
from bot.periods import Period
from bot.quotas import QuotaDefaults, QuotaStore
from bot.units import to_milli

GUILD, OTHER_GUILD = 1001, 1002
ALICE, BOB = 42, 43
ARTISTS, PATRONS = 501, 502
MOD = 9


@pytest.fixture
def clock():
    # Saturday 2026-11-21 12:00 UTC: the week ends Monday 2026-11-23 00:00.
    return ScaledClock(speed=1, start=datetime(2026, 11, 21, 12, 0, tzinfo=UTC))


@pytest.fixture
def quotas(db, clock):
    return QuotaStore(db, clock, QuotaDefaults(to_milli(20), Period.DAY, max_concurrent_jobs=2))


@pytest.fixture
def ledger(db, clock, quotas):
    return CreditLedger(db, clock, quotas)


@pytest.fixture
def store(db, clock):
    return JobStore(db, clock)


async def job(db, store, user=ALICE, guild=GUILD) -> int:
    async with db.transaction() as tx:
        return await store.create(tx, kind=JobKind.IMAGE, guild_id=guild, channel_id=5,
                                  user_id=user, interaction_id=None, request={})


async def reserve(db, ledger, store, credits, user=ALICE, guild=GUILD, roles=()):
    job_id = await job(db, store, user, guild)
    async with db.transaction() as tx:
        await ledger.reserve(tx, guild_id=guild, user_id=user, job_id=job_id,
                             amount=to_milli(credits), role_ids=roles)
    return job_id


async def settle(db, ledger, job_id, credits):
    async with db.transaction() as tx:
        await ledger.settle(tx, job_id=job_id, amount=to_milli(credits))


async def configure(db, quotas, guild=GUILD, **columns):
    async with db.transaction() as tx:
        await quotas.update_guild(tx, guild, **columns)


async def test_hundred_concurrent_reservations_never_exceed_the_allowance(db, ledger, quotas, store):
    await configure(db, quotas, default_allowance=to_milli(50), max_concurrent_jobs=1000)
    jobs = [await job(db, store) for _ in range(100)]

    async def attempt(job_id):
        async with db.transaction() as tx:
            await ledger.reserve(tx, guild_id=GUILD, user_id=ALICE, job_id=job_id, amount=to_milli(2))

    outcomes = await asyncio.gather(*(attempt(j) for j in jobs), return_exceptions=True)
    assert sum(o is None for o in outcomes) == 25
    assert all(isinstance(o, InsufficientCredits) for o in outcomes if o is not None)
    balance = await ledger.balance(GUILD, ALICE)
    assert (balance.held, balance.remaining) == (to_milli(50), 0)


async def test_roles_and_a_personal_allowance_combine_as_documented(db, ledger, quotas):
    async with db.transaction() as tx:
        await quotas.set_role_allowance(tx, GUILD, ARTISTS, to_milli(50))
        await quotas.set_role_allowance(tx, GUILD, PATRONS, to_milli(30))
    # No role: the server default.
    balance = await ledger.balance(GUILD, ALICE)
    assert (balance.allowance.amount, balance.allowance.source) == (to_milli(20), "default")
    # Several roles: the highest.
    balance = await ledger.balance(GUILD, ALICE, [PATRONS, ARTISTS])
    assert (balance.allowance.amount, balance.allowance.role_id) == (to_milli(50), ARTISTS)
    # A role below the default does not lower it.
    async with db.transaction() as tx:
        await quotas.set_role_allowance(tx, GUILD, PATRONS, to_milli(5))
    assert (await ledger.balance(GUILD, ALICE, [PATRONS])).allowance.amount == to_milli(20)
    # A personal allowance wins outright, even when lower than the roles'.
    async with db.transaction() as tx:
        await quotas.update_member(tx, GUILD, ALICE, allowance=to_milli(10))
    balance = await ledger.balance(GUILD, ALICE, [ARTISTS])
    assert (balance.allowance.amount, balance.allowance.source) == (to_milli(10), "personal")
    # Removing it brings the roles back.
    async with db.transaction() as tx:
        await quotas.update_member(tx, GUILD, ALICE, allowance=None)
    assert (await ledger.balance(GUILD, ALICE, [ARTISTS])).allowance.amount == to_milli(50)
    # A grant adds on top of whatever applies, for this period.
    async with db.transaction() as tx:
        await ledger.grant(tx, guild_id=GUILD, user_id=ALICE, amount=to_milli(7), reason="prize", actor_id=MOD)
    assert (await ledger.balance(GUILD, ALICE, [ARTISTS])).remaining == to_milli(57)


async def test_a_weekly_rollover_restores_the_allowance_and_keeps_holds_in_flight(db, ledger, quotas, store, clock):
    await configure(db, quotas, period=Period.WEEK, default_allowance=to_milli(30))
    spent = await reserve(db, ledger, store, 20)
    await settle(db, ledger, spent, 20)
    running = await reserve(db, ledger, store, 6)
    balance = await ledger.balance(GUILD, ALICE)
    assert (balance.remaining, balance.refills_at) == (to_milli(4), datetime(2026, 11, 23, tzinfo=UTC))

    clock.advance(36 * 3600)  # Monday 00:00 has passed
    balance = await ledger.balance(GUILD, ALICE)
    assert (balance.spent, balance.held, balance.remaining) == (0, to_milli(6), to_milli(24))
    # The job that was running across the boundary is settled in the new week, exactly once.
    await settle(db, ledger, running, 6)
    balance = await ledger.balance(GUILD, ALICE)
    assert (balance.spent, balance.held, balance.remaining) == (to_milli(6), 0, to_milli(24))


async def test_a_grant_takes_effect_at_once(db, ledger, store):
    await reserve(db, ledger, store, 20)
    with pytest.raises(InsufficientCredits):
        await reserve(db, ledger, store, 2)
    async with db.transaction() as tx:
        await ledger.grant(tx, guild_id=GUILD, user_id=ALICE, amount=to_milli(2), reason="thanks", actor_id=MOD)
    await reserve(db, ledger, store, 2)  # now it fits
    async with db.transaction() as tx:
        await ledger.grant(tx, guild_id=GUILD, user_id=BOB, amount=to_milli(-15), reason="abuse", actor_id=MOD)
    assert (await ledger.balance(GUILD, BOB)).remaining == to_milli(5)


async def test_a_block_takes_effect_at_once_and_an_unblock_too(db, ledger, quotas, store):
    async with db.transaction() as tx:
        await quotas.update_member(tx, GUILD, ALICE, blocked=True, block_reason="spam")
    with pytest.raises(MemberBlocked) as refused:
        await reserve(db, ledger, store, 2)
    assert str(refused.value) == "A moderator has blocked you from generating in this server (spam)."
    await reserve(db, ledger, store, 2, user=BOB)  # others are not affected
    async with db.transaction() as tx:
        await quotas.update_member(tx, GUILD, ALICE, blocked=False, block_reason=None)
    await reserve(db, ledger, store, 2)


async def test_the_guild_budget_stops_everyone_once_spent(db, ledger, quotas, store):
    await configure(db, quotas, budget=to_milli(30))
    first = await reserve(db, ledger, store, 18, user=ALICE)
    with pytest.raises(GuildBudgetExhausted) as refused:
        await reserve(db, ledger, store, 14, user=BOB)  # 18 held + 14 > 30
    assert "This server has used its daily budget of 30 credits" in str(refused.value)
    await settle(db, ledger, first, 10)  # it produced less: 10 spent, nothing held
    await reserve(db, ledger, store, 14, user=BOB)
    await configure(db, quotas, budget=None)
    await reserve(db, ledger, store, 8, user=ALICE)


async def test_at_most_n_jobs_at_once_per_member(db, ledger, store):
    first = await reserve(db, ledger, store, 1)
    await reserve(db, ledger, store, 1)
    with pytest.raises(TooManyJobs) as refused:
        await reserve(db, ledger, store, 1)
    assert str(refused.value).startswith("You already have 2 jobs running")
    await reserve(db, ledger, store, 1, user=BOB)
    await settle(db, ledger, first, 1)
    await reserve(db, ledger, store, 1)


async def test_the_bot_wide_daily_budget_spans_every_guild(db, quotas, store, clock):
    ledger = CreditLedger(db, clock, quotas, bot_daily_budget=to_milli(25))
    await reserve(db, ledger, store, 15, guild=GUILD)
    with pytest.raises(BotBudgetExhausted):
        await reserve(db, ledger, store, 15, guild=OTHER_GUILD)
    await reserve(db, ledger, store, 10, guild=OTHER_GUILD)


async def test_one_guilds_settings_never_touch_another(db, ledger, quotas, store):
    await configure(db, quotas, default_allowance=to_milli(100), budget=to_milli(5), period=Period.MONTH)
    async with db.transaction() as tx:
        await quotas.set_role_allowance(tx, GUILD, ARTISTS, to_milli(500))
        await quotas.update_member(tx, GUILD, ALICE, blocked=True)
        await ledger.grant(tx, guild_id=GUILD, user_id=ALICE, amount=to_milli(50), reason="x", actor_id=MOD)
    other = await ledger.balance(OTHER_GUILD, ALICE, [ARTISTS])
    assert (other.allowance.amount, other.granted, other.period, other.blocked) == (
        to_milli(20), 0, Period.DAY, False)
    await reserve(db, ledger, store, 20, guild=OTHER_GUILD)  # no budget, no block there
