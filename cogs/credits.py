"""/credits: a member's own balance in this server."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.ui.errors import in_guild
from bot.ui.render import render_balance


class Credits(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @app_commands.command(name="credits", description="Show your credits in this server: used, reserved, left")
    @app_commands.check(in_guild)
    async def credits(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        balance = await self.bot.services.ledger.balance(interaction.guild_id, interaction.user.id)
        await interaction.response.send_message(render_balance(balance), ephemeral=True)


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Credits(bot))
