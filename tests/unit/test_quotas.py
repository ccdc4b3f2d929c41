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
    NeverFits,
    ServerCeilingReached,
    TooManyJobs,
)
from bot.jobs.store import JobKind, JobStore
from bot.periods import Period
from bot.quotas import QuotaDefaults, QuotaStore
from bot.requests import InvalidRequest
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


async def test_hundred_concurrent_reservations_never_exceed_the_allowance(db, clock, store):
    # The operator's defaults: moderators may let a member run at most MAX_JOBS_LIMIT jobs at once.
    ledger = CreditLedger(db, clock, QuotaStore(db, clock, QuotaDefaults(to_milli(50), Period.DAY,
                                                                         max_concurrent_jobs=1000)))
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
    await quotas.set_role_allowance(GUILD, MOD, ARTISTS, to_milli(50))
    await quotas.set_role_allowance(GUILD, MOD, PATRONS, to_milli(30))
    # No role: the server default.
    balance = await ledger.balance(GUILD, ALICE)
    assert (balance.allowance.amount, balance.allowance.source) == (to_milli(20), "default")
    # Several roles: the highest.
    balance = await ledger.balance(GUILD, ALICE, [PATRONS, ARTISTS])
    assert (balance.allowance.amount, balance.allowance.role_id) == (to_milli(50), ARTISTS)
    # A role below the default does not lower it.
    await quotas.set_role_allowance(GUILD, MOD, PATRONS, to_milli(5))
    assert (await ledger.balance(GUILD, ALICE, [PATRONS])).allowance.amount == to_milli(20)
    # A personal allowance wins outright, even when lower than the roles'.
    await quotas.set_member_allowance(GUILD, MOD, ALICE, to_milli(10))
    balance = await ledger.balance(GUILD, ALICE, [ARTISTS])
    assert (balance.allowance.amount, balance.allowance.source) == (to_milli(10), "personal")
    # Removing it brings the roles back.
    await quotas.set_member_allowance(GUILD, MOD, ALICE, None)
    assert (await ledger.balance(GUILD, ALICE, [ARTISTS])).allowance.amount == to_milli(50)
    # A grant adds on top of whatever applies, for this period.
    await ledger.grant(guild_id=GUILD, user_id=ALICE, amount=to_milli(7), reason="prize", actor_id=MOD)
    assert (await ledger.balance(GUILD, ALICE, [ARTISTS])).remaining == to_milli(57)


async def test_a_weekly_rollover_restores_the_allowance_and_keeps_holds_in_flight(db, ledger, quotas, store, clock):
    await quotas.set_default(GUILD, MOD, to_milli(30), period=Period.WEEK)
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
    await ledger.grant(guild_id=GUILD, user_id=ALICE, amount=to_milli(2), reason="thanks", actor_id=MOD)
    await reserve(db, ledger, store, 2)  # now it fits
    await ledger.grant(guild_id=GUILD, user_id=BOB, amount=to_milli(-15), reason="abuse", actor_id=MOD)
    assert (await ledger.balance(GUILD, BOB)).remaining == to_milli(5)


async def test_a_block_takes_effect_at_once_and_an_unblock_too(db, ledger, quotas, store):
    await quotas.block(GUILD, MOD, ALICE, "spam")
    with pytest.raises(MemberBlocked) as refused:
        await reserve(db, ledger, store, 2)
    assert str(refused.value) == "A moderator has blocked you from generating in this server (spam)."
    await reserve(db, ledger, store, 2, user=BOB)  # others are not affected
    await quotas.unblock(GUILD, MOD, ALICE)
    await reserve(db, ledger, store, 2)


