"""/quota: moderators decide who may spend how much in their server.

Every change is one call to the quota store (or the ledger, for grants), which checks it and
writes it with its audit row; the cog answers privately and echoes the change to the server's
log channel when one is set. Every subcommand checks the moderator right in code.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.credits import Balance, credit_amount, per_period, period_adjective, this_period
from bot.i18n import ENGLISH, Message, Translate, supported_locale
from bot.periods import Period
from bot.quotas import MAX_JOBS_LIMIT, GuildQuotaSettings
from bot.requests import parse_credit_amount
from bot.ui.account import describe_allowance
from bot.ui.checks import NotModerator, has_manage_server, moderator_only
from bot.ui.moderation_log import echo_to_log_channel
from bot.ui.pages import MESSAGE_CONTENT_CHARS, pack_lines, wrap_list
from bot.ui.render import timestamp
from bot.units import format_credits

log = logging.getLogger(__name__)

PERIOD_CHOICES = [app_commands.Choice(name=period.value, value=period.value) for period in Period]


def jobs(count: int) -> Message:
    """'1 job', '3 jobs'."""
    return Message("quota.jobs_one" if count == 1 else "quota.jobs", count=count)


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

    async def _apply(self, interaction: discord.Interaction, reply: Message) -> None:
        """Answer the moderator in their language, and echo the change to the log channel in the
        server's."""
        await interaction.response.send_message(reply.render(interaction.locale), ephemeral=True)
        await echo_to_log_channel(self.bot, interaction, reply)

    @app_commands.command(name="set-default", description="The allowance of every member without a role or personal one")
    @app_commands.describe(amount="Credits per member per period", period="How often allowances refill (default: keep)",
                           max_jobs="How many jobs one member may run at once (default: keep)")
    @app_commands.choices(period=PERIOD_CHOICES)
    async def set_default(self, interaction: discord.Interaction, amount: app_commands.Range[float, 0, 1_000_000],
                          period: str | None = None,
                          max_jobs: app_commands.Range[int, 1, MAX_JOBS_LIMIT] | None = None) -> None:
        settings = await self.bot.services.quotas.set_default(
            _guild(interaction), interaction.user.id, parse_credit_amount(amount),
            period=Period(period) if period is not None else None, max_jobs=max_jobs)
        await self._apply(interaction, Message(
            "quota.default_set", amount=credit_amount(settings.default_allowance),
            period=per_period(settings.period), jobs=jobs(settings.max_concurrent_jobs)))

    @app_commands.command(name="set-role", description="Give members with a role their own allowance")
    @app_commands.describe(role="The role", amount="Credits per period for its members (leave out to remove)")
    async def set_role(self, interaction: discord.Interaction, role: discord.Role,
                       amount: app_commands.Range[float, 0, 1_000_000] | None = None) -> None:
        allowance = None if amount is None else parse_credit_amount(amount)
        settings = await self.bot.services.quotas.set_role_allowance(
            _guild(interaction), interaction.user.id, role.id, allowance)
        if allowance is None:
            reply = Message("quota.role_removed", role=f"<@&{role.id}>")
        else:
            reply = Message("quota.role_set", role=f"<@&{role.id}>", amount=credit_amount(allowance),
                            period=per_period(settings.period))
        await self._apply(interaction, reply)

    @app_commands.command(name="set-user", description="Give one member a personal allowance, whatever their roles")
    @app_commands.describe(member="The member", amount="Credits per period (leave out to remove the personal allowance)")
    async def set_user(self, interaction: discord.Interaction, member: discord.Member,
                       amount: app_commands.Range[float, 0, 1_000_000] | None = None) -> None:
        allowance = None if amount is None else parse_credit_amount(amount)
        settings = await self.bot.services.quotas.set_member_allowance(
            _guild(interaction), interaction.user.id, member.id, allowance)
        if allowance is None:
            reply = Message("quota.user_removed", member=f"<@{member.id}>")
        else:
            reply = Message("quota.user_set", member=f"<@{member.id}>", amount=credit_amount(allowance),
                            period=per_period(settings.period))
        await self._apply(interaction, reply)

    @app_commands.command(name="grant", description="Add credits to a member's allowance for this period only")
    @app_commands.describe(member="The member", amount="Credits to add (negative to take away)",
                           reason="Why (kept in the ledger)")
    async def grant(self, interaction: discord.Interaction, member: discord.Member,
                    amount: app_commands.Range[float, -1_000_000, 1_000_000],
                    reason: app_commands.Range[str, 1, 200] | None = None) -> None:
        change = parse_credit_amount(amount, allow_negative=True)
        # The ledger keeps the English default; the reply says it in the reader's language.
        why = (reason or "granted by a moderator").strip()[:200]
        shown_why: str | Message = why if reason else Message("quota.grant_reason_default")
        balance = await self.bot.services.ledger.grant(
            guild_id=_guild(interaction), user_id=member.id, amount=change, reason=why,
            actor_id=interaction.user.id, role_ids=_roles_of(member))
        await self._apply(interaction, Message(
            "quota.granted" if change >= 0 else "quota.took", amount=credit_amount(abs(change)),
            member=f"<@{member.id}>", period=this_period(balance.period), reason=shown_why,
            left=credit_amount(balance.remaining)))

    @app_commands.command(name="block", description="Stop a member from generating in this server")
    @app_commands.describe(member="The member", reason="Shown to them when they try")
    async def block(self, interaction: discord.Interaction, member: discord.Member,
                    reason: app_commands.Range[str, 1, 200] | None = None) -> None:
        why = reason.strip()[:200] if reason else None
        await self.bot.services.quotas.block(_guild(interaction), interaction.user.id, member.id, why)
        await self._apply(interaction, Message("quota.blocked_because", member=f"<@{member.id}>", reason=why)
                          if why else Message("quota.blocked", member=f"<@{member.id}>"))

    @app_commands.command(name="unblock", description="Let a blocked member generate again")
    @app_commands.describe(member="The member")
    async def unblock(self, interaction: discord.Interaction, member: discord.Member) -> None:
        await self.bot.services.quotas.unblock(_guild(interaction), interaction.user.id, member.id)
        await self._apply(interaction, Message("quota.unblocked", member=f"<@{member.id}>"))

    @app_commands.command(name="budget", description="Cap what the whole server may spend per period")
    @app_commands.describe(amount="Credits per period for everyone together (leave out to remove the cap)")
    async def budget(self, interaction: discord.Interaction,
                     amount: app_commands.Range[float, 0, 1_000_000] | None = None) -> None:
        budget = None if amount is None else parse_credit_amount(amount)
        await self.bot.services.quotas.set_budget(_guild(interaction), interaction.user.id, budget)
        settings, spent, held, resets = await self.bot.services.ledger.guild_usage(_guild(interaction))
        if budget is None:
            reply = Message("quota.budget_removed")
        else:
            reply = Message("quota.budget_set", adjective=period_adjective(settings.period),
                            amount=credit_amount(budget), used=format_credits(spent + held),
                            period=this_period(settings.period), resets=timestamp(resets))
        await self._apply(interaction, reply)

    @app_commands.command(name="moderator-role", description="Let a role use the moderator commands (Manage Server only)")
    @app_commands.describe(role="The role (leave out to remove)")
    async def moderator_role(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        # Only Manage Server may hand out moderator rights, or a moderator could promote anyone.
        if not has_manage_server(interaction):
            raise NotModerator(None)
        role_id = role.id if role else None
        await self.bot.services.quotas.set_moderator_role(_guild(interaction), interaction.user.id, role_id)
        reply = (Message("quota.moderator_role_set", role=f"<@&{role_id}>") if role_id else
                 Message("quota.moderator_role_removed"))
        await self._apply(interaction, reply)

    @app_commands.command(name="log-channel", description="Post every moderator change in a channel")
    @app_commands.describe(channel="The channel (leave out to stop posting)")
    async def log_channel(self, interaction: discord.Interaction,
                          channel: discord.TextChannel | None = None) -> None:
        channel_id = channel.id if channel else None
        await self.bot.services.quotas.set_log_channel(_guild(interaction), interaction.user.id, channel_id)
        reply = (Message("quota.log_channel_set", channel=f"<#{channel_id}>") if channel_id else
                 Message("quota.log_channel_removed"))
        await self._apply(interaction, reply)

    @app_commands.command(name="show", description="A member's quota, or this server's settings")
    @app_commands.describe(member="The member (leave out for the server's settings)")
    async def show(self, interaction: discord.Interaction, member: discord.Member | None = None) -> None:
        guild_id = _guild(interaction)
        services = self.bot.services
        locale = supported_locale(interaction.locale)
        if member is not None:
            balance = await services.ledger.balance(guild_id, member.id, _roles_of(member))
            pages = [render_member_quota(member.id, balance, locale)]
        else:
            overview = await services.quotas.overview(guild_id)
            _, spent, held, resets = await services.ledger.guild_usage(guild_id)
            pages = render_guild_quota(overview.settings, overview.role_allowances, overview.member_overrides,
                                       spent, held, resets, locale)
        # A server with many role or personal allowances fills several messages.
        await interaction.response.send_message(pages[0], ephemeral=True)
        for page in pages[1:]:
            await interaction.followup.send(page, ephemeral=True)


def render_member_quota(user_id: int, balance: Balance, locale: str = ENGLISH) -> str:
    _ = Translate(locale)
    usage = [_("quota.member_left", period=this_period(balance.period).render(_.locale),
               left=credit_amount(balance.remaining).render(_.locale)),
             _("quota.member_used", amount=format_credits(balance.spent)),
             _("quota.member_reserved", amount=format_credits(balance.held))]
    if balance.granted:
        usage.append(_("quota.member_granted", amount=format_credits(balance.granted)))
    lines = [
        f"**<@{user_id}>** · {describe_allowance(balance, _.locale)}",
        " · ".join(usage),
        _("quota.member_jobs", running=balance.running_jobs, max=balance.max_running_jobs,
          waiting=balance.max_waiting_jobs,
          refills=timestamp(balance.refills_at)),
    ]
    if balance.blocked:
        lines.append(_("quota.member_blocked_because", reason=balance.block_reason) if balance.block_reason
                     else _("quota.member_blocked"))
    return "\n".join(lines)


def render_guild_quota(settings: GuildQuotaSettings, roles: dict[int, int], overrides: list, spent: int,
                       held: int, resets, locale: str = ENGLISH) -> list[str]:
    """The server's settings as private messages within Discord's 2,000 characters each: one for
    most servers; long lists of allowances or blocked members run over several lines and pages."""
    _ = Translate(locale)
    period = per_period(settings.period).render(_.locale)
    separator = _("quota.list_separator")
    if settings.budget is not None:
        budget = _("quota.guild_budget", amount=credit_amount(settings.budget).render(_.locale),
                   period=period, used=format_credits(spent + held), resets=timestamp(resets))
    else:
        budget = _("quota.guild_no_budget", spent=format_credits(spent),
                   period=this_period(settings.period).render(_.locale), resets=timestamp(resets))
    role_list = [f"<@&{role}> {format_credits(amount)}" for role, amount in sorted(roles.items())]
    personal = [f"<@{user}> {format_credits(quota.allowance)}" for user, quota in overrides
                if quota.allowance is not None]
    blocked = [f"<@{user}>" for user, quota in overrides if quota.blocked]

    def listed(key: str, placeholder: str, items: list[str], empty: str) -> list[str]:
        return wrap_list(lambda joined: _(key, **{placeholder: joined}), items or [_(empty)], separator,
                         MESSAGE_CONTENT_CHARS)

    lines = [
        _("quota.guild_default", amount=credit_amount(settings.default_allowance).render(_.locale),
          period=period, max=settings.max_concurrent_jobs),
        budget,
        *listed("quota.guild_roles", "roles", role_list, "quota.none"),
        *listed("quota.guild_personal", "members", personal, "quota.none"),
        *listed("quota.guild_blocked", "members", blocked, "quota.nobody"),
        _("quota.guild_moderator_role", role=f"<@&{settings.moderator_role_id}>" if settings.moderator_role_id
          else _("quota.manage_server_only")),
        _("quota.guild_log_channel", channel=f"<#{settings.log_channel_id}>" if settings.log_channel_id
          else _("quota.none")),
    ]
    return pack_lines(lines, MESSAGE_CONTENT_CHARS)


def _guild(interaction: discord.Interaction) -> int:
    assert interaction.guild_id is not None  # moderator_only ran first
    return interaction.guild_id


def _roles_of(member: discord.Member) -> list[int]:
    return [role.id for role in member.roles]


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Quota(bot))
