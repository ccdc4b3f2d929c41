"""/admin: the bot owner's view of the EvoLink account next to what the bot charged."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.evolink.errors import EvoLinkError
from bot.ui.checks import owner_only
from bot.units import format_credits, to_milli


# Shown to server administrators only (a hint); owner_only is the real check.
@app_commands.default_permissions()
class Admin(commands.GroupCog, group_name="admin", group_description="The bot owner's tools"):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await owner_only(interaction)

    @app_commands.command(name="balance", description="EvoLink's account balance next to what the bot charged today")
    async def balance(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        services = self.bot.services
        charged, held = await services.ledger.bot_totals_today()
        ours = (f"The bot charged members **{format_credits(charged)}** credits today (UTC), across "
                f"every server; running jobs hold {format_credits(held)} more.")
        try:
            account = await services.evolink.get_balance()
        except EvoLinkError as exc:
            await interaction.followup.send(f"EvoLink's balance could not be read ({exc}).\n{ours}", ephemeral=True)
            return
        key = ("unlimited" if account.key_unlimited else
               f"{format_credits(to_milli(account.key_remaining_credits))} left"
               if account.key_remaining_credits is not None else "unknown")
        await interaction.followup.send(
            f"**EvoLink account**: {format_credits(to_milli(account.remaining_credits))} credits left, "
            f"{format_credits(to_milli(account.used_credits))} used in all · this API key: {key}\n{ours}\n"
            "-# If EvoLink's used credits grow faster than what the bot charges, some spending is not "
            "going through the bot's ledger (another app on the same key, or jobs charged by EvoLink "
            "but refunded to members).",
            ephemeral=True,
        )


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Admin(bot))
