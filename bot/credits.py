"""Credits: per-member allowances per guild, atomic reservations, and the append-only ledger.

A job reserves its estimate before any paid call; the reservation is later settled (by what the
job really produced) or refunded, exactly once. A member's balance for the current period is:

    remaining = allowance + granted - spent - held

where `spent` sums this period's settlements, `granted` this period's grants and adjustments, and
`held` the reservations still open (whenever they were made: a job in flight across a period
boundary keeps its hold until it ends). Amounts are integer milli-credits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from bot.clock import Clock
from bot.db import Database, Transaction
from bot.errors import UserFacingError

MILLI = 1000


def to_milli(credits: Decimal | int) -> int:
    return int(Decimal(credits) * MILLI)


def format_credits(milli: int) -> str:
    """1500 -> '1.5', 2000 -> '2'."""
    return format(Decimal(milli) / MILLI, "f")


def to_millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def daily_period(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day containing `now`: allowances refill at 00:00 UTC."""
    start = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class Balance:
    allowance: int
    granted: int
    spent: int
    held: int
    period_start: datetime
    refills_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.allowance + self.granted - self.spent - self.held)


class InsufficientCredits(UserFacingError):
    def __init__(self, needed: int, balance: Balance) -> None:
        self.needed, self.balance = needed, balance
        super().__init__(
            f"This needs {format_credits(needed)} credits and you have "
            f"{format_credits(balance.remaining)} left today."
        )


class CreditLedger:
    def __init__(self, db: Database, clock: Clock, *, daily_allowance: int) -> None:
        self._db = db
        self._clock = clock
        self._daily_allowance = daily_allowance

    async def balance(self, guild_id: int, user_id: int) -> Balance:
        async with self._db.transaction() as tx:
            return await self._balance(tx, guild_id, user_id)

    async def reserve(
        self, tx: Transaction, *, guild_id: int, user_id: int, job_id: int, amount: int
    ) -> Balance:
        """Hold `amount` for a job, or raise InsufficientCredits. Runs inside the caller's write
        transaction (BEGIN IMMEDIATE), so the check and the hold are one atomic step."""
        balance = await self._balance(tx, guild_id, user_id)
        if amount > balance.remaining:
            raise InsufficientCredits(amount, balance)
        now = to_millis(self._clock.now())
        await tx.execute(
            "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount, reason, created_at) "
            "VALUES (?, ?, ?, 'reserve', ?, 'job submitted', ?)",
            (guild_id, user_id, job_id, amount, now),
        )
        await tx.execute(
            "INSERT INTO credit_holds (job_id, guild_id, user_id, amount, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (job_id, guild_id, user_id, amount, now),
        )
        return await self._balance(tx, guild_id, user_id)

    async def settle(self, tx: Transaction, *, job_id: int, amount: int) -> int | None:
        """Close a job's reservation with its real cost. Returns the amount charged, or None when
        the job was already closed (settling twice never charges twice)."""
        return await self._close(tx, job_id, "settle", amount, "job finished")

    async def refund(self, tx: Transaction, *, job_id: int, reason: str) -> int | None:
        """Release a job's reservation entirely. Returns the amount released, or None when the job
        was already closed."""
        return await self._close(tx, job_id, "refund", None, reason)

    async def _close(
        self, tx: Transaction, job_id: int, kind: str, charge: int | None, reason: str
    ) -> int | None:
        hold = await tx.fetchone(
            "DELETE FROM credit_holds WHERE job_id = ? RETURNING guild_id, user_id, amount", (job_id,)
        )
        if hold is None:
            return None
        amount = hold["amount"] if charge is None else charge
        await tx.execute(
            "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount, reason, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (hold["guild_id"], hold["user_id"], job_id, kind, amount, reason,
             to_millis(self._clock.now())),
        )
        return amount

    async def _balance(self, tx: Transaction, guild_id: int, user_id: int) -> Balance:
        start, end = daily_period(self._clock.now())
        row = await tx.fetchone(
            """
            SELECT
              COALESCE(SUM(CASE WHEN kind = 'settle' THEN amount END), 0) AS spent,
              COALESCE(SUM(CASE WHEN kind IN ('grant', 'adjust') THEN amount END), 0) AS granted,
              (SELECT COALESCE(SUM(amount), 0) FROM credit_holds
                WHERE guild_id = :guild AND user_id = :user) AS held
            FROM ledger
            WHERE guild_id = :guild AND user_id = :user AND created_at >= :start AND created_at < :end
            """,
            {"guild": guild_id, "user": user_id, "start": to_millis(start), "end": to_millis(end)},
        )
        assert row is not None
        return Balance(
            allowance=self._daily_allowance,
            granted=row["granted"],
            spent=row["spent"],
            held=row["held"],
            period_start=start,
            refills_at=end,
        )
