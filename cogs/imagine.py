"""/imagine: text to image with Wan 2.5."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.jobs.store import JobKind
from bot.launch import Ready
from bot.requests import PROMPT_MAX_CHARS
from bot.ui.checks import in_guild
from bot.ui.choices import size_choices

log = logging.getLogger(__name__)


class Imagine(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @app_commands.command(name="imagine", description="Generate images from a text prompt with Wan 2.5")
    @app_commands.describe(
        prompt="What to draw (English or Chinese, up to 2000 characters)",
        size="Width x height in pixels, e.g. 1280x1280; pick a preset or type your own",
        n="How many images, 1 to 4 (each one costs credits)",
        prompt_extend="Let the model enrich a short prompt (default: on)",
    )
    @app_commands.check(in_guild)
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, PROMPT_MAX_CHARS],
        size: str | None = None,
        n: app_commands.Range[int, 1, 4] | None = None,
        prompt_extend: bool | None = None,
    ) -> None:
        # An option the member left out takes the channel's default (/defaults), else the
        # built-in one. Checked and charged before answering, so a refusal is a private reply.
        defaults = await self.bot.launcher.channel_defaults(interaction)
        request = defaults.image_request(prompt, size, n, prompt_extend)
        await self.bot.launcher.start(interaction, Ready(JobKind.IMAGE, request))

    imagine.autocomplete("size")(size_choices)


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Imagine(bot))
