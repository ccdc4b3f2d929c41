"""Per-guild quota settings that moderators set: the default allowance and its period, role
allowances, personal overrides, blocks, the guild budget, the concurrency limit, the moderator
role and the log channel. Nothing here reads or writes another guild's rows.

How a member's allowance is decided (documented in the README):
1. a personal allowance set with /quota set-user wins outright;
2. otherwise the highest of the server default and the allowances of the member's roles;
then one-off grants add to it for the current period.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.clock import Clock
from bot.db import Database, Transaction
from bot.i18n import Message
from bot.periods import Period
from bot.requests import InvalidRequest
from bot.units import format_credits, to_millis


@dataclass(frozen=True)
class QuotaDefaults:
    """The operator's settings: what guilds whose moderators set nothing get, and the ceilings no
    guild's moderators can go past (every guild spends the operator's EvoLink money)."""

    allowance: int               # milli-credits per member per period
    period: Period
    max_concurrent_jobs: int
    # How many more of one member's jobs may wait in line behind those running.
    max_waiting_jobs: int = 10
    # Milli-credits per UTC day; None: no ceiling. A weekly or monthly setting may reach the
    # period's longest number of days times the daily ceiling.
    member_ceiling_per_day: int | None = None  # the most a guild may give one member
    server_ceiling_per_day: int | None = None  # the most one guild may spend

    def member_ceiling(self, period: Period) -> int | None:
        """The most a guild may give one member per `period` (allowance and grants together)."""
        return _per_period(self.member_ceiling_per_day, period)

    def server_ceiling(self, period: Period) -> int | None:
        """The most a guild's budget may be per `period`."""
        return _per_period(self.server_ceiling_per_day, period)


def _per_period(per_day: int | None, period: Period) -> int | None:
    return None if per_day is None else per_day * period.longest_days


@dataclass(frozen=True)
class GuildQuotaSettings:
    guild_id: int
    period: Period
    default_allowance: int
    budget: int | None
    max_concurrent_jobs: int
    moderator_role_id: int | None
    log_channel_id: int | None


@dataclass(frozen=True)
class MemberQuota:
    allowance: int | None = None  # personal override
    blocked: bool = False
    block_reason: str | None = None


@dataclass(frozen=True)
class Allowance:
    amount: int
    source: str  # "personal", "role:<id>" or "default": shown to members and moderators

    @property
    def role_id(self) -> int | None:
        return int(self.source.split(":", 1)[1]) if self.source.startswith("role:") else None


def effective_allowance(
    settings: GuildQuotaSettings,
    role_allowances: dict[int, int],
    member_role_ids: Iterable[int],
    member: MemberQuota,
) -> Allowance:
    if member.allowance is not None:
        return Allowance(member.allowance, "personal")
    best = Allowance(settings.default_allowance, "default")
    for role_id in member_role_ids:
        amount = role_allowances.get(role_id)
        if amount is not None and amount > best.amount:
            best = Allowance(amount, f"role:{role_id}")
    return best


