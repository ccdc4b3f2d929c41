"""The text of a member's account: their balance, allowance and recent jobs (/credits, /jobs)."""

from __future__ import annotations

from datetime import UTC, datetime

import discord

from bot.credits import Balance, format_credits
from bot.i18n import ENGLISH
from bot.jobs.store import Job
from bot.ui.render import describe_options, timestamp


def describe_allowance(balance: Balance) -> str:
    """'50 credits per week (from @Artists)': the allowance and where it comes from."""
    allowance = balance.allowance
    origin = {"personal": "a personal allowance", "default": "the server default"}.get(
        allowance.source, f"<@&{allowance.role_id}>")
    return (f"allowance {format_credits(allowance.amount)} credits per {balance.period.value} "
            f"(from {origin})")


def render_balance(balance: Balance, recent: list[tuple[Job, int | None]] | None = None) -> str:
    """/credits: what a member has left, where it comes from, and their last jobs."""
    total = balance.allowance.amount + balance.granted
    lines = [
        f"**Your credits in this server {balance.period.this}**: {format_credits(balance.remaining)} "
        f"of {format_credits(total)} left",
        f"Used: {format_credits(balance.spent)} · Reserved by running jobs: "
        f"{format_credits(balance.held)}"
        + (f" · Granted by moderators: {format_credits(balance.granted)}" if balance.granted else ""),
        f"Your {describe_allowance(balance)}. Refills {timestamp(balance.refills_at)} "
        f"({timestamp(balance.refills_at, 'f')}).",
    ]
    if balance.blocked:
        reason = f" ({balance.block_reason})" if balance.block_reason else ""
        lines.append(f"⛔ A moderator has blocked you from generating here{reason}.")
    if recent:
        lines.append("**Your last jobs**")
        lines.extend(job_line(job, charged) for job, charged in recent)
    return "\n".join(lines)


_STATE_ICONS = {"done": "✅", "failed": "❌"}


def job_line(job: Job, charged: int | None, locale: str = ENGLISH) -> str:
    """One line per job: state, options, cost, prompt, when, and a jump link to its message."""
    icon = _STATE_ICONS.get(job.state.value, "⏳")
    prompt = " ".join(job.request["prompt"].split())
    prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
    cost = f"{format_credits(charged)} credits" if charged is not None else job.state.value
    when = timestamp(datetime.fromtimestamp(job.created_at / 1000, UTC))
    link = (f" · [open](https://discord.com/channels/{job.guild_id}/{job.channel_id}/{job.message_id})"
            if job.message_id else "")
    return (f"{icon} {describe_options(job)} · {cost} · "
            f"{discord.utils.escape_markdown(discord.utils.escape_mentions(prompt))} · {when}{link}")
