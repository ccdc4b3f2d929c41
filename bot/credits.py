"""Credits: per-member allowances per guild, atomic reservations, and the append-only ledger.

A job reserves its estimate before any paid call; the reservation is later settled (by what the
job really produced) or refunded, exactly once. A member's balance for the current period is:

    remaining = allowance + granted - spent - held

where `allowance` comes from the guild's quota settings (see bot/quotas.py), `spent` sums this
period's settlements, `granted` this period's grants and adjustments, and `held` the reservations
still open (whenever they were made: a job in flight across a period boundary keeps its hold until
it ends). Amounts are integer milli-credits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypedDict, cast

from bot import audit
from bot.audit import AuditAction
from bot.clock import Clock
from bot.db import Database, Transaction
from bot.errors import UserFacingError
from bot.i18n import CommandPath, Message
from bot.periods import Period
from bot.quotas import Allowance, GuildQuotaSettings, QuotaStore, effective_allowance
from bot.units import MILLI, format_credits, to_milli, to_millis

__all__ = [
    "MILLI", "Balance", "BotBudgetExhausted", "CreditLedger", "CreditObserver", "GuildBudgetExhausted",
    "InsufficientCredits", "JobCost", "MemberBlocked", "NeverFits", "ServerCeilingReached", "TooManyJobs",
    "credit_amount", "format_credits", "per_period", "period_adjective", "this_period", "to_milli",
]


# Words about periods and amounts, for sentences members read in their language.
def this_period(period: Period) -> Message:
    """'today', 'this week', 'this month'."""
    return Message(f"credits.this_period.{period.value}")


def period_adjective(period: Period) -> Message:
    """'daily', 'weekly', 'monthly'."""
    return Message(f"credits.period_adjective.{period.value}")


def per_period(period: Period) -> Message:
    """The period's name after 'per': 'day', 'week', 'month'."""
    return Message(f"credits.period_name.{period.value}")


def credit_amount(milli: int) -> Message:
    """'1 credit', '2.5 credits'."""
    return Message("credits.amount_one" if milli == MILLI else "credits.amount", amount=format_credits(milli))


@dataclass(frozen=True)
class Balance:
    allowance: Allowance
    granted: int
    spent: int
    held: int
    period: Period
    period_start: datetime
    refills_at: datetime
    running_jobs: int      # jobs holding credits: running, or waiting in line
    max_running_jobs: int  # how many of them may run at once; the rest wait in line
    blocked: bool = False
    block_reason: str | None = None
    max_waiting_jobs: int = 0  # how many more may wait in line behind those running
    ceiling: int | None = None  # the operator's most for one member this period

    @property
    def total(self) -> int:
        """What the member may spend this period: allowance and grants, within the operator's ceiling."""
        total = self.allowance.amount + self.granted
        return total if self.ceiling is None else min(total, self.ceiling)

    @property
    def capped_by_operator(self) -> bool:
        """The operator's ceiling, not the guild's settings, is what limits this member."""
        return self.ceiling is not None and self.allowance.amount + self.granted > self.ceiling

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.spent - self.held)


@dataclass(frozen=True)
class JobCost:
    """What a finished job cost: `charged` once settled, `refunded` once given back; both None
    while it holds its reservation."""

    charged: int | None = None
    refunded: int | None = None


@dataclass(frozen=True)
class Spender:
    """One member's spending this period: milli-credits settled, and their jobs by kind."""

    user_id: int
    spent: int
    jobs_by_kind: dict[str, int]

    @property
    def jobs(self) -> int:
        return sum(self.jobs_by_kind.values())


class LedgerRow(TypedDict):
    """One credit movement, as the ledger table keeps it (times in Unix ms, amounts in milli-credits)."""

    id: int
    created_at: int
    user_id: int
    job_id: int | None
    job_kind: str | None  # the job's kind (image, edit, video), for rows about a job
    kind: str
    amount: int
    reason: str | None
    actor_id: int | None


class InsufficientCredits(UserFacingError):
    def __init__(self, needed: int, balance: Balance) -> None:
        self.needed, self.balance = needed, balance
        super().__init__("credits.insufficient", needed=format_credits(needed),
                         remaining=format_credits(balance.remaining), period=this_period(balance.period))


class MemberBlocked(UserFacingError):
    def __init__(self, reason: str | None) -> None:
        self.reason = reason
        if reason:
            super().__init__("credits.blocked_because", reason=reason)
        else:
            super().__init__("credits.blocked")