async def test_the_guild_budget_stops_everyone_once_spent(db, ledger, quotas, store):
    await quotas.set_budget(GUILD, MOD, to_milli(30))
    first = await reserve(db, ledger, store, 18, user=ALICE)
    with pytest.raises(GuildBudgetExhausted) as refused:
        await reserve(db, ledger, store, 14, user=BOB)  # 18 held + 14 > 30
    assert "This server has used its daily budget of 30 credits" in str(refused.value)
    await settle(db, ledger, first, 10)  # it produced less: 10 spent, nothing held
    await reserve(db, ledger, store, 14, user=BOB)
    await quotas.set_budget(GUILD, MOD, None)
    await reserve(db, ledger, store, 8, user=ALICE)


async def test_a_member_holds_at_most_their_running_jobs_plus_their_places_in_line(db, clock, store):
    # Two may run at once and one more may wait: the fourth is refused, naming both numbers.
    quotas = QuotaStore(db, clock, QuotaDefaults(to_milli(20), Period.DAY, max_concurrent_jobs=2,
                                                 max_waiting_jobs=1))
    ledger = CreditLedger(db, clock, quotas)
    first = await reserve(db, ledger, store, 1)
    await reserve(db, ledger, store, 1)
    await reserve(db, ledger, store, 1)
    with pytest.raises(TooManyJobs) as refused:
        await reserve(db, ledger, store, 1)
    assert str(refused.value) == (
        "You already have 3 jobs running or waiting in line here, the most this server allows: "
        "2 at once and 1 more waiting. Wait for one to finish.")
    await reserve(db, ledger, store, 1, user=BOB)
    await settle(db, ledger, first, 1)
    await reserve(db, ledger, store, 1)


async def test_a_reservation_says_how_many_of_the_members_jobs_may_run_at_once(db, ledger, quotas, store):
    await quotas.set_default(GUILD, MOD, to_milli(20), max_jobs=3)
    job_id = await job(db, store)
    async with db.transaction() as tx:
        balance = await ledger.reserve(tx, guild_id=GUILD, user_id=ALICE, job_id=job_id, amount=to_milli(1))
    assert balance.max_running_jobs == 3
    assert await ledger.running_limit(GUILD) == 3 and await ledger.running_limit(OTHER_GUILD) == 2


async def test_the_bot_wide_daily_budget_spans_every_guild(db, quotas, store, clock):
    ledger = CreditLedger(db, clock, quotas, bot_daily_budget=to_milli(25))
    await reserve(db, ledger, store, 15, guild=GUILD)
    with pytest.raises(BotBudgetExhausted):
        await reserve(db, ledger, store, 15, guild=OTHER_GUILD)
    await reserve(db, ledger, store, 10, guild=OTHER_GUILD)


async def test_one_guilds_settings_never_touch_another(db, ledger, quotas, store):
    await quotas.set_default(GUILD, MOD, to_milli(100), period=Period.MONTH)
    await quotas.set_budget(GUILD, MOD, to_milli(5))
    await quotas.set_role_allowance(GUILD, MOD, ARTISTS, to_milli(500))
    await quotas.block(GUILD, MOD, ALICE, None)
    await ledger.grant(guild_id=GUILD, user_id=ALICE, amount=to_milli(50), reason="x", actor_id=MOD)
    other = await ledger.balance(OTHER_GUILD, ALICE, [ARTISTS])
    assert (other.allowance.amount, other.granted, other.period, other.blocked) == (
        to_milli(20), 0, Period.DAY, False)
    await reserve(db, ledger, store, 20, guild=OTHER_GUILD)  # no budget, no block there


# -- the operator's ceilings, and limits a job can never fit in --------------------------------------


def ceiling_ledger(db, clock, *, member=100, server=60, bot=None, allowance=100):
    quotas = QuotaStore(db, clock, QuotaDefaults(
        to_milli(allowance), Period.DAY, 2, member_ceiling_per_day=None if member is None else to_milli(member),
        server_ceiling_per_day=None if server is None else to_milli(server)))
    return quotas, CreditLedger(db, clock, quotas, bot_daily_budget=None if bot is None else to_milli(bot))


