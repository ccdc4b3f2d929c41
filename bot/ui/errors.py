"""The one place where a failed command becomes a clear reply (CommandTree.on_error)."""

from __future__ import annotations

import logging
import secrets

import discord
from discord import app_commands

from bot.credits import BotBudgetExhausted, GuildBudgetExhausted, InsufficientCredits, format_credits
from bot.errors import UserFacingError
from bot.ui.render import timestamp

log = logging.getLogger(__name__)

RESTARTING = ("The bot is restarting, so this command was not run and nothing was charged. "
              "Try again in a minute; jobs already running will finish after the restart.")


def describe_error(interaction: discord.Interaction, error: Exception) -> str:
    """The reply for a failed command; unexpected errors are logged under a short reference."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, InsufficientCredits):
        return (
            f"Not enough credits: this needs {format_credits(error.needed)} and you have "
            f"{format_credits(error.balance.remaining)} left {error.balance.period.this}. Your allowance refills "
            f"{timestamp(error.balance.refills_at)}."
        )
    if isinstance(error, GuildBudgetExhausted | BotBudgetExhausted):
        return f"{error} It resets {timestamp(error.resets_at)}."
    if isinstance(error, UserFacingError):
        return error.localized(interaction.locale)
    if isinstance(error, app_commands.TransformerError):
        return f"The value {error.value!r} is not a valid {error.type.name.lower()} for this option."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f} seconds."
    if isinstance(error, app_commands.MissingPermissions):
        needed = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return f"You need the {needed} permission to use this command."
    if isinstance(error, app_commands.CommandNotFound):
        return "This command is not available right now; the bot's commands may need to be synced."
    if isinstance(error, app_commands.CheckFailure):
        return "You cannot use this command here."
    reference = secrets.token_hex(4)
    command = interaction.command.qualified_name if interaction.command else "?"
    log.error("Command /%s failed (reference %s)", command, reference, exc_info=error)
    return (
        "Something went wrong on the bot's side. If it keeps happening, give the operator "
        f"this reference: `{reference}`."
    )


async def reply_with_error(interaction: discord.Interaction, text: str) -> None:
    """Answer in whichever way the interaction still allows, privately when possible."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
        else:
            await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("Could not send an error reply (HTTP %s, code %s)", exc.status, exc.code)


class ReplyingCommandTree(app_commands.CommandTree):
    """Turns every command failure into a reply: no member ever sees 'This interaction failed'."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if getattr(interaction.client, "shutting_down", False):
            # Nothing was written or charged yet: say so rather than leave the member guessing.
            await reply_with_error(interaction, RESTARTING)
            return False
        return True

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await reply_with_error(interaction, describe_error(interaction, error))
