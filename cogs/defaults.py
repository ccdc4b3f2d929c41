"""/defaults: moderators choose, per channel, what /imagine and /animate use for an option a
member leaves out (a brainstorming channel can make 4 images by default). Anyone can see them.

Every change is one call to the channel defaults store, which checks it and writes it with its
audit row; the cog answers privately in the moderator's language, and echoes the change to the
server's log channel (when one is set) in the server's language.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.channel_defaults import (
    BUILT_IN,
    EDIT_OPTIONS,
    IMAGE_OPTIONS,
    OPTIONS,
    VIDEO_OPTIONS,
    ChannelDefaults,
)
from bot.errors import UserFacingError
from bot.i18n import ENGLISH, Translate, command_strings, for_interaction
from bot.requests import IMAGE_COUNT_RANGE
from bot.ui.checks import in_guild, moderator_only
from bot.ui.choices import DURATION_CHOICES, QUALITY_CHOICES, size_choices
from bot.ui.moderation_log import echo_to_log_channel
from bot.ui.render import timestamp

log = logging.getLogger(__name__)

MIN_IMAGES, MAX_IMAGES = IMAGE_COUNT_RANGE


# A hint only: Discord shows the group to members with Manage Server by default, and server admins
# can change that. set and clear check the moderator right in code; show is for everyone.
@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Defaults(commands.GroupCog, group_name="defaults",
               group_description="What /imagine and /animate use in a channel when an option is left out"):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="set",
                          description="Moderators: set this channel's defaults for /imagine and /animate")
    @app_commands.describe(
        size="/imagine: width x height in pixels, e.g. 1280x1280; pick a preset or type your own",
        n="/imagine: how many images, 1 to 4",
        prompt_extend="/imagine and /animate: let the model enrich a short prompt",
        duration="/animate: how long the video lasts",
        quality="/animate: resolution, 480p, 720p or 1080p",
        channel="The channel (default: this one)",
    )
    @app_commands.choices(duration=DURATION_CHOICES)
    @app_commands.choices(quality=QUALITY_CHOICES)  # one call per type of choice (int, str)
    @app_commands.check(moderator_only)
    async def set_defaults(
        self,
        interaction: discord.Interaction,
        size: str | None = None,
        n: app_commands.Range[int, MIN_IMAGES, MAX_IMAGES] | None = None,
        prompt_extend: bool | None = None,
        duration: int | None = None,
        quality: str | None = None,
        channel: discord.TextChannel | None = None,
    ) -> None:
        chosen = {"size": size, "n": n, "prompt_extend": prompt_extend, "duration": duration,
                  "quality": quality}
        changes = {option: value for option, value in chosen.items() if value is not None}
        if not changes:
            _ = for_interaction(interaction)
            await interaction.response.send_message(_("defaults.nothing_to_set", options=", ".join(
                _option_name(_, option) for option in OPTIONS)), ephemeral=True)
            return
        guild_id, channel_id = _target(interaction, channel)
        services = self.bot.services
        # The values are checked inside: a bad one raises before anything (or any audit row) is written.
        after = await services.channel_defaults.set(None, guild_id, channel_id, interaction.user.id, **changes)

        def reply(_: Translate) -> str:
            return _("defaults.changed", channel=f"<#{channel_id}>",
                     settings=_list(_, (_setting(_, option, getattr(after, option), here=True)
                                        for option in OPTIONS if option in changes)))

        await self._answer(interaction, reply)

    set_defaults.autocomplete("size")(size_choices)

    @app_commands.command(name="show",
                          description="What /imagine and /animate use in this channel when an option is left out")
    @app_commands.describe(channel="The channel (default: this one)")
    @app_commands.check(in_guild)
    async def show(self, interaction: discord.Interaction,
                   channel: discord.TextChannel | None = None) -> None:
        guild_id, channel_id = _target(interaction, channel)
        defaults = await self.bot.services.channel_defaults.get(guild_id, channel_id)
        await interaction.response.send_message(
            render_defaults(for_interaction(interaction), channel_id, defaults), ephemeral=True)

    @app_commands.command(name="clear",
                          description="Moderators: go back to the built-in defaults in this channel")
    @app_commands.describe(option="The one default to clear (default: all of them)",
                           channel="The channel (default: this one)")
    @app_commands.choices(option=[app_commands.Choice(name=option, value=option) for option in OPTIONS])
    @app_commands.check(moderator_only)
    async def clear(self, interaction: discord.Interaction, option: str | None = None,
                    channel: discord.TextChannel | None = None) -> None:
        if option is not None and option not in OPTIONS:
            # Discord's client offers only the choices; a crafted interaction can carry anything.
            raise UserFacingError("defaults.unknown_option", option=repr(option[:40]))
        guild_id, channel_id = _target(interaction, channel)
        services = self.bot.services
        cleared = await services.channel_defaults.clear(
            None, guild_id, channel_id, interaction.user.id, None if option is None else [option])
        where = f"<#{channel_id}>"
        _ = for_interaction(interaction)
        if not cleared:
            # Nothing changed: nothing to audit or echo, but the moderator learns why.
            text = (_("defaults.nothing_to_clear", channel=where) if option is None else
                    _("defaults.nothing_to_clear_one", channel=where, option=_option_name(_, option)))
            await interaction.response.send_message(text, ephemeral=True)
            return

        def reply(_: Translate) -> str:
            built_in = (_("defaults.setting", option=_option_name(_, name),
                          value=_value(_, name, getattr(BUILT_IN, name))) for name in cleared)
            return _("defaults.cleared", channel=where, settings=_list(_, built_in))

        await self._answer(interaction, reply)

    async def _answer(self, interaction: discord.Interaction, reply: Callable[[Translate], str]) -> None:
        """Answer the moderator privately in their language, then tell the log channel in the
        server's (every moderator reads it)."""
        await interaction.response.send_message(reply(for_interaction(interaction)), ephemeral=True)
        await echo_to_log_channel(self.bot, interaction, reply(Translate(interaction.guild_locale)))