async def test_a_job_dearer_than_the_whole_allowance_names_the_commands_that_raise_it(db, ledger, store):
    with pytest.raises(NeverFits) as refused:
        await reserve(db, ledger, store, 25.5)  # a default video against a 20-credit day
    assert str(refused.value) == (
        "This needs 25.5 credits, more than your whole allowance here (20 credits per day), so it can "
        "never fit. A moderator can raise allowances with /quota set-default (everyone) or "
        "/quota set-user (one member).")
    # Within the allowance, but more than what is left: the usual answer, with the refill.
    await reserve(db, ledger, store, 15)
    with pytest.raises(InsufficientCredits):
        await reserve(db, ledger, store, 10)


async def test_the_member_ceiling_caps_any_allowance_and_grant(db, clock, store):
    # Set before the operator lowered the ceiling (so no ceiling refused them then).
    before_quotas, before_ledger = ceiling_ledger(db, clock, member=None, server=None)
    await before_quotas.set_default(GUILD, MOD, to_milli(500))
    await before_ledger.grant(guild_id=GUILD, user_id=ALICE, amount=to_milli(50), reason="x", actor_id=MOD)
    quotas, ledger = ceiling_ledger(db, clock, member=100, server=10_000)
    balance = await ledger.balance(GUILD, ALICE)
    assert (balance.total, balance.remaining, balance.capped_by_operator) == (to_milli(100), to_milli(100), True)
    with pytest.raises(NeverFits) as refused:
        await reserve(db, ledger, store, 101)
    assert str(refused.value) == ("This needs 101 credits, more than the bot's operator lets any server give "
                                  "one member (100 credits per day).")
    await reserve(db, ledger, store, 100)


async def test_moderators_cannot_set_more_than_the_ceilings(db, clock):
    quotas, _ = ceiling_ledger(db, clock, member=100, server=1000)
    quotas.check_member_allowance("amount", to_milli(100), Period.DAY)
    quotas.check_member_allowance("amount", to_milli(700), Period.WEEK)  # 7 days of 100
    with pytest.raises(InvalidRequest) as refused:
        quotas.check_member_allowance("amount", to_milli(1_000_000), Period.DAY)
    assert str(refused.value) == ("amount 1000000: the bot's operator lets a server give one member at most "
                                  "100 credits per day (100 a day)")
    with pytest.raises(InvalidRequest) as refused:
        quotas.check_member_allowance("amount", to_milli(3101), Period.MONTH)
    assert "at most 3100 credits per month (100 a day)" in str(refused.value)
    with pytest.raises(InvalidRequest) as refused:
        quotas.check_budget(to_milli(7001), Period.WEEK)
    assert str(refused.value) == ("amount 7001: the bot's operator lets one server spend at most 7000 credits "
                                  "per week (1000 a day)")
    quotas.check_grant(to_milli(80), to_milli(100), Period.DAY)
    quotas.check_grant(to_milli(-500), to_milli(900), Period.DAY)  # taking away is always allowed
    with pytest.raises(InvalidRequest) as refused:
        quotas.check_grant(to_milli(81), to_milli(101), Period.DAY)
    assert "the member would have 101 credits this period" in str(refused.value)


async def test_the_server_ceiling_stops_one_guild_a_day_and_no_other(db, clock, store):
    quotas, ledger = ceiling_ledger(db, clock, member=100, server=30)
    await reserve(db, ledger, store, 20, user=ALICE)
    with pytest.raises(ServerCeilingReached) as refused:
        await reserve(db, ledger, store, 15, user=BOB)  # 20 held + 15 > 30 for the guild today
    assert str(refused.value) == ("This server has reached 30 credits today (spent, or held by jobs under way), "
                                  "the most the bot's operator lets one server spend per day. Generation resumes "
                                  "when it resets.")
    assert refused.value.resets_at == datetime(2026, 11, 22, tzinfo=UTC)
    await reserve(db, ledger, store, 15, user=BOB, guild=OTHER_GUILD)
    with pytest.raises(NeverFits) as refused:
        await reserve(db, ledger, store, 31, user=BOB, guild=OTHER_GUILD)
    assert "more than the bot's operator lets one server spend per day (30 credits)" in str(refused.value)


