"""/animate and the "Animate image" message menu: image to video with Wan 2.5."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.channel_defaults import ChannelDefaults
from bot.errors import UserFacingError
from bot.i18n import Translate, for_interaction, supported_locale
from bot.jobs.inputs import ImageSource, prepare_video_input
from bot.jobs.store import JobKind
from bot.requests import (
    VIDEO_PROMPT_MAX_CHARS,
    VideoOptions,
    VideoRequest,
    parse_video_options,
)
from bot.ui.checks import in_guild, member_role_ids
from bot.ui.choices import DURATION_CHOICES, QUALITY_CHOICES, duration_options, quality_options
from bot.ui.errors import defer_publicly, describe_error, reply_with_error

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class NoImageInMessage(UserFacingError):
    def __init__(self) -> None:
        super().__init__("animate.no_image")


def first_image(message: discord.Message) -> ImageSource | None:
    """The first picture of a message: an image attachment, else an embed's image or thumbnail
    (link previews). The bytes are checked later; this only finds a candidate.

    For an embed, only Discord's cached copy (`proxy_url`, on its media proxy) is a candidate:
    its `url` is the remote site's address, which anyone can point anywhere."""
    for attachment in message.attachments:
        claims_image = (attachment.content_type or "").startswith("image/") or (
            attachment.filename.lower().endswith(IMAGE_EXTENSIONS)
        )
        if claims_image or attachment.width:
            return ImageSource(attachment.url, attachment.filename, attachment.size)
    for embed in message.embeds:
        for picture in (embed.image, embed.thumbnail):
            if picture and picture.proxy_url:
                return ImageSource(picture.proxy_url, "the embedded picture")
    return None


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
    @app_commands.choices(duration=DURATION_CHOICES, quality=QUALITY_CHOICES)
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
        assert interaction.guild_id is not None and interaction.channel_id is not None
        # An option the member left out takes the channel's default (/defaults), else the built-in one.
        defaults = await self.bot.services.channel_defaults.get(interaction.guild_id, interaction.channel_id)
        options = parse_video_options(
            prompt,
            defaults.duration if duration is None else duration,
            quality if quality and quality.strip() else defaults.quality,
            defaults.prompt_extend if prompt_extend is None else prompt_extend,
        )
        await self.start_video(interaction, ImageSource(image.url, image.filename, image.size), options)

    async def animate_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        source = first_image(message)
        if source is None:
            raise NoImageInMessage()
        assert interaction.guild_id is not None and interaction.channel_id is not None
        defaults = await self.bot.services.channel_defaults.get(interaction.guild_id, interaction.channel_id)
        modal = AnimateModal(self, source, defaults, for_interaction(interaction))
        await interaction.response.send_modal(modal)

    async def start_video(
        self, interaction: discord.Interaction, source: ImageSource, options: VideoOptions,
        *, parent_job_id: int | None = None,
    ) -> None:
        """The /animate flow, shared by the command, the menu's modal and the buttons of a
        finished job (which pass the job the video starts from as `parent_job_id`)."""
        services = self.bot.services
        assert interaction.guild_id is not None and interaction.channel_id is not None
        # Refuse privately (blocked prompt, blocked member, not enough credits...) before anything
        # public happens; the real, atomic reservation comes once the picture is known to be usable.
        services.runner.check_accepting()
        await services.blocked_terms.check(interaction.guild_id, options.prompt)
        roles = member_role_ids(interaction)
        estimate = services.settings.prices.video_estimate(options.duration, options.quality)
        await services.ledger.check_allowed(interaction.guild_id, interaction.user.id, roles, estimate)

        # From here a refusal is private too: it replaces the public placeholder (bot/ui/errors.py).
        deferral = await defer_publicly(interaction)
        locale = supported_locale(interaction.locale)
        # One picture of a member's at a time: six parallel /animate from someone who can afford
        # one video download and decode one picture; the others find the credits reserved.
        async with services.media.preparing_picture(interaction.user.id):
            await services.ledger.check_allowed(interaction.guild_id, interaction.user.id, roles, estimate)
            prepared = await prepare_video_input(
                source, media=services.discord_media, evolink=services.evolink, guild_id=interaction.guild_id,
                max_download_bytes=services.settings.max_input_image_bytes, locale=locale)
            request = VideoRequest(
                prompt=options.prompt, duration=options.duration, quality=options.quality,
                prompt_extend=options.prompt_extend, image_url=prepared.image_url,
                image_width=prepared.width, image_height=prepared.height,
                input_notes=prepared.notes,
            )
            submission = await services.runner.submit(
                kind=JobKind.VIDEO, guild_id=interaction.guild_id, channel_id=interaction.channel_id,
                user_id=interaction.user.id, interaction_id=interaction.id, request=request,
                role_ids=roles, locale=locale, parent_job_id=parent_job_id,
            )
        async with self.bot.cancelled_unless_started(submission):
            await self.bot.follow_job_in_reply(interaction, submission, deferral)


class AnimateModal(discord.ui.Modal, title="Animate image"):
    """Asks the menu's user for what the command's options would carry, in their language, with
    the channel's defaults chosen in advance."""

    def __init__(self, cog: Animate, source: ImageSource, defaults: ChannelDefaults, _: Translate) -> None:
        super().__init__(title=_("animate.modal_title"))
        self.cog = cog
        self.source = source
        self.defaults = defaults
        chosen = defaults.or_built_in()
        self.prompt = discord.ui.TextInput(
            style=discord.TextStyle.paragraph, max_length=VIDEO_PROMPT_MAX_CHARS,
            placeholder=_("animate.prompt_placeholder"),
        )
        self.duration = discord.ui.Select(options=duration_options(_, chosen.duration))
        self.quality = discord.ui.Select(options=quality_options(chosen.quality))
        self.add_item(discord.ui.Label(text=_("animate.prompt_label"), component=self.prompt))
        self.add_item(discord.ui.Label(text=_("animate.duration_label"), component=self.duration))
        self.add_item(discord.ui.Label(text=_("animate.quality_label"), component=self.quality))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        defaults = self.defaults
        options = parse_video_options(
            self.prompt.value,
            self.duration.values[0] if self.duration.values else defaults.duration,
            self.quality.values[0] if self.quality.values else defaults.quality,
            defaults.prompt_extend,
        )
        await self.cog.start_video(interaction, self.source, options)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        # Modals are not app commands: their errors bypass the tree's handler, so reply here.
        await reply_with_error(interaction, describe_error(interaction, error))


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Animate(bot))
