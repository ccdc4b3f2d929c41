"""The one place where a failed command becomes a clear reply (CommandTree.on_error)."""

from __future__ import annotations

import logging
import secrets

import discord
from discord import app_commands

from bot.credits import (
    BotBudgetExhausted,
    GuildBudgetExhausted,
    InsufficientCredits,
    ServerCeilingReached,
    format_credits,
    this_period,
)
from bot.errors import UserFacingError
from bot.i18n import Message, for_interaction
from bot.ui.render import timestamp

log = logging.getLogger(__name__)

RESTARTING = Message("errors.restarting")


def describe_error(interaction: discord.Interaction, error: Exception) -> str:
    """The reply for a failed command, in the member's language; unexpected errors are logged
    under a short reference."""
    _ = for_interaction(interaction)
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, InsufficientCredits):
        balance = error.balance
        return _("errors.not_enough_credits", needed=format_credits(error.needed),
                 remaining=format_credits(balance.remaining),
                 period=this_period(balance.period).render(_.locale), refills=timestamp(balance.refills_at))
    if isinstance(error, GuildBudgetExhausted | ServerCeilingReached | BotBudgetExhausted):
        return _("errors.budget_resets", error=error.localized(_.locale), when=timestamp(error.resets_at))
    if isinstance(error, UserFacingError):
        return error.localized(_.locale)
    if isinstance(error, app_commands.TransformerError):
        kind = error.type.name.lower()
        return _("errors.invalid_value", value=repr(error.value), type=_(f"errors.option_type.{kind}"))
    if isinstance(error, app_commands.CommandOnCooldown):
        return _("errors.cooldown", seconds=f"{error.retry_after:.0f}")
    if isinstance(error, app_commands.MissingPermissions):
        needed = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return _("errors.missing_permissions", permissions=needed)
    if isinstance(error, app_commands.CommandNotFound):
        return _("errors.command_not_found")
    if isinstance(error, app_commands.CheckFailure):
        return _("errors.check_failed")
    reference = secrets.token_hex(4)
    command = interaction.command.qualified_name if interaction.command else "?"
    log.error("Command /%s failed (reference %s)", command, reference, exc_info=error)
    return _("errors.unexpected", reference=reference)


# Set in `interaction.extras` while the interaction's public answer is still the "thinking…"
# placeholder of a public deferral: a refusal then must not take the placeholder's place.
PUBLIC_PLACEHOLDER = "wan_public_placeholder"


async def defer_publicly(interaction: discord.Interaction) -> discord.InteractionCallbackResponse | None:
    """Defer with a public "thinking…" placeholder that the job's message will replace. Until it
    does (`placeholder_taken`), an error reply removes the placeholder and answers privately."""
    deferral = await interaction.response.defer(thinking=True)
    interaction.extras[PUBLIC_PLACEHOLDER] = True
    return deferral


def placeholder_taken(interaction: discord.Interaction) -> None:
    """The public placeholder became the job's message: errors from now on must leave it alone."""
    interaction.extras.pop(PUBLIC_PLACEHOLDER, None)


async def reply_with_error(interaction: discord.Interaction, text: str) -> None:
    """Answer in whichever way the interaction still allows, privately when possible."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
        elif interaction.extras.pop(PUBLIC_PLACEHOLDER, False):
            await answer_privately_after_public_deferral(interaction, text)
        else:
            await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("Could not send an error reply (HTTP %s, code %s)", exc.status, exc.code)


async def answer_privately_after_public_deferral(interaction: discord.Interaction, text: str) -> None:
    """After a public deferral, Discord turns the first followup into the public placeholder
    (the ephemeral flag is ignored), so everyone would read a refusal meant for one member, with
    their balance. Remove the placeholder first; the followup is then a private message."""
    try:
        await interaction.delete_original_response()
    except discord.HTTPException as exc:
        log.info("Could not delete the public placeholder (HTTP %s, code %s)", exc.status, exc.code)
    await interaction.followup.send(text, ephemeral=True)


class ReplyingCommandTree(app_commands.CommandTree):
    """Turns every command failure into a reply: no member ever sees 'This interaction failed'."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if getattr(interaction.client, "shutting_down", False):
            # Nothing was written or charged yet: say so rather than leave the member guessing.
            await reply_with_error(interaction, RESTARTING.render(interaction.locale))
            return False
        return True

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await reply_with_error(interaction, describe_error(interaction, error))
