"""/help: every command and button in a few scannable lines, with examples, in the reader's language."""

from __future__ import annotations

import re

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.credits import format_credits
from bot.i18n import (
    CommandPath,
    Translate,
    command_name,
    for_interaction,
)
from bot.requests import DEFAULT_VIDEO_QUALITY, SIZE_PRESETS, VIDEO_DURATIONS
from bot.ui.buttons import BUTTON_EMOJI
from bot.ui.render import COLOUR_WORKING

COLOUR = COLOUR_WORKING  # the colour of jobs at work: help belongs to the same family
_RATIO = re.compile(r"\d+:\d+")
# The buttons under a result, as bot/ui/buttons.py shows them (its labels are reused so the two
# always match).
MODERATOR_COMMANDS = ("defaults", "quota", "moderation", "usage")


def example(locale: str, command: str, **options: object) -> str:
    """'`/imagine prompt:a fox n:2`', with names as the reader types them."""
    parts = [f"/{command_name(locale, command)}"]
    parts.extend(f"{command_name(locale, option)}:{value}" for option, value in options.items())
    return f"`{' '.join(parts)}`"


def size_presets() -> str:
    """'`1280x1280` 1:1 · `1104x1472` 3:4 · ...': the presets /imagine suggests, without repeats."""
    seen: set[str] = set()
    shown = []
    for preset in SIZE_PRESETS:
        ratio = _RATIO.search(preset.label)
        label = ratio.group(0) if ratio else ""
        if preset.size not in seen:
            seen.add(preset.size)
            shown.append(f"`{preset.size}` {label}".strip())
    return " · ".join(shown)


def help_embeds(locale: str, *, image_price: int, edit_price: int, video_price: int) -> list[discord.Embed]:
    """The whole help: creating, your account, the buttons, and moderators' commands. Prices are
    in milli-credits (the operator's settings)."""
    _ = Translate(locale)

    def command(name: str) -> str:
        return CommandPath(name).render(locale)

    create = discord.Embed(title=_("help.title"), description=_("help.intro", credits=command("credits")),
                           colour=COLOUR)
    create.add_field(name=command("imagine"), inline=False, value="\n".join([
        _("help.imagine", size=command_name(locale, "size"), n=command_name(locale, "n"),
          presets=size_presets(), price=format_credits(image_price)),
        example(locale, "imagine", prompt=_("help.imagine_prompt_1")),
        example(locale, "imagine", prompt=_("help.imagine_prompt_2"), size="1664x936", n=2),
    ]))
    create.add_field(name=command("edit"), inline=False, value="\n".join([
        _("help.edit", menu=command_name(locale, "Edit image"), image2=command_name(locale, "image2"),
          n=command_name(locale, "n"), price=format_credits(edit_price)),
        example(locale, "edit", image=_("help.animate_image"), prompt=_("help.edit_prompt_1")),
        example(locale, "edit", image=_("help.animate_image"), prompt=_("help.edit_prompt_2"),
                image2=_("help.edit_image2")),
    ]))
    create.add_field(name=command("animate"), inline=False, value="\n".join([
        _("help.animate", menu=command_name(locale, "Animate image"), price=format_credits(video_price),
          short=VIDEO_DURATIONS[0], long=VIDEO_DURATIONS[-1], quality=DEFAULT_VIDEO_QUALITY),
        example(locale, "animate", image=_("help.animate_image"), prompt=_("help.animate_prompt"),
                duration=VIDEO_DURATIONS[-1]),
    ]))
    create.add_field(name=command("credits"), inline=False,
                     value=f"{_('help.credits')}\n{example(locale, 'credits')}")
    jobs_examples = f"{example(locale, 'jobs')} · {example(locale, 'jobs', count=25)}"
    create.add_field(name=command("jobs"), inline=False, value=f"{_('help.jobs')}\n{jobs_examples}")
    create.add_field(name=command("show"), inline=False,
                     value=f"{_('help.show')}\n{example(locale, 'show', job=42)}")

    buttons = discord.Embed(title=_("help.buttons_title"), colour=COLOUR, description="\n".join(
        _("help.line", name=f"{emoji} **{_(f'buttons.{action}')}**", text=_(f"help.button_{action}"))
        for action, emoji in BUTTON_EMOJI.items()
    ))

    generators = {"imagine": command("imagine"), "edit": command("edit"), "animate": command("animate")}
    moderators = discord.Embed(title=_("help.moderators_title"), colour=COLOUR, description="\n".join(
        _("help.line", name=f"**{command(name)}**", text=_(f"help.moderator_{name}", **generators))
        for name in MODERATOR_COMMANDS
    ))
    moderators.set_footer(text=_("help.footer"))
    return [create, buttons, moderators]


class Help(commands.Cog):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot

    @app_commands.command(name="help", description="What each command and button does, with examples")
    async def show_help(self, interaction: discord.Interaction) -> None:
        prices = self.bot.services.settings.prices
        embeds = help_embeds(
            for_interaction(interaction).locale,
            image_price=prices.image_estimate(1),
            edit_price=prices.edit_estimate(1),
            video_price=prices.video_estimate(VIDEO_DURATIONS[0], DEFAULT_VIDEO_QUALITY),
        )
        await interaction.response.send_message(embeds=embeds, ephemeral=True)


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Help(bot))
