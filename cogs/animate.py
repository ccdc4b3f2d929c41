"""/animate and the "Animate image" message menu: image to video with Wan 2.5."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.channel_defaults import ChannelDefaults
from bot.errors import UserFacingError
from bot.i18n import Translate, for_interaction
from bot.jobs.inputs import ImageSource
from bot.launch import NeedsPicture
from bot.requests import VIDEO_PROMPT_MAX_CHARS, VideoOptions
from bot.ui.checks import in_guild
from bot.ui.choices import DURATION_CHOICES, QUALITY_CHOICES, duration_options, quality_options
from bot.ui.errors import describe_error, reply_with_error
from bot.ui.message_pictures import first_picture

log = logging.getLogger(__name__)

class NoImageInMessage(UserFacingError):
    def __init__(self) -> None:
        super().__init__("animate.no_image")


class Animate(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        # Context menus cannot be declared inside a cog class; register and remove it by hand.
        self.menu = app_commands.ContextMenu(name="Animate image", callback=self.animate_message)
        self.menu.add_check(in_guild)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @app_commands.command(name="animate", description="Turn a picture into a 5 or 10 second video with Wan 2.5")
    @app_commands.describe(
        image="The picture to animate: it becomes the first frame",
        prompt="What should happen in the video (up to 1000 characters)",
        duration="How long the video lasts (default 5 seconds)",
        quality="Resolution: 480p, 720p (default) or 1080p; higher costs more",
        prompt_extend="Let the model enrich a short prompt (default: on)",
    )
    @app_commands.choices(duration=DURATION_CHOICES)
    @app_commands.choices(quality=QUALITY_CHOICES)  # one call per type of choice (int, str)
    @app_commands.check(in_guild)
    async def animate(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: app_commands.Range[str, 1, VIDEO_PROMPT_MAX_CHARS],
        duration: int | None = None,
        quality: str | None = None,
        prompt_extend: bool | None = None,
    ) -> None:
        # An option the member left out takes the channel's default (/defaults), else the built-in one.
        defaults = await self.bot.launcher.channel_defaults(interaction)
        options = defaults.video_options(prompt, duration, quality, prompt_extend)
        await self.start_video(interaction, ImageSource(image.url, image.filename, image.size), options)

    async def animate_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        source = first_picture(message)
        if source is None:
            raise NoImageInMessage()
        defaults = await self.bot.launcher.channel_defaults(interaction)
        modal = AnimateModal(self, source, defaults, for_interaction(interaction))
        await interaction.response.send_modal(modal)

    async def start_video(self, interaction: discord.Interaction, source: ImageSource,
                          options: VideoOptions) -> None:
        await self.bot.launcher.start(interaction, NeedsPicture(options, source))


class AnimateModal(discord.ui.Modal, title="Animate image"):
    """Asks the menu's user for what the command's options would carry, in their language, with
    the channel's defaults chosen in advance."""

    def __init__(self, cog: Animate, source: ImageSource, defaults: ChannelDefaults, _: Translate) -> None:
        super().__init__(title=_("animate.modal_title"))
        self.cog = cog
        self.source = source
        self.defaults = defaults
        chosen = defaults.or_built_in()
        assert chosen.duration is not None and chosen.quality is not None  # every option filled
        self.prompt: discord.ui.TextInput[AnimateModal] = discord.ui.TextInput(
            style=discord.TextStyle.paragraph, max_length=VIDEO_PROMPT_MAX_CHARS,
            placeholder=_("animate.prompt_placeholder"),
        )
        self.duration: discord.ui.Select[AnimateModal] = discord.ui.Select(
            options=duration_options(_, chosen.duration))
        self.quality: discord.ui.Select[AnimateModal] = discord.ui.Select(options=quality_options(chosen.quality))
        self.add_item(discord.ui.Label(text=_("animate.prompt_label"), component=self.prompt))
        self.add_item(discord.ui.Label(text=_("animate.duration_label"), component=self.duration))
        self.add_item(discord.ui.Label(text=_("animate.quality_label"), component=self.quality))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        options = self.defaults.video_options(
            self.prompt.value,
            self.duration.values[0] if self.duration.values else None,
            self.quality.values[0] if self.quality.values else None,
        )
        await self.cog.start_video(interaction, self.source, options)

    # discord.py calls a modal's on_error with these two (its stubs inherit a view's, with an item).
    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        # Modals are not app commands: their errors bypass the tree's handler, so reply here.
        await reply_with_error(interaction, describe_error(interaction, error))


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Animate(bot))
