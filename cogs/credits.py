"""/credits: a member's own balance in this server, and their last jobs."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.i18n import supported_locale
from bot.ui.account import render_balance
from bot.ui.checks import in_guild, member_role_ids

RECENT_JOBS = 5


class Credits(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @app_commands.command(name="credits", description="Show your credits in this server: used, reserved, left")
    @app_commands.check(in_guild)
    async def credits(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        services = self.bot.services
        balance = await services.ledger.balance(
            interaction.guild_id, interaction.user.id, member_role_ids(interaction)
        )
        jobs = await services.store.recent_for_member(interaction.guild_id, interaction.user.id, RECENT_JOBS)
        costs = await services.ledger.job_costs(job.id for job in jobs)
        recent = [(job, costs[job.id].charged) for job in jobs]
        text = render_balance(balance, recent, supported_locale(interaction.locale))
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Credits(bot))
