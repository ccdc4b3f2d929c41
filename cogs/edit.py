"""/edit and the "Edit image" message menu: change a picture with a prompt, or fuse two pictures,
with Wan 2.5 (wan2.5-image-to-image). The Edit button under a result is in bot/ui/result_actions.py."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.channel_defaults import ChannelDefaults
from bot.errors import UserFacingError
from bot.i18n import Translate, for_interaction
from bot.jobs.inputs import ImageSource
from bot.launch import NeedsPicturesToEdit
from bot.requests import PROMPT_MAX_CHARS
from bot.ui.checks import in_guild
from bot.ui.errors import describe_error, reply_with_error
from bot.ui.forms import add_edit_fields, chosen_edit
from bot.ui.message_pictures import message_pictures


class NoPictureToEdit(UserFacingError):
    def __init__(self) -> None:
        super().__init__("edit.no_image")


class Edit(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        # Context menus cannot be declared inside a cog class; register and remove it by hand.
        self.menu = app_commands.ContextMenu(name="Edit image", callback=self.edit_message)
        self.menu.add_check(in_guild)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @app_commands.command(name="edit", description="Change a picture with a prompt, or fuse two pictures, with Wan 2.5")
    @app_commands.describe(
        image="The picture to change",
        prompt="What to change, or how to combine the two pictures (up to 2000 characters)",
        image2="A second picture to fuse with the first (optional)",
        n="How many images, 1 to 4 (each one costs credits)",
        prompt_extend="Let the model enrich a short prompt (default: on)",
    )
    @app_commands.check(in_guild)
    async def edit(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: app_commands.Range[str, 1, PROMPT_MAX_CHARS],
        image2: discord.Attachment | None = None,
        n: app_commands.Range[int, 1, 4] | None = None,
        prompt_extend: bool | None = None,
    ) -> None:
        # An option the member left out takes the channel's default (/defaults), else the built-in one.
        defaults = await self.bot.launcher.channel_defaults(interaction)
        options = defaults.edit_options(prompt, n, prompt_extend)
        sources = tuple(ImageSource(picture.url, picture.filename, picture.size)
                        for picture in (image, image2) if picture is not None)
        await self.bot.launcher.start(interaction, NeedsPicturesToEdit(options, sources))

    async def edit_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        pictures = message_pictures(message)
        if not pictures:
            raise NoPictureToEdit()
        defaults = await self.bot.launcher.channel_defaults(interaction)
        await interaction.response.send_modal(EditModal(self, pictures, defaults, for_interaction(interaction)))


class EditModal(discord.ui.Modal, title="Edit image"):
    """Asks the menu's user what to change and how many images, which picture when the message
    has several, and whether to fuse it with another of them; the channel's defaults chosen in
    advance."""

    def __init__(self, cog: Edit, pictures: list[ImageSource], defaults: ChannelDefaults, _: Translate) -> None:
        super().__init__(title=_("edit.modal_title"))
        self.cog = cog
        self.pictures = pictures
        self.defaults = defaults
        chosen = defaults.or_built_in()
        assert chosen.n is not None  # every option filled
        add_edit_fields(self, _, len(pictures), chosen.n)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        options, sources = chosen_edit(interaction.data, self.pictures, self.defaults)
        await self.cog.bot.launcher.start(interaction, NeedsPicturesToEdit(options, sources))

    # discord.py calls a modal's on_error with these two (its stubs inherit a view's, with an item).
    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        # Modals are not app commands: their errors bypass the tree's handler, so reply here.
        await reply_with_error(interaction, describe_error(interaction, error))


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Edit(bot))


__all__ = ["Edit", "EditModal", "NoPictureToEdit"]
