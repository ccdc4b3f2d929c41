"""Who may run what: command checks enforced in code (Discord's permission hints can be changed
by any server admin, so they are never relied on)."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.errors import UserFacingError


class GuildOnly(UserFacingError, app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("checks.guild_only")


class NotModerator(UserFacingError, app_commands.CheckFailure):
    def __init__(self, moderator_role_id: int | None) -> None:
        if moderator_role_id:
            super().__init__("checks.not_moderator_or_role", role=f"<@&{moderator_role_id}>")
        else:
            super().__init__("checks.not_moderator")


class NotOwner(UserFacingError, app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("checks.not_owner")


def in_guild(interaction: discord.Interaction) -> bool:
    """A command check: credits are per guild, so generation commands need one."""
    if interaction.guild_id is None:
        raise GuildOnly()
    return True


def member_role_ids(interaction: discord.Interaction) -> list[int]:
    """The member's role ids, from the interaction itself (no member cache needed)."""
    user = interaction.user
    return [role.id for role in user.roles] if isinstance(user, discord.Member) else []


def has_manage_server(interaction: discord.Interaction) -> bool:
    # Resolved by Discord for this member in this channel (administrators have every permission).
    return interaction.permissions.manage_guild


async def moderator_only(interaction: discord.Interaction) -> bool:
    """Manage Server, or the moderator role set with /quota moderator-role."""
    in_guild(interaction)
    if has_manage_server(interaction):
        return True
    assert interaction.guild_id is not None
    moderator_role = await interaction.client.services.quotas.moderator_role(interaction.guild_id)  # type: ignore[attr-defined]
    if moderator_role is not None and moderator_role in member_role_ids(interaction):
        return True
    raise NotModerator(moderator_role)


async def owner_only(interaction: discord.Interaction) -> bool:
    if await interaction.client.is_owner(interaction.user):  # type: ignore[attr-defined]
        return True
    raise NotOwner()
