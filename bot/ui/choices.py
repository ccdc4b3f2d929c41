"""Option choices shared by the commands that take the same options (/animate and /defaults set,
/imagine and /defaults set), so a rule changed in bot/requests.py changes them all."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.i18n import Translate
from bot.requests import VIDEO_DURATIONS, VIDEO_QUALITIES, size_suggestions

DURATION_CHOICES: list[app_commands.Choice[int]] = [app_commands.Choice(name=f"{seconds} seconds", value=seconds) for seconds in VIDEO_DURATIONS]
QUALITY_CHOICES: list[app_commands.Choice[str]] = [app_commands.Choice(name=quality, value=quality) for quality in VIDEO_QUALITIES]


def duration_options(_: Translate, chosen: int) -> list[discord.SelectOption]:
    """The durations for a form's select (the Animate image menu, the Remix and Animate buttons)."""
    return [discord.SelectOption(label=_("forms.seconds", seconds=seconds), value=str(seconds),
                                 default=seconds == chosen) for seconds in VIDEO_DURATIONS]


def quality_options(chosen: str) -> list[discord.SelectOption]:
    return [discord.SelectOption(label=quality, value=quality, default=quality == chosen)
            for quality in VIDEO_QUALITIES]


async def size_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete for a size option: the typed size (or the rule it breaks), then the presets."""
    return [app_commands.Choice(name=label, value=value)
            for label, value in size_suggestions(current, locale=interaction.locale)]
