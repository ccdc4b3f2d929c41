"""/quota: moderators decide who may spend how much in their server.

Every change is one transaction with its audit row, answered privately, and echoed to the
server's log channel when one is set. Every subcommand checks the moderator right in code.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.credits import Balance
from bot.periods import Period
from bot.quotas import GuildQuotaSettings
from bot.requests import InvalidRequest, parse_credit_amount
from bot.ui.account import describe_allowance
from bot.ui.checks import NotModerator, has_manage_server, moderator_only
from bot.ui.moderation_log import echo_to_log_channel
from bot.ui.render import timestamp
from bot.units import format_credits

log = logging.getLogger(__name__)

PERIOD_CHOICES = [app_commands.Choice(name=period.value, value=period.value) for period in Period]
MAX_JOBS_LIMIT = 20


def credits(milli: int) -> str:
    return f"{format_credits(milli)} credit{'' if milli == 1000 else 's'}"


# A hint only (server admins can change who sees the group); moderator_only is the real check.
@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Quota(commands.GroupCog, group_name="quota",
            group_description="Moderators: who may spend how many credits here"):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        super().__init__()

    # Discord shows the group only to members with Manage Server by default; admins can change
    # that, so every command also runs moderator_only.
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await moderator_only(interaction)

    async def _apply(self, interaction: discord.Interaction, reply: str) -> None:
        await interaction.response.send_message(reply, ephemeral=True)
        await echo_to_log_channel(self.bot, interaction, reply)

    async def _change_guild(self, interaction: discord.Interaction, action: str,
                            **columns: object) -> GuildQuotaSettings:
        """Change guild settings and write their audit row in one transaction."""
        guild_id = _guild(interaction)
        quotas = self.bot.services.quotas
        async with self.bot.services.db.transaction() as tx:
            await quotas.update_guild(tx, guild_id, **columns)
            await quotas.audit(tx, guild_id=guild_id, actor_id=interaction.user.id, action=action,
                               **columns)
            return await quotas.guild_settings(tx, guild_id)

    async def _change_member(self, interaction: discord.Interaction, member: discord.Member,
                             action: str, **columns: object) -> GuildQuotaSettings:
        """Change a member's quota and write its audit row in one transaction."""
        guild_id = _guild(interaction)
        quotas = self.bot.services.quotas
        async with self.bot.services.db.transaction() as tx:
            await quotas.update_member(tx, guild_id, member.id, **columns)
            await quotas.audit(tx, guild_id=guild_id, actor_id=interaction.user.id, action=action,
                               target_user_id=member.id, **columns)
            return await quotas.guild_settings(tx, guild_id)

    @app_commands.command(name="set-default", description="The allowance of every member without a role or personal one")
    @app_commands.describe(amount="Credits per member per period", period="How often allowances refill (default: keep)",
                           max_jobs="How many jobs one member may run at once (default: keep)")
    @app_commands.choices(period=PERIOD_CHOICES)
    async def set_default(self, interaction: discord.Interaction, amount: app_commands.Range[float, 0, 1_000_000],
                          period: str | None = None,
                          max_jobs: app_commands.Range[int, 1, MAX_JOBS_LIMIT] | None = None) -> None:
        allowance = parse_credit_amount(amount)
        changes: dict[str, object] = {"default_allowance": allowance}
        if period is not None:
            changes["period"] = Period(period)
        if max_jobs is not None:
            if not 1 <= max_jobs <= MAX_JOBS_LIMIT:
                raise InvalidRequest("max_jobs", max_jobs, f"must be between 1 and {MAX_JOBS_LIMIT}")
            changes["max_concurrent_jobs"] = max_jobs
        settings = await self._change_guild(interaction, "set-default", **changes)
        await self._apply(interaction, (
            f"The server default is now {credits(settings.default_allowance)} per member per "
            f"{settings.period.value}, with at most {settings.max_concurrent_jobs} job"
            f"{'s' if settings.max_concurrent_jobs != 1 else ''} at once per member."
        ))

    @app_commands.command(name="set-role", description="Give members with a role their own allowance")
    @app_commands.describe(role="The role", amount="Credits per period for its members (leave out to remove)")
    async def set_role(self, interaction: discord.Interaction, role: discord.Role,
                       amount: app_commands.Range[float, 0, 1_000_000] | None = None) -> None:
        allowance = None if amount is None else parse_credit_amount(amount)
        guild_id = _guild(interaction)
        async with self.bot.services.db.transaction() as tx:
            await self.bot.services.quotas.set_role_allowance(tx, guild_id, role.id, allowance)
            await self.bot.services.quotas.audit(tx, guild_id=guild_id, actor_id=interaction.user.id,
                                                 action="set-role", target_role_id=role.id,
                                                 allowance=allowance)
            settings = await self.bot.services.quotas.guild_settings(tx, guild_id)
        if allowance is None:
            reply = f"<@&{role.id}> no longer has an allowance of its own."
        else:
            reply = (f"Members with <@&{role.id}> now get {credits(allowance)} per "
                     f"{settings.period.value} (a personal allowance still wins; of several roles, "
                     "the highest counts).")
        await self._apply(interaction, reply)

    @app_commands.command(name="set-user", description="Give one member a personal allowance, whatever their roles")
    @app_commands.describe(member="The member", amount="Credits per period (leave out to remove the personal allowance)")
    async def set_user(self, interaction: discord.Interaction, member: discord.Member,
                       amount: app_commands.Range[float, 0, 1_000_000] | None = None) -> None:
        allowance = None if amount is None else parse_credit_amount(amount)
        settings = await self._change_member(interaction, member, "set-user", allowance=allowance)
        if allowance is None:
            reply = f"<@{member.id}> is back to the server default and their roles' allowances."
        else:
            reply = (f"<@{member.id}> now gets {credits(allowance)} per {settings.period.value}, "
                     "whatever their roles.")
        await self._apply(interaction, reply)

    @app_commands.command(name="grant", description="Add credits to a member's allowance for this period only")
    @app_commands.describe(member="The member", amount="Credits to add (negative to take away)",
                           reason="Why (kept in the ledger)")
    async def grant(self, interaction: discord.Interaction, member: discord.Member,
                    amount: app_commands.Range[float, -1_000_000, 1_000_000],
                    reason: app_commands.Range[str, 1, 200] | None = None) -> None:
        change = parse_credit_amount(amount, allow_negative=True)
        guild_id = _guild(interaction)
        services = self.bot.services
        why = (reason or "granted by a moderator").strip()[:200]
        async with services.db.transaction() as tx:
            await services.ledger.grant(tx, guild_id=guild_id, user_id=member.id, amount=change,
                                        reason=why, actor_id=interaction.user.id)
            await services.quotas.audit(tx, guild_id=guild_id, actor_id=interaction.user.id,
                                        action="grant", target_user_id=member.id, amount=change,
                                        reason=why)
            balance = await services.ledger.balance_in(tx, guild_id, member.id, _roles_of(member))
        verb = f"Granted {credits(change)} to" if change >= 0 else f"Took {credits(-change)} from"
        await self._apply(interaction, (
            f"{verb} <@{member.id}> for {balance.period.this} ({why}). "
            f"They have {credits(balance.remaining)} left."
        ))

    @app_commands.command(name="block", description="Stop a member from generating in this server")
    @app_commands.describe(member="The member", reason="Shown to them when they try")
    async def block(self, interaction: discord.Interaction, member: discord.Member,
                    reason: app_commands.Range[str, 1, 200] | None = None) -> None:
        why = reason.strip()[:200] if reason else None
        await self._change_member(interaction, member, "block", blocked=True, block_reason=why)
        because = f" ({why})" if why else ""
        await self._apply(interaction, f"<@{member.id}> is blocked from generating in this server{because}.")

    @app_commands.command(name="unblock", description="Let a blocked member generate again")
    async def unblock(self, interaction: discord.Interaction, member: discord.Member) -> None:
        await self._change_member(interaction, member, "unblock", blocked=False, block_reason=None)
        await self._apply(interaction, f"<@{member.id}> may generate again.")

    @app_commands.command(name="budget", description="Cap what the whole server may spend per period")
    @app_commands.describe(amount="Credits per period for everyone together (leave out to remove the cap)")
    async def budget(self, interaction: discord.Interaction,
                     amount: app_commands.Range[float, 0, 1_000_000] | None = None) -> None:
        budget = None if amount is None else parse_credit_amount(amount)
        await self._change_guild(interaction, "budget", budget=budget)
        settings, spent, held, resets = await self.bot.services.ledger.guild_usage(_guild(interaction))
        if budget is None:
            reply = "The server has no budget any more: only members' allowances limit spending."
        else:
            reply = (f"The server's {settings.period.adjective} budget is now {credits(budget)} "
                     f"({format_credits(spent + held)} used or reserved {settings.period.this}; "
                     f"it resets {timestamp(resets)}).")
        await self._apply(interaction, reply)

    @app_commands.command(name="moderator-role", description="Let a role use the moderator commands (Manage Server only)")
    @app_commands.describe(role="The role (leave out to remove)")
    async def moderator_role(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        # Only Manage Server may hand out moderator rights, or a moderator could promote anyone.
        if not has_manage_server(interaction):
            raise NotModerator(None)
        role_id = role.id if role else None
        await self._change_guild(interaction, "moderator-role", moderator_role_id=role_id)
        reply = (f"Members with <@&{role_id}> can now use the moderator commands." if role_id else
                 "Only members with Manage Server can use the moderator commands now.")
        await self._apply(interaction, reply)

    @app_commands.command(name="log-channel", description="Post every moderator change in a channel")
    @app_commands.describe(channel="The channel (leave out to stop posting)")
    async def log_channel(self, interaction: discord.Interaction,
                          channel: discord.TextChannel | None = None) -> None:
        channel_id = channel.id if channel else None
        await self._change_guild(interaction, "log-channel", log_channel_id=channel_id)
        reply = (f"Moderator changes will be posted in <#{channel_id}>." if channel_id else
                 "Moderator changes will no longer be posted in a channel.")
        await self._apply(interaction, reply)

    @app_commands.command(name="show", description="A member's quota, or this server's settings")
    @app_commands.describe(member="The member (leave out for the server's settings)")
    async def show(self, interaction: discord.Interaction, member: discord.Member | None = None) -> None:
        guild_id = _guild(interaction)
        services = self.bot.services
        if member is not None:
            balance = await services.ledger.balance(guild_id, member.id, _roles_of(member))
            text = render_member_quota(member.id, balance)
        else:
            async with services.db.transaction() as tx:
                settings = await services.quotas.guild_settings(tx, guild_id)
                roles = await services.quotas.role_allowances(tx, guild_id)
                overrides = await services.quotas.member_overrides(tx, guild_id)
            _, spent, held, resets = await services.ledger.guild_usage(guild_id)
            text = render_guild_quota(settings, roles, overrides, spent, held, resets)
        await interaction.response.send_message(text, ephemeral=True)


def render_member_quota(user_id: int, balance: Balance) -> str:
    lines = [
        f"**<@{user_id}>** · {describe_allowance(balance)}",
        f"Left {balance.period.this}: **{credits(balance.remaining)}** · used "
        f"{format_credits(balance.spent)} · reserved {format_credits(balance.held)}"
        + (f" · granted {format_credits(balance.granted)}" if balance.granted else ""),
        f"Jobs running: {balance.running_jobs} of at most {balance.max_running_jobs} · refills "
        f"{timestamp(balance.refills_at)}",
    ]
    if balance.blocked:
        lines.append("⛔ Blocked" + (f": {balance.block_reason}" if balance.block_reason else ""))
    return "\n".join(lines)


def render_guild_quota(settings: GuildQuotaSettings, roles: dict[int, int],
                       overrides: list, spent: int, held: int, resets) -> str:
    lines = [
        f"**Default allowance**: {credits(settings.default_allowance)} per member per "
        f"{settings.period.value}, at most {settings.max_concurrent_jobs} job(s) at once",
        "**Budget**: " + (
            f"{credits(settings.budget)} per {settings.period.value}, "
            f"{format_credits(spent + held)} used or reserved" if settings.budget is not None
            else f"none ({format_credits(spent)} spent {settings.period.this})"
        ) + f" · resets {timestamp(resets)}",
        "**Role allowances**: " + (", ".join(
            f"<@&{role}> {format_credits(amount)}" for role, amount in sorted(roles.items())
        ) or "none"),
    ]
    personal = [f"<@{user}> {format_credits(quota.allowance)}" for user, quota in overrides
                if quota.allowance is not None]
    blocked = [f"<@{user}>" for user, quota in overrides if quota.blocked]
    lines.append("**Personal allowances**: " + (", ".join(personal) or "none"))
    lines.append("**Blocked**: " + (", ".join(blocked) or "nobody"))
    lines.append("**Moderator role**: " + (f"<@&{settings.moderator_role_id}>"
                                           if settings.moderator_role_id else "none (Manage Server only)"))
    lines.append("**Log channel**: " + (f"<#{settings.log_channel_id}>" if settings.log_channel_id else "none"))
    return "\n".join(lines)


def _guild(interaction: discord.Interaction) -> int:
    assert interaction.guild_id is not None  # moderator_only ran first
    return interaction.guild_id


def _roles_of(member: discord.Member) -> list[int]:
    return [role.id for role in member.roles]


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Quota(bot))