async def test_budgets_smaller_than_a_job_say_so(db, clock, store):
    quotas, ledger = ceiling_ledger(db, clock, member=100, server=1000, bot=25)
    await quotas.set_budget(GUILD, MOD, to_milli(10))
    with pytest.raises(NeverFits) as refused:
        await reserve(db, ledger, store, 12)
    assert str(refused.value) == ("This needs 12 credits, more than this server's whole daily budget (10 credits). "
                                  "A moderator can raise it with /quota budget.")
    with pytest.raises(NeverFits) as refused:
        await reserve(db, ledger, store, 26, guild=OTHER_GUILD)
    assert "more than the bot's operator lets the whole bot spend per day" in str(refused.value)


async def test_a_settlement_never_exceeds_its_reservation(db, ledger, store):
    job_id = await reserve(db, ledger, store, 2)
    async with db.transaction() as tx:
        charged = await ledger.settle(tx, job_id=job_id, amount=to_milli(50))
    assert charged == to_milli(2)
    balance = await ledger.balance(GUILD, ALICE)
    assert (balance.spent, balance.held, balance.remaining) == (to_milli(2), 0, to_milli(18))


# -- moderators' changes: checked, made and audited together --------------------------------------


async def audit_rows(db) -> list[tuple]:
    rows = await db.fetchall(
        "SELECT guild_id, actor_id, action, target_user_id, target_role_id, details FROM audit_log ORDER BY id")
    return [tuple(row) for row in rows]


async def test_each_change_returns_the_settings_after_it_and_writes_its_audit_row(db, quotas):
    settings = await quotas.set_default(GUILD, MOD, to_milli(30), period=Period.WEEK, max_jobs=4)
    assert (settings.default_allowance, settings.period, settings.max_concurrent_jobs) == (
        to_milli(30), Period.WEEK, 4)
    # Leaving the period and the job limit out keeps them.
    settings = await quotas.set_default(GUILD, MOD, to_milli(35))
    assert (settings.default_allowance, settings.period, settings.max_concurrent_jobs) == (
        to_milli(35), Period.WEEK, 4)
    assert (await quotas.set_budget(GUILD, MOD, to_milli(90))).budget == to_milli(90)
    assert (await quotas.set_role_allowance(GUILD, MOD, ARTISTS, to_milli(50))).period == Period.WEEK
    await quotas.set_member_allowance(GUILD, MOD, ALICE, to_milli(10))
    await quotas.block(GUILD, MOD, BOB, "spam")
    await quotas.set_moderator_role(GUILD, MOD, PATRONS)
    await quotas.set_log_channel(GUILD, MOD, 77)

    overview = await quotas.overview(GUILD)
    assert (overview.settings.budget, overview.settings.moderator_role_id, overview.settings.log_channel_id) == (
        to_milli(90), PATRONS, 77)
    assert overview.role_allowances == {ARTISTS: to_milli(50)}
    assert [(user, quota.allowance, quota.blocked, quota.block_reason)
            for user, quota in overview.member_overrides] == [(ALICE, to_milli(10), False, None),
                                                               (BOB, None, True, "spam")]
    assert await audit_rows(db) == [
        (GUILD, MOD, "set-default", None, None,
         '{"default_allowance": 30000, "period": "week", "max_concurrent_jobs": 4}'),
        (GUILD, MOD, "set-default", None, None, '{"default_allowance": 35000}'),
        (GUILD, MOD, "budget", None, None, '{"budget": 90000}'),
        (GUILD, MOD, "set-role", None, ARTISTS, '{"allowance": 50000}'),
        (GUILD, MOD, "set-user", ALICE, None, '{"allowance": 10000}'),
        (GUILD, MOD, "block", BOB, None, '{"blocked": true, "block_reason": "spam"}'),
        (GUILD, MOD, "moderator-role", None, None, f'{{"moderator_role_id": {PATRONS}}}'),
        (GUILD, MOD, "log-channel", None, None, '{"log_channel_id": 77}'),
    ]


