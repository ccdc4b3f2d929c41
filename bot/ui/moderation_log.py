"""Post to the guilds' log channels, when one is set: moderator changes, and pauses of the bot."""

from __future__ import annotations

import logging

import discord

from bot.i18n import Message
from bot.quotas import QuotaStore

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


async def post_to_every_log_channel(client: discord.Client, quotas: QuotaStore, notice: Message) -> None:
    """Post `notice` in every log channel moderators have set, in each server's language (once the
    guild is cached), e.g. that generations paused or resumed. Best effort, like the echo."""
    for guild_id, channel_id in await quotas.log_channels():
        guild = client.get_guild(guild_id)
        try:
            await client.get_partial_messageable(channel_id).send(
                notice.render(guild.preferred_locale if guild else None))
        except discord.HTTPException as exc:
            log.warning("Could not post to the log channel %d of guild %d (HTTP %s, code %s)",
                        channel_id, guild_id, exc.status, exc.code)
