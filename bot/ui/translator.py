"""Discord's side of the two languages: the translator that gives Discord every command's Chinese
names and descriptions when the commands are synced (the catalogues live in bot/i18n.py)."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.i18n import CHINESE, command_strings


class CatalogueTranslator(app_commands.Translator):
    """Gives Discord the Chinese names and descriptions of every command when they are synced.

    Returning None leaves a string untranslated (Discord then shows the English one).
    """

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContext
    ) -> str | None:
        if locale is not discord.Locale.chinese:  # zh-CN; other locales show the English text
            return None
        return command_strings(CHINESE).get(string.message)
