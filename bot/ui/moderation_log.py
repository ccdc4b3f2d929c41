"""Echo moderator changes to the guild's log channel, when one is set."""

from __future__ import annotations

import logging

import discord

from bot.i18n import Message

log = logging.getLogger(__name__)


async def echo_to_log_channel(bot: discord.Client, interaction: discord.Interaction,
                              text: str | Message) -> None:
    """Post `text`, signed by the moderator, in the guild's log channel. Best effort: the change
    is already committed and audited; a missing permission only costs the echo (and a log line).

    A Message is written in the guild's preferred language: the channel is read by every
    moderator, not just the one who made the change."""
    guild_id = interaction.guild_id
    if guild_id is None:
        return
    channel_id = await bot.services.quotas.log_channel(guild_id)  # type: ignore[attr-defined]
    if channel_id is None:
        return
    if isinstance(text, Message):
        text = text.render(interaction.guild_locale)
    try:
        await bot.get_partial_messageable(channel_id).send(f"🛡️ <@{interaction.user.id}>: {text}")
    except discord.HTTPException as exc:
        log.warning("Could not post to the log channel %d of guild %d (HTTP %s, code %s)",
                    channel_id, guild_id, exc.status, exc.code)
