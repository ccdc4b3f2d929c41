"""The base of errors that are the user's to fix or know about, as opposed to bugs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.i18n import ENGLISH, Message

if TYPE_CHECKING:
    import discord


class UserFacingError(Exception):
    """Raised with a message written for the member who ran the command, as a catalogue key
    and its fields (see bot/i18n.py), so the reply can be in the member's language.

    The command tree's error handler shows `error.localized(interaction.locale)`; anything that
    is not a UserFacingError is logged with a reference and shown as a generic apology. `str()`
    is the English text, for logs and tests.
    """

    def __init__(self, key: str, /, **fields: Any) -> None:
        self.message = Message(key, **fields)
        super().__init__(self.message.render(ENGLISH))

    def localized(self, locale: discord.Locale | str | None) -> str:
        return self.message.render(locale)