class QuotaStore:
    def __init__(self, db: Database, clock: Clock, defaults: QuotaDefaults) -> None:
        self._db = db
        self._clock = clock
        self.defaults = defaults

    # -- the operator's ceilings, for what moderators ask (refused with the ceiling named) -------

    def check_member_allowance(self, option: str, amount: int, period: Period) -> None:
        """An allowance (default, role or personal) over what the operator lets a guild give one
        member per period is refused."""
        ceiling = self.defaults.member_ceiling(period)
        if ceiling is not None and amount > ceiling:
            raise InvalidRequest(option, format_credits(amount), _ceiling_rule(
                "quota.rule_member_ceiling", ceiling, self.defaults.member_ceiling_per_day, period))

    def check_grant(self, amount: int, total_after: int, period: Period) -> None:
        """A grant that would take a member's period (allowance and grants) over the ceiling."""
        ceiling = self.defaults.member_ceiling(period)
        if ceiling is not None and amount > 0 and total_after > ceiling:
            raise InvalidRequest("amount", format_credits(amount), _ceiling_rule(
                "quota.rule_grant_ceiling", ceiling, self.defaults.member_ceiling_per_day, period,
                total=format_credits(total_after)))

    def check_budget(self, amount: int, period: Period) -> None:
        """A guild budget over what the operator lets one guild spend per period."""
        ceiling = self.defaults.server_ceiling(period)
        if ceiling is not None and amount > ceiling:
            raise InvalidRequest("amount", format_credits(amount), _ceiling_rule(
                "quota.rule_server_ceiling", ceiling, self.defaults.server_ceiling_per_day, period))

    # -- reads (inside a caller's transaction, so a reservation sees one consistent state) ----

    async def guild_settings(self, tx: Transaction, guild_id: int) -> GuildQuotaSettings:
        row = await tx.fetchone("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        defaults = self.defaults
        if row is None:
            return GuildQuotaSettings(guild_id, defaults.period, defaults.allowance, None,
                                      defaults.max_concurrent_jobs, None, None)
        return GuildQuotaSettings(
            guild_id=guild_id,
            period=Period(row["period"]),
            default_allowance=_or(row["default_allowance"], defaults.allowance),
            budget=row["budget"],
            max_concurrent_jobs=_or(row["max_concurrent_jobs"], defaults.max_concurrent_jobs),
            moderator_role_id=row["moderator_role_id"],
            log_channel_id=row["log_channel_id"],
        )

    async def role_allowances(self, tx: Transaction, guild_id: int) -> dict[int, int]:
        rows = await tx.fetchall(
            "SELECT role_id, allowance FROM role_allowances WHERE guild_id = ?", (guild_id,)
        )
        return {row["role_id"]: row["allowance"] for row in rows}

    async def member(self, tx: Transaction, guild_id: int, user_id: int) -> MemberQuota:
        row = await tx.fetchone(
            "SELECT allowance, blocked, block_reason FROM member_quotas "
            "WHERE guild_id = ? AND user_id = ?", (guild_id, user_id),
        )
        if row is None:
            return MemberQuota()
        return MemberQuota(row["allowance"], bool(row["blocked"]), row["block_reason"])

    async def member_overrides(self, tx: Transaction, guild_id: int) -> list[tuple[int, MemberQuota]]:
        """Members with a personal allowance or a block, for /quota show."""
        rows = await tx.fetchall(
            "SELECT user_id, allowance, blocked, block_reason FROM member_quotas "
            "WHERE guild_id = ? AND (allowance IS NOT NULL OR blocked) ORDER BY user_id",
            (guild_id,),
        )
        return [(row["user_id"], MemberQuota(row["allowance"], bool(row["blocked"]),
                                             row["block_reason"])) for row in rows]

    async def period(self, guild_id: int) -> Period:
        """The guild's allowance period (the operator's default until moderators set one)."""
        row = await self._db.fetchone("SELECT period FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return Period(row["period"]) if row else self.defaults.period

    async def moderator_role(self, guild_id: int) -> int | None:
        row = await self._db.fetchone(
            "SELECT moderator_role_id FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        return row["moderator_role_id"] if row else None

    async def log_channels(self) -> list[tuple[int, int]]:
        """(guild id, channel id) of every guild whose moderators set a log channel."""
        rows = await self._db.fetchall(
            "SELECT guild_id, log_channel_id FROM guild_settings WHERE log_channel_id IS NOT NULL"
        )
        return [(row["guild_id"], row["log_channel_id"]) for row in rows]

    async def log_channel(self, guild_id: int) -> int | None:
        row = await self._db.fetchone(
            "SELECT log_channel_id FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        return row["log_channel_id"] if row else None

    # -- writes (each with its audit row, in the caller's transaction) ---------------------------

    async def update_guild(self, tx: Transaction, guild_id: int, **columns: Any) -> None:
        """Set some guild_settings columns, creating the row with the operator's period."""
        allowed = {"period", "default_allowance", "budget", "max_concurrent_jobs",
                   "moderator_role_id", "log_channel_id"}
        assert set(columns) <= allowed, columns  # column names never come from input
        await tx.execute(
            "INSERT INTO guild_settings (guild_id, period, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (guild_id) DO NOTHING",
            (guild_id, self.defaults.period, self._now()),
        )
        assignments = ", ".join(f"{column} = :{column}" for column in columns)
        await tx.execute(
            f"UPDATE guild_settings SET {assignments}, updated_at = :now WHERE guild_id = :guild",
            {**columns, "now": self._now(), "guild": guild_id},
        )

    async def set_role_allowance(self, tx: Transaction, guild_id: int, role_id: int,
                                 allowance: int | None) -> None:
        if allowance is None:
            await tx.execute("DELETE FROM role_allowances WHERE guild_id = ? AND role_id = ?",
                             (guild_id, role_id))
            return
        await tx.execute(
            "INSERT INTO role_allowances (guild_id, role_id, allowance) VALUES (?, ?, ?) "
            "ON CONFLICT (guild_id, role_id) DO UPDATE SET allowance = excluded.allowance",
            (guild_id, role_id, allowance),
        )

    async def update_member(self, tx: Transaction, guild_id: int, user_id: int, **columns: Any) -> None:
        assert set(columns) <= {"allowance", "blocked", "block_reason"}, columns
        await tx.execute(
            "INSERT INTO member_quotas (guild_id, user_id) VALUES (?, ?) "
            "ON CONFLICT (guild_id, user_id) DO NOTHING", (guild_id, user_id),
        )
        assignments = ", ".join(f"{column} = :{column}" for column in columns)
        await tx.execute(
            f"UPDATE member_quotas SET {assignments} WHERE guild_id = :guild AND user_id = :user",
            {**columns, "guild": guild_id, "user": user_id},
        )

    async def audit(
        self,
        tx: Transaction,
        *,
        guild_id: int,
        actor_id: int,
        action: str,
        target_user_id: int | None = None,
        target_role_id: int | None = None,
        **details: Any,
    ) -> None:
        await tx.execute(
            "INSERT INTO audit_log (guild_id, actor_id, action, target_user_id, target_role_id, "
            "details, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (guild_id, actor_id, action, target_user_id, target_role_id,
             json.dumps(details, default=str), self._now()),
        )

    def _now(self) -> int:
        return to_millis(self._clock.now())


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _ceiling_rule(key: str, ceiling: int, per_day: int | None, period: Period, **fields: str) -> Message:
    return Message(key, ceiling=format_credits(ceiling), daily=format_credits(per_day or 0),
                   period=Message(f"credits.period_name.{period.value}"), **fields)