def render_defaults(_: Translate, channel_id: int, defaults: ChannelDefaults) -> str:
    """/defaults show: every option of each command, this channel's value or the built-in one."""
    effective = defaults.or_built_in()
    lines = [_("defaults.show_title", channel=f"<#{channel_id}>")]
    for command, options in (("/imagine", IMAGE_OPTIONS), ("/edit", EDIT_OPTIONS), ("/animate", VIDEO_OPTIONS)):
        settings = _list(_, (_setting(_, option, getattr(effective, option), here=defaults.is_set(option))
                             for option in options))
        lines.append(_("defaults.show_command", command=command, settings=settings))
    if defaults.options_set and defaults.updated_by is not None and defaults.updated_at is not None:
        lines.append(_("defaults.show_changed_by", moderator=f"<@{defaults.updated_by}>",
                       when=timestamp(defaults.updated_at)))
    else:
        lines.append(_("defaults.show_none"))
    return "\n".join(lines)


def _setting(_: Translate, option: str, value: object, *, here: bool) -> str:
    """'n **4**' for this channel's value, 'n 1 (built-in)' for the bot's."""
    key = "defaults.setting_here" if here else "defaults.setting_built_in"
    return _(key, option=_option_name(_, option), value=_value(_, option, value))


def _option_name(_: Translate, option: str) -> str:
    """An option's name as the reader's client shows it: translated by the catalogue's
    `[commands.*]` tables, like the command itself."""
    return option if _.locale == ENGLISH else command_strings(_.locale).get(option, option)


def _value(_: Translate, option: str, value: object) -> str:
    if option == "prompt_extend":
        return _("defaults.on") if value else _("defaults.off")
    if option == "duration":
        return _("defaults.seconds", seconds=value)
    return str(value)


def _list(_: Translate, settings: Iterable[str]) -> str:
    return _("defaults.separator").join(settings)


def _target(interaction: discord.Interaction, channel: discord.TextChannel | None) -> tuple[int, int]:
    """(guild id, channel id) the command is about: the channel option, else the current channel."""
    assert interaction.guild_id is not None and interaction.channel_id is not None  # guild-only checks ran
    if channel is None:
        return interaction.guild_id, interaction.channel_id
    # discord.py looks the option's channel up in this server only (an id from elsewhere is
    # refused before the command runs), and the TextChannel type admits only text channels.
    return interaction.guild_id, channel.id


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Defaults(bot))