class TooManyJobs(UserFacingError):
    """The member's jobs fill both what may run at once and the places they may hold in line."""

    def __init__(self, running: int, waiting: int) -> None:
        self.limit = running + waiting
        super().__init__("credits.too_many_jobs", count=self.limit, running=running, waiting=waiting)


class GuildBudgetExhausted(UserFacingError):
    def __init__(self, settings: GuildQuotaSettings, resets_at: datetime) -> None:
        self.resets_at = resets_at
        super().__init__("credits.guild_budget", period=period_adjective(settings.period),
                         budget=format_credits(settings.budget or 0))


class ServerCeilingReached(UserFacingError):
    """The guild spent today the most the operator lets one guild spend per day."""

    def __init__(self, ceiling: int, resets_at: datetime) -> None:
        self.resets_at = resets_at
        super().__init__("credits.server_ceiling", ceiling=format_credits(ceiling))


class BotBudgetExhausted(UserFacingError):
    def __init__(self, resets_at: datetime) -> None:
        self.resets_at = resets_at
        super().__init__("credits.bot_budget")


class NeverFits(UserFacingError):
    """The job costs more than a whole period's allowance or budget: waiting will not help, only
    a moderator (or the operator) raising the limit will, and the message says who and how."""


class CreditObserver(Protocol):
    """Told of the credits jobs reserve, are charged and get back (in credits, not milli-credits),
    once the transaction that moved them has committed (bot.metrics.Metrics is one)."""

    def credits_reserved(self, credits: float) -> None: ...
    def credits_settled(self, credits: float) -> None: ...
    def credits_refunded(self, credits: float) -> None: ...


