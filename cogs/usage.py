"""/usage: moderators see where this server's credits went."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WanBot
from bot.credits import LedgerRow, Spender, this_period
from bot.i18n import Translate, for_interaction
from bot.jobs.store import JobKind
from bot.ui.checks import moderator_only
from bot.units import format_credits

# kind: the ledger row's (reserve, settle, refund, grant, adjust); job_kind: its job's (image, edit, video).
CSV_COLUMNS = ("id", "time_utc", "user_id", "job_id", "job_kind", "kind", "credits", "reason", "actor_id")

# What makes a spreadsheet run a cell as a formula (OWASP, "CSV Injection"): these first characters,
# also in their full-width and small forms (＝, ＋, －, ＠, ﹦…), which some spreadsheets read as the
# ASCII ones; NFKC maps those forms to ASCII. Spaces before them do not make such a cell safe.
FORMULA_STARTS = frozenset("=+-@")
FORMULA_CONTROLS = ("\t", "\r")
# The mark that makes a spreadsheet show a cell as text; an exported cell that starts with it got it here.
TEXT_MARK = "'"
# A plain decimal such as the credits column's -5 or 1.5: a spreadsheet reads it as a number, never a formula.
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def spreadsheet_safe(cell: str) -> str:
    """The cell as a spreadsheet will only ever show it as text: a cell it would run as a formula
    gets a leading `'`, and so does one that already starts with `'`, so that dropping one leading
    `'` always gives the exact text back. Plain numbers stay numbers."""
    if PLAIN_NUMBER.fullmatch(cell):
        return cell
    if cell.startswith(FORMULA_CONTROLS) or cell.startswith(TEXT_MARK):
        return TEXT_MARK + cell
    first = cell.lstrip()[:1]
    if first and unicodedata.normalize("NFKC", first) in FORMULA_STARTS:
        return TEXT_MARK + cell
    return cell


def ledger_csv(rows: Sequence[LedgerRow]) -> bytes:
    """The ledger as CSV: one line per row, credits as exact decimals, times in ISO 8601 UTC. The
    column names stay English whatever the reader's language: the file is for machines. Reasons are
    typed by moderators, so every cell goes through spreadsheet_safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        moment = datetime.fromtimestamp(row["created_at"] / 1000, UTC)
        cells = [
            row["id"], moment.isoformat(timespec="seconds"), row["user_id"], row["job_id"] or "",
            row["job_kind"] or "", row["kind"], format_credits(row["amount"]),
            row["reason"] or "", row["actor_id"] or "",
        ]
        writer.writerow([spreadsheet_safe(str(cell)) for cell in cells])
    return buffer.getvalue().encode("utf-8")


def jobs_by_kind(_: Translate, spender: Spender) -> str:
    """'3 jobs (image: 2, edit: 1)': the kinds in the order the bot offers them."""
    jobs = _("usage.jobs_one" if spender.jobs == 1 else "usage.jobs", count=spender.jobs)
    kinds = _("usage.kinds_separator").join(
        _("usage.kind_count", kind=_(f"admin.kind.{kind.value}"), count=spender.jobs_by_kind[kind.value])
        for kind in (JobKind.IMAGE, JobKind.EDIT, JobKind.VIDEO) if kind.value in spender.jobs_by_kind)
    return _("usage.jobs_with_kinds", jobs=jobs, kinds=kinds)


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Usage(commands.GroupCog, group_name="usage", group_description="Moderators: where this server's credits went"):
    def __init__(self, bot: WanBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await moderator_only(interaction)

    @app_commands.command(name="top", description="Who spent the most credits this period")
    async def top(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        _ = for_interaction(interaction)
        period, spenders = await self.bot.services.ledger.top_spenders(interaction.guild_id)
        this = this_period(period).render(_.locale)
        if not spenders:
            text = _("usage.top_empty", period=this)
        else:
            lines = [_("usage.top_title", period=this)]
            lines += [_("usage.top_line", rank=rank, member=f"<@{spender.user_id}>",
                        amount=format_credits(spender.spent), jobs=jobs_by_kind(_, spender))
                      for rank, spender in enumerate(spenders, start=1)]
            text = "\n".join(lines)
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(name="export", description="This server's credit ledger as a CSV file (only you see it)")
    async def export(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        rows = await self.bot.services.ledger.ledger_rows(interaction.guild_id)
        day = self.bot.services.clock.now().strftime("%Y-%m-%d")
        file = discord.File(io.BytesIO(ledger_csv(rows)),
                            filename=f"ledger-{interaction.guild_id}-{day}.csv")
        _ = for_interaction(interaction)
        await interaction.response.send_message(
            _("usage.export_one" if len(rows) == 1 else "usage.export", count=len(rows)),
            file=file, ephemeral=True,
        )


async def setup(bot: WanBot) -> None:
    await bot.add_cog(Usage(bot))
