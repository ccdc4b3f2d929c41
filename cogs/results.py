"""The buttons and forms under finished jobs: registered once, so they answer after any restart."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import discord
from discord.ext import commands

from bot.app import WanBot
from bot.ui.buttons import Action, ResultButton
from bot.ui.forms import FORM_ID
from bot.ui.result_actions import ResultActions


class Results(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @cached_property
    def actions(self) -> ResultActions:
        # On first use: the cog is loaded (and its commands read) before anything is clicked.
        return ResultActions(self.bot.services, self.bot.launcher)

    async def cog_load(self) -> None:
        # A template, not a view per message: any message carrying a matching custom_id dispatches.
        self.bot.add_dynamic_items(ResultButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ResultButton)

    @commands.Cog.listener()
    async def on_result_button(self, interaction: discord.Interaction, job_id: int, action: Action) -> None:
        """A click on a result's button (see ResultButton.callback)."""
        await self.actions.run_action(interaction, job_id, action)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Remix and Animate forms: answered from their custom_id, not from a modal kept in memory."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: Mapping[str, Any] = interaction.data or {}
        match = FORM_ID.fullmatch(str(data.get("custom_id", "")))
        if match:
            await self.actions.run_form(interaction, int(match["job_id"]), match["form"])


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Results(bot))