class CreditLedger:
    def __init__(self, db: Database, clock: Clock, quotas: QuotaStore, *,
                 bot_daily_budget: int | None = None, observer: CreditObserver | None = None) -> None:
        self._db = db
        self._clock = clock
        self._quotas = quotas
        self._bot_daily_budget = bot_daily_budget
        self._observer = observer

    async def balance(self, guild_id: int, user_id: int, role_ids: Iterable[int] = ()) -> Balance:
        async with self._db.transaction() as tx:
            return await self.balance_in(tx, guild_id, user_id, role_ids)

    async def reserve(
        self,
        tx: Transaction,
        *,
        guild_id: int,
        user_id: int,
        job_id: int,
        amount: int,
        role_ids: Iterable[int] = (),
    ) -> Balance:
        """Hold `amount` for a job, or raise why not (blocked, too many jobs running and waiting,
        not enough credits, a budget or ceiling spent). Runs inside the caller's write transaction
        (BEGIN IMMEDIATE), so every check and the hold are one atomic step. Returns the member's
        balance before the hold (it says how many of their jobs may run at once)."""
        balance = await self._check_allowed(tx, guild_id, user_id, role_ids, amount)
        now = to_millis(self._clock.now())
        await tx.execute(
            "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount, reason, created_at) "
            "VALUES (:guild, :user, :job, 'reserve', :amount, 'job submitted', :now)",
            {"guild": guild_id, "user": user_id, "job": job_id, "amount": amount, "now": now},
        )
        await tx.execute(
            "INSERT INTO credit_holds (job_id, guild_id, user_id, amount, created_at) "
            "VALUES (:job, :guild, :user, :amount, :now)",
            {"job": job_id, "guild": guild_id, "user": user_id, "amount": amount, "now": now},
        )
        if self._observer is not None:
            told = self._observer.credits_reserved
            tx.after_commit(lambda: told(amount / MILLI))
        return balance

    async def check_allowed(self, guild_id: int, user_id: int, role_ids: Iterable[int],
                            amount: int) -> Balance:
        """The checks of `reserve` without holding anything: lets a command refuse privately
        before it starts slow work (the reservation itself checks again, atomically)."""
        async with self._db.transaction() as tx:
            return await self._check_allowed(tx, guild_id, user_id, role_ids, amount)

    async def _check_allowed(self, tx: Transaction, guild_id: int, user_id: int,
                             role_ids: Iterable[int], amount: int) -> Balance:
        settings, balance = await self._state(tx, guild_id, user_id, role_ids)
        if balance.blocked:
            raise MemberBlocked(balance.block_reason)
        if balance.running_jobs >= balance.max_running_jobs + balance.max_waiting_jobs:
            raise TooManyJobs(balance.max_running_jobs, balance.max_waiting_jobs)
        self._check_fits_member(amount, balance)
        if amount > balance.remaining:
            raise InsufficientCredits(amount, balance)
        if settings.budget is not None:
            if amount > settings.budget:
                raise NeverFits("credits.guild_budget_too_small", needed=format_credits(amount),
                                period=period_adjective(settings.period),
                                budget=format_credits(settings.budget), command=CommandPath("quota", "budget"))
            used = await self._consumed(tx, balance.period_start, balance.refills_at, guild_id)
            if used + amount > settings.budget:
                raise GuildBudgetExhausted(settings, balance.refills_at)
        today, tomorrow = Period.DAY.bounds(self._clock.now())
        server_ceiling = self._quotas.defaults.server_ceiling_per_day
        if server_ceiling is not None:
            if amount > server_ceiling:
                raise NeverFits("credits.server_ceiling_too_small", needed=format_credits(amount),
                                ceiling=format_credits(server_ceiling))
            if await self._consumed(tx, today, tomorrow, guild_id) + amount > server_ceiling:
                raise ServerCeilingReached(server_ceiling, tomorrow)
        if self._bot_daily_budget is not None:
            if amount > self._bot_daily_budget:
                raise NeverFits("credits.bot_budget_too_small", needed=format_credits(amount))
            if await self._consumed(tx, today, tomorrow) + amount > self._bot_daily_budget:
                raise BotBudgetExhausted(tomorrow)
        return balance

    @staticmethod
    def _check_fits_member(amount: int, balance: Balance) -> None:
        """A job dearer than the member's whole period can never run, however long they wait:
        say who can change that, rather than 'your allowance refills tomorrow'."""
        if amount <= balance.total:
            return
        if balance.capped_by_operator:
            raise NeverFits("credits.over_member_ceiling", needed=format_credits(amount),
                            ceiling=format_credits(balance.total), period=per_period(balance.period))
        raise NeverFits("credits.allowance_too_small", needed=format_credits(amount),
                        total=format_credits(balance.total), period=per_period(balance.period),
                        set_default=CommandPath("quota", "set-default"),
                        set_user=CommandPath("quota", "set-user"))

    async def settle(self, tx: Transaction, *, job_id: int, amount: int) -> int | None:
        """Close a job's reservation with its real cost. Returns the amount charged, or None when
        the job was already closed (settling twice never charges twice)."""
        return await self._close(tx, job_id, "settle", amount, "job finished")

    async def refund(self, tx: Transaction, *, job_id: int, reason: str) -> int | None:
        """Release a job's reservation entirely. Returns the amount released, or None when the job
        was already closed."""
        return await self._close(tx, job_id, "refund", None, reason)

    async def grant(self, *, guild_id: int, user_id: int, amount: int, reason: str, actor_id: int,
                    role_ids: Iterable[int] = ()) -> Balance:
        """A moderator adds to a member's allowance for the current period (negative amounts take
        away). Refused (InvalidRequest) when it would take the member's period past the
        operator's ceiling; otherwise the ledger row and its audit row are written in one
        transaction. Returns the member's balance afterwards."""
        async with self._db.transaction() as tx:
            before = await self.balance_in(tx, guild_id, user_id, role_ids)
            self._quotas.check_grant(amount, before.allowance.amount + before.granted + amount, before.period)
            now = self._clock.now()
            await tx.execute(
                "INSERT INTO ledger (guild_id, user_id, kind, amount, reason, actor_id, created_at) "
                "VALUES (:guild, :user, 'grant', :amount, :reason, :actor, :now)",
                {"guild": guild_id, "user": user_id, "amount": amount, "reason": reason, "actor": actor_id,
                 "now": to_millis(now)},
            )
            await audit.record(tx, at=now, guild_id=guild_id, actor_id=actor_id, action=AuditAction.GRANT,
                               target_user_id=user_id, details={"amount": amount, "reason": reason})
            return await self.balance_in(tx, guild_id, user_id, role_ids)

    async def guild_usage(self, guild_id: int) -> tuple[GuildQuotaSettings, int, int, datetime]:
        """The guild's settings, what it spent and holds this period, and when the period ends."""
        async with self._db.transaction() as tx:
            settings = await self._quotas.guild_settings(tx, guild_id)
            start, end = settings.period.bounds(self._clock.now())
            spent = await self._spent(tx, start, end, guild_id)
            held = await self._held(tx, guild_id)
            return settings, spent, held, end

    async def top_spenders(self, guild_id: int, limit: int = 10) -> tuple[Period, list[Spender]]:
        """Who spent the most this period (credits settled, and their jobs by kind), most first."""
        async with self._db.transaction() as tx:
            settings = await self._quotas.guild_settings(tx, guild_id)
            start, end = settings.period.bounds(self._clock.now())
            rows = await tx.fetchall(
                "SELECT ledger.user_id, jobs.kind AS job_kind, CAST(SUM(ledger.amount) AS BIGINT) AS spent, "
                "COUNT(*) AS jobs FROM ledger JOIN jobs ON jobs.id = ledger.job_id "
                "WHERE ledger.guild_id = :guild AND ledger.kind = 'settle' "
                "AND ledger.created_at >= :start AND ledger.created_at < :end "
                "GROUP BY ledger.user_id, jobs.kind",
                {"guild": guild_id, "start": to_millis(start), "end": to_millis(end)},
            )
        spenders: dict[int, Spender] = {}
        for row in rows:
            before = spenders.get(row["user_id"], Spender(row["user_id"], 0, {}))
            spenders[row["user_id"]] = Spender(before.user_id, before.spent + row["spent"],
                                               {**before.jobs_by_kind, row["job_kind"]: row["jobs"]})
        ranked = sorted(spenders.values(), key=lambda spender: (-spender.spent, spender.user_id))
        return settings.period, ranked[:limit]

    async def held_for(self, job_id: int) -> int | None:
        """What a job's open reservation holds; None once it is closed (or if it never held)."""
        row = await self._db.fetchone("SELECT amount FROM credit_holds WHERE job_id = :job", {"job": job_id})
        return row["amount"] if row else None

    async def job_costs(self, job_ids: Iterable[int]) -> dict[int, JobCost]:
        """What each of these jobs cost, in one query: charged once settled, given back once
        refunded; JobCost() (both None) while a job holds its reservation or never held one."""
        ids = list(job_ids)
        costs = dict.fromkeys(ids, JobCost())
        if not ids:
            return costs
        # Parameters by position in the list (names made here, never from input).
        params = {f"job{index}": job_id for index, job_id in enumerate(ids)}
        rows = await self._db.fetchall(
            "SELECT job_id, kind, amount FROM ledger "
            f"WHERE kind IN ('settle', 'refund') AND job_id IN ({', '.join(':' + name for name in params)})",
            params,
        )
        # A job is closed once (settled or refunded), so it has at most one of these rows.
        for row in rows:
            costs[row["job_id"]] = (JobCost(charged=row["amount"]) if row["kind"] == "settle"
                                    else JobCost(refunded=row["amount"]))
        return costs

    async def job_cost(self, job_id: int) -> JobCost:
        """What one job cost (see job_costs)."""
        return (await self.job_costs([job_id]))[job_id]

    async def ledger_rows(self, guild_id: int) -> list[LedgerRow]:
        """Every ledger row of one guild, oldest first (for the CSV export)."""
        rows = await self._db.fetchall(
            "SELECT ledger.id, ledger.created_at, ledger.user_id, ledger.job_id, jobs.kind AS job_kind, "
            "ledger.kind, ledger.amount, ledger.reason, ledger.actor_id "
            "FROM ledger LEFT JOIN jobs ON jobs.id = ledger.job_id "
            "WHERE ledger.guild_id = :guild ORDER BY ledger.id", {"guild": guild_id},
        )
        return [cast(LedgerRow, dict(row)) for row in rows]

    async def bot_totals_today(self) -> tuple[int, int]:
        """What the bot charged (settled) today across every guild, and what running jobs hold."""
        start, end = Period.DAY.bounds(self._clock.now())
        async with self._db.transaction() as tx:
            return await self._spent(tx, start, end), await self._held(tx)

    async def balance_in(self, tx: Transaction, guild_id: int, user_id: int,
                         role_ids: Iterable[int] = ()) -> Balance:
        return (await self._state(tx, guild_id, user_id, role_ids))[1]

    async def _state(self, tx: Transaction, guild_id: int, user_id: int,
                     role_ids: Iterable[int]) -> tuple[GuildQuotaSettings, Balance]:
        """The guild's settings and the member's balance, read once for both."""
        settings = await self._quotas.guild_settings(tx, guild_id)
        member = await self._quotas.member(tx, guild_id, user_id)
        allowance = effective_allowance(
            settings, await self._quotas.role_allowances(tx, guild_id), role_ids, member
        )
        start, end = settings.period.bounds(self._clock.now())
        row = await tx.fetchone(
            """
            SELECT
              CAST(COALESCE(SUM(CASE WHEN kind = 'settle' THEN amount END), 0) AS BIGINT) AS spent,
              CAST(COALESCE(SUM(CASE WHEN kind IN ('grant', 'adjust') THEN amount END), 0) AS BIGINT) AS granted
            FROM ledger
            WHERE guild_id = :guild AND user_id = :user AND created_at >= :start AND created_at < :end
            """,
            {"guild": guild_id, "user": user_id, "start": to_millis(start), "end": to_millis(end)},
        )
        holds = await tx.fetchone(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS held, COUNT(*) AS jobs FROM credit_holds "
            "WHERE guild_id = :guild AND user_id = :user", {"guild": guild_id, "user": user_id},
        )
        assert row is not None and holds is not None
        defaults = self._quotas.defaults
        return settings, Balance(
            allowance=allowance, granted=row["granted"], spent=row["spent"], held=holds["held"],
            period=settings.period, period_start=start, refills_at=end,
            running_jobs=holds["jobs"], max_running_jobs=settings.max_concurrent_jobs,
            blocked=member.blocked, block_reason=member.block_reason,
            max_waiting_jobs=defaults.max_waiting_jobs, ceiling=defaults.member_ceiling(settings.period),
        )

    async def running_limit(self, guild_id: int) -> int:
        """How many of one member's jobs may run at once in this guild (the rest wait in line)."""
        async with self._db.transaction() as tx:
            return await self.running_limit_in(tx, guild_id)

    async def running_limit_in(self, tx: Transaction, guild_id: int) -> int:
        return (await self._quotas.guild_settings(tx, guild_id)).max_concurrent_jobs

    async def _close(
        self, tx: Transaction, job_id: int, kind: str, charge: int | None, reason: str
    ) -> int | None:
        hold = await tx.fetchone(
            "DELETE FROM credit_holds WHERE job_id = :job RETURNING guild_id, user_id, amount", {"job": job_id}
        )
        if hold is None:
            return None
        # Never more than was held: the member agreed to the estimate, and the budgets and
        # ceilings were checked against it (prices may have changed since, or EvoLink may have
        # produced more than was asked for).
        amount = hold["amount"] if charge is None else min(charge, hold["amount"])
        now = self._clock.now()
        await tx.execute(
            "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount, reason, created_at) "
            "VALUES (:guild, :user, :job, :kind, :amount, :reason, :now)",
            {"guild": hold["guild_id"], "user": hold["user_id"], "job": job_id, "kind": kind, "amount": amount,
             "reason": reason, "now": to_millis(now)},
        )
        if kind == "settle":
            await tx.execute(
                "INSERT INTO daily_spend (day, guild_id, amount) VALUES (:day, :guild, :amount) "
                "ON CONFLICT (day, guild_id) DO UPDATE SET amount = daily_spend.amount + excluded.amount",
                {"day": to_millis(Period.DAY.bounds(now)[0]), "guild": hold["guild_id"], "amount": amount},
            )
        if self._observer is not None:
            told = self._observer.credits_settled if kind == "settle" else self._observer.credits_refunded
            tx.after_commit(lambda: told(amount / MILLI))
        return amount

    async def _consumed(self, tx: Transaction, start: datetime, end: datetime,
                        guild_id: int | None = None) -> int:
        """Spent in [start, end) plus everything held now: what a budget is measured against."""
        return await self._spent(tx, start, end, guild_id) + await self._held(tx, guild_id)

    async def _spent(self, tx: Transaction, start: datetime, end: datetime,
                     guild_id: int | None = None) -> int:
        """Settled in [start, end), two UTC midnights: from the per-day totals, not the ledger rows."""
        # One guild's, or (None) every guild's together.
        row = await tx.fetchone(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS spent FROM daily_spend "
            "WHERE day >= :start AND day < :end" + ("" if guild_id is None else " AND guild_id = :guild"),
            {"start": to_millis(start), "end": to_millis(end), "guild": guild_id},
        )
        assert row is not None
        return row["spent"]

    async def _held(self, tx: Transaction, guild_id: int | None = None) -> int:
        row = await tx.fetchone(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS held FROM credit_holds"
            + ("" if guild_id is None else " WHERE guild_id = :guild"),
            {"guild": guild_id},
        )
        assert row is not None
        return row["held"]
