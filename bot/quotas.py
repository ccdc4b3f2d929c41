"""Per-guild quota settings that moderators set: the default allowance and its period, role
allowances, personal overrides, blocks, the guild budget, the concurrency limit, the moderator
role and the log channel. Nothing here reads or writes another guild's rows. Every change is
checked against the operator's ceilings and written with its audit row (bot/audit.py) in one
transaction.

How a member's allowance is decided (documented in the README):
1. a personal allowance set with /quota set-user wins outright;
2. otherwise the highest of the server default and the allowances of the member's roles;
then one-off grants add to it for the current period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot import audit
from bot.audit import AuditAction
from bot.clock import Clock
from bot.db import Database, Transaction
from bot.i18n import Message
from bot.periods import Period
from bot.requests import InvalidRequest
from bot.units import format_credits, to_millis

# The most jobs moderators may let one member run at once.
MAX_JOBS_LIMIT = 20
_GUILD_COLUMNS = frozenset({"period", "default_allowance", "budget", "max_concurrent_jobs",
                            "moderator_role_id", "log_channel_id"})


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
class GuildQuotaOverview:
    """Everything /quota show lists about a guild."""

    settings: GuildQuotaSettings
    role_allowances: dict[int, int]
    member_overrides: list[tuple[int, MemberQuota]]  # members with a personal allowance or a block


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
        row = await tx.fetchone("SELECT * FROM guild_settings WHERE guild_id = :guild", {"guild": guild_id})
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
            "SELECT role_id, allowance FROM role_allowances WHERE guild_id = :guild", {"guild": guild_id}
        )
        return {row["role_id"]: row["allowance"] for row in rows}

    async def member(self, tx: Transaction, guild_id: int, user_id: int) -> MemberQuota:
        row = await tx.fetchone(
            "SELECT allowance, blocked, block_reason FROM member_quotas "
            "WHERE guild_id = :guild AND user_id = :user", {"guild": guild_id, "user": user_id},
        )
        if row is None:
            return MemberQuota()
        return MemberQuota(row["allowance"], bool(row["blocked"]), row["block_reason"])

    async def member_overrides(self, tx: Transaction, guild_id: int) -> list[tuple[int, MemberQuota]]:
        """Members with a personal allowance or a block, for /quota show."""
        rows = await tx.fetchall(
            "SELECT user_id, allowance, blocked, block_reason FROM member_quotas "
            "WHERE guild_id = :guild AND (allowance IS NOT NULL OR blocked = 1) ORDER BY user_id",
            {"guild": guild_id},
        )
        return [(row["user_id"], MemberQuota(row["allowance"], bool(row["blocked"]),
                                             row["block_reason"])) for row in rows]

    async def moderator_role(self, guild_id: int) -> int | None:
        row = await self._db.fetchone(
            "SELECT moderator_role_id FROM guild_settings WHERE guild_id = :guild", {"guild": guild_id}
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
            "SELECT log_channel_id FROM guild_settings WHERE guild_id = :guild", {"guild": guild_id}
        )
        return row["log_channel_id"] if row else None

    async def overview(self, guild_id: int) -> GuildQuotaOverview:
        """The guild's settings, role allowances and members with an override, read at once (for
        /quota show)."""
        async with self._db.transaction() as tx:
            return GuildQuotaOverview(await self.guild_settings(tx, guild_id),
                                      await self.role_allowances(tx, guild_id),
                                      await self.member_overrides(tx, guild_id))

    # -- moderators' changes: each checked against the operator's ceilings, made and audited in
    # -- one transaction (a refused change writes nothing) ---------------------------------------

    async def set_default(self, guild_id: int, actor_id: int, allowance: int, *,
                          period: Period | None = None, max_jobs: int | None = None) -> GuildQuotaSettings:
        """The allowance of every member without a role or personal one, and optionally the
        period and how many jobs one member may run at once. Returns the settings afterwards."""
        changes: dict[str, object] = {"default_allowance": allowance}
        if period is not None:
            changes["period"] = period
        if max_jobs is not None:
            changes["max_concurrent_jobs"] = max_jobs
        async with self._db.transaction() as tx:
            self.check_member_allowance(
                "amount", allowance, period or (await self.guild_settings(tx, guild_id)).period)
            if max_jobs is not None and not 1 <= max_jobs <= MAX_JOBS_LIMIT:
                raise InvalidRequest("max_jobs", max_jobs, Message("requests.between", low=1, high=MAX_JOBS_LIMIT))
            return await self._change_guild(tx, guild_id, actor_id, AuditAction.SET_DEFAULT, changes)

    async def set_role_allowance(self, guild_id: int, actor_id: int, role_id: int,
                                 allowance: int | None) -> GuildQuotaSettings:
        """Give members with a role their own allowance (None removes it). Returns the settings."""
        async with self._db.transaction() as tx:
            settings = await self.guild_settings(tx, guild_id)
            if allowance is None:
                await tx.execute("DELETE FROM role_allowances WHERE guild_id = :guild AND role_id = :role",
                                 {"guild": guild_id, "role": role_id})
            else:
                self.check_member_allowance("amount", allowance, settings.period)
                await tx.execute(
                    "INSERT INTO role_allowances (guild_id, role_id, allowance) VALUES (:guild, :role, :allowance) "
                    "ON CONFLICT (guild_id, role_id) DO UPDATE SET allowance = excluded.allowance",
                    {"guild": guild_id, "role": role_id, "allowance": allowance},
                )
            await self._audit(tx, guild_id, actor_id, AuditAction.SET_ROLE, {"allowance": allowance},
                              target_role_id=role_id)
            return settings

    async def set_member_allowance(self, guild_id: int, actor_id: int, user_id: int,
                                   allowance: int | None) -> GuildQuotaSettings:
        """A member's personal allowance, whatever their roles (None removes it). Returns the
        settings."""
        async with self._db.transaction() as tx:
            if allowance is not None:
                self.check_member_allowance("amount", allowance, (await self.guild_settings(tx, guild_id)).period)
            return await self._change_member(tx, guild_id, actor_id, user_id, AuditAction.SET_USER,
                                             {"allowance": allowance})

    async def block(self, guild_id: int, actor_id: int, user_id: int, reason: str | None) -> None:
        """Stop a member from generating in this guild; `reason` is shown to them."""
        async with self._db.transaction() as tx:
            await self._change_member(tx, guild_id, actor_id, user_id, AuditAction.BLOCK,
                                      {"blocked": True, "block_reason": reason})

    async def unblock(self, guild_id: int, actor_id: int, user_id: int) -> None:
        async with self._db.transaction() as tx:
            await self._change_member(tx, guild_id, actor_id, user_id, AuditAction.UNBLOCK,
                                      {"blocked": False, "block_reason": None})

    async def set_budget(self, guild_id: int, actor_id: int, budget: int | None) -> GuildQuotaSettings:
        """What the whole guild may spend per period (None: no cap). Returns the settings."""
        async with self._db.transaction() as tx:
            if budget is not None:
                self.check_budget(budget, (await self.guild_settings(tx, guild_id)).period)
            return await self._change_guild(tx, guild_id, actor_id, AuditAction.BUDGET, {"budget": budget})

    async def set_moderator_role(self, guild_id: int, actor_id: int, role_id: int | None) -> None:
        """The role whose members may use the moderator commands (None: Manage Server only).
        Who may call this (Manage Server only) is the command's check."""
        async with self._db.transaction() as tx:
            await self._change_guild(tx, guild_id, actor_id, AuditAction.MODERATOR_ROLE,
                                     {"moderator_role_id": role_id})

    async def set_log_channel(self, guild_id: int, actor_id: int, channel_id: int | None) -> None:
        """The channel where moderators' changes are posted (None: not posted)."""
        async with self._db.transaction() as tx:
            await self._change_guild(tx, guild_id, actor_id, AuditAction.LOG_CHANNEL,
                                     {"log_channel_id": channel_id})

    async def _change_guild(self, tx: Transaction, guild_id: int, actor_id: int, action: AuditAction,
                            columns: dict[str, object]) -> GuildQuotaSettings:
        """Set some guild_settings columns (creating the row with the operator's period) and audit
        them. Returns the settings afterwards."""
        assert set(columns) <= _GUILD_COLUMNS, columns  # column names never come from input
        await tx.execute(
            "INSERT INTO guild_settings (guild_id, period, updated_at) VALUES (:guild, :period, :now) "
            "ON CONFLICT (guild_id) DO NOTHING",
            {"guild": guild_id, "period": self.defaults.period.value, "now": self._now()},
        )
        assignments = ", ".join(f"{column} = :{column}" for column in columns)
        await tx.execute(
            f"UPDATE guild_settings SET {assignments}, updated_at = :now WHERE guild_id = :guild",
            {**_stored(columns), "now": self._now(), "guild": guild_id},
        )
        await self._audit(tx, guild_id, actor_id, action, columns)
        return await self.guild_settings(tx, guild_id)

    async def _change_member(self, tx: Transaction, guild_id: int, actor_id: int, user_id: int,
                             action: AuditAction, columns: dict[str, object]) -> GuildQuotaSettings:
        assert set(columns) <= {"allowance", "blocked", "block_reason"}, columns
        await tx.execute(
            "INSERT INTO member_quotas (guild_id, user_id) VALUES (:guild, :user) "
            "ON CONFLICT (guild_id, user_id) DO NOTHING", {"guild": guild_id, "user": user_id},
        )
        assignments = ", ".join(f"{column} = :{column}" for column in columns)
        await tx.execute(
            f"UPDATE member_quotas SET {assignments} WHERE guild_id = :guild AND user_id = :user",
            {**_stored(columns), "guild": guild_id, "user": user_id},
        )
        await self._audit(tx, guild_id, actor_id, action, columns, target_user_id=user_id)
        return await self.guild_settings(tx, guild_id)

    async def _audit(self, tx: Transaction, guild_id: int, actor_id: int, action: AuditAction,
                     details: dict[str, object], *, target_user_id: int | None = None,
                     target_role_id: int | None = None) -> None:
        await audit.record(tx, at=self._clock.now(), guild_id=guild_id, actor_id=actor_id, action=action,
                           target_user_id=target_user_id, target_role_id=target_role_id, details=details)

    def _now(self) -> int:
        return to_millis(self._clock.now())


def _stored(columns: dict[str, object]) -> dict[str, object]:
    """Values as the columns hold them: flags are integers (0 or 1) on both engines, periods text."""
    return {column: int(value) if isinstance(value, bool) else value.value if isinstance(value, Period) else value
            for column, value in columns.items()}


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _ceiling_rule(key: str, ceiling: int, per_day: int | None, period: Period, **fields: str) -> Message:
    return Message(key, ceiling=format_credits(ceiling), daily=format_credits(per_day or 0),
                   period=Message(f"credits.period_name.{period.value}"), **fields)
