"""/moderation blocked-terms: words and patterns a server does not allow in prompts.

The blocked-terms store checks each change and writes it with its audit row; the cog answers
privately and echoes the change to the server's log channel when one is set."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.i18n import CommandPath, Message, for_interaction
from bot.ui.checks import moderator_only
from bot.ui.moderation_log import echo_to_log_channel

LIST_LIMIT_CHARS = 1800


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Moderation(commands.GroupCog, group_name="moderation", group_description="Moderators: what prompts may contain"):
    blocked_terms = app_commands.Group(name="blocked-terms", description="Words and patterns refused in prompts")

    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await moderator_only(interaction)

    @blocked_terms.command(name="add", description="Refuse prompts that contain a word or match a pattern")
    @app_commands.describe(term="The word or phrase (case, accents and hidden characters are ignored)",
                           regex="Treat it as a regular expression (default: no)")
    async def add(self, interaction: discord.Interaction, term: app_commands.Range[str, 1, 200],
                  regex: bool = False) -> None:
        assert interaction.guild_id is not None
        services = self.bot.services
        added = await services.blocked_terms.add(interaction.guild_id, term, is_regex=regex,
                                                 added_by=interaction.user.id)
        kind = "pattern" if added.is_regex else "term"
        term_code = f"`{_code(added.term)}`"
        reply = Message(f"moderation.added_{kind}", term=term_code)
        await interaction.response.send_message(reply.render(interaction.locale), ephemeral=True)
        await echo_to_log_channel(self.bot, interaction,
                                  Message(f"moderation.log_added_{kind}", term=term_code))

    @blocked_terms.command(name="remove", description="Allow a blocked word or pattern again")
    @app_commands.describe(term="Exactly as it was added")
    async def remove(self, interaction: discord.Interaction, term: app_commands.Range[str, 1, 200]) -> None:
        assert interaction.guild_id is not None
        services = self.bot.services
        removed = await services.blocked_terms.remove(interaction.guild_id, term, actor_id=interaction.user.id)
        _ = for_interaction(interaction)
        if removed is None:
            listing = CommandPath("moderation", "blocked-terms", "list").render(_.locale)
            await interaction.response.send_message(
                _("moderation.not_listed", term=f"`{_code(term)}`", command=listing), ephemeral=True)
            return
        term_code = f"`{_code(removed.term)}`"
        await interaction.response.send_message(_("moderation.removed", term=term_code), ephemeral=True)
        await echo_to_log_channel(self.bot, interaction, Message("moderation.log_removed", term=term_code))

    @blocked_terms.command(name="list", description="Show this server's blocked words and patterns")
    async def list(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        _ = for_interaction(interaction)
        terms = await self.bot.services.blocked_terms.list(interaction.guild_id)
        if not terms:
            text = _("moderation.list_empty")
        else:
            lines = [_("moderation.list_title", count=len(terms))]
            for term in terms:
                line = (_("moderation.list_pattern", term=f"`{_code(term.term)}`") if term.is_regex
                        else _("moderation.list_term", term=f"`{_code(term.term)}`"))
                if sum(len(x) + 1 for x in lines) + len(line) > LIST_LIMIT_CHARS:
                    lines.append(_("moderation.list_more", count=len(terms) - len(lines) + 1))
                    break
                lines.append(line)
            text = "\n".join(lines)
        await interaction.response.send_message(text, ephemeral=True)


def _code(text: str) -> str:
    """Inside `code`, only a backtick can break out."""
    return text.replace("`", "ˋ")


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Moderation(bot))