async def test_changes_past_the_operators_ceilings_are_refused_and_write_nothing(db, clock):
    quotas, _ = ceiling_ledger(db, clock, member=100, server=1000)
    refusals = [
        (quotas.set_default(GUILD, MOD, to_milli(101)), "amount 101: the bot's operator lets a server give"),
        # The period checked is the one being set, not the current one.
        (quotas.set_default(GUILD, MOD, to_milli(701), period=Period.WEEK), "at most 700 credits per week"),
        (quotas.set_default(GUILD, MOD, to_milli(50), max_jobs=21), "max_jobs 21: must be between 1 and 20"),
        (quotas.set_role_allowance(GUILD, MOD, ARTISTS, to_milli(101)), "at most 100 credits per day"),
        (quotas.set_member_allowance(GUILD, MOD, ALICE, to_milli(101)), "at most 100 credits per day"),
        (quotas.set_budget(GUILD, MOD, to_milli(1001)), "spend at most 1000 credits per day"),
    ]
    for change, rule in refusals:
        with pytest.raises(InvalidRequest) as refused:
            await change
        assert rule in str(refused.value)
    for table in ("guild_settings", "role_allowances", "member_quotas", "audit_log"):
        assert await db.fetchall(f"SELECT * FROM {table}") == [], table

    # The guild's own period decides the ceiling of what is set within it.
    await quotas.set_default(GUILD, MOD, to_milli(700), period=Period.WEEK)
    await quotas.set_role_allowance(GUILD, MOD, ARTISTS, to_milli(700))
    await quotas.set_member_allowance(GUILD, MOD, ALICE, to_milli(700))
    await quotas.set_budget(GUILD, MOD, to_milli(7000))
    assert len(await audit_rows(db)) == 4


async def test_a_grant_returns_the_balance_after_it_with_its_ledger_and_audit_rows(db, ledger):
    balance = await ledger.grant(guild_id=GUILD, user_id=ALICE, amount=to_milli(5), reason="contest",
                                 actor_id=MOD, role_ids=[ARTISTS])
    assert (balance.granted, balance.remaining) == (to_milli(5), to_milli(25))
    [row] = await db.fetchall("SELECT user_id, kind, amount, reason, actor_id FROM ledger")
    assert tuple(row) == (ALICE, "grant", to_milli(5), "contest", MOD)
    assert await audit_rows(db) == [(GUILD, MOD, "grant", ALICE, None, '{"amount": 5000, "reason": "contest"}')]


async def test_a_grant_past_the_member_ceiling_is_refused_and_writes_nothing(db, clock):
    _, ledger = ceiling_ledger(db, clock, member=100, allowance=20)
    await ledger.grant(guild_id=GUILD, user_id=ALICE, amount=to_milli(80), reason="x", actor_id=MOD)
    with pytest.raises(InvalidRequest) as refused:
        await ledger.grant(guild_id=GUILD, user_id=ALICE, amount=to_milli(1), reason="y", actor_id=MOD)
    assert "the member would have 101 credits this period" in str(refused.value)
    # Taking away is always allowed.
    balance = await ledger.grant(guild_id=GUILD, user_id=ALICE, amount=to_milli(-30), reason="z", actor_id=MOD)
    assert balance.remaining == to_milli(70)
    assert [row["reason"] for row in await db.fetchall("SELECT reason FROM ledger ORDER BY id")] == ["x", "z"]
    assert [row[5] for row in await audit_rows(db)] == [
        '{"amount": 80000, "reason": "x"}', '{"amount": -30000, "reason": "z"}']
