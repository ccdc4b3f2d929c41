"""The text of a member's account: their balance, allowance and recent jobs (/credits, /jobs),
in the reader's language."""

from __future__ import annotations

from datetime import UTC, datetime

import discord

from bot.credits import Balance, format_credits, per_period, this_period
from bot.i18n import ENGLISH, Translate
from bot.jobs.store import Job
from bot.ui.render import describe_options, timestamp


def describe_allowance(balance: Balance, locale: str = ENGLISH) -> str:
    """'allowance 50 credits per week (from @Artists)': the allowance and where it comes from."""
    _ = Translate(locale)
    allowance = balance.allowance
    if allowance.source == "personal":
        origin = _("account.origin_personal")
    elif allowance.source == "default":
        origin = _("account.origin_default")
    else:
        origin = f"<@&{allowance.role_id}>"
    return _("account.allowance", amount=format_credits(allowance.amount),
             period=per_period(balance.period).render(_.locale), origin=origin)


def render_balance(balance: Balance, recent: list[tuple[Job, int | None]] | None = None,
                   locale: str = ENGLISH) -> str:
    """/credits: what a member has left, where it comes from, and their last jobs."""
    _ = Translate(locale)
    usage = [_("account.used", amount=format_credits(balance.spent)),
             _("account.reserved", amount=format_credits(balance.held))]
    if balance.granted:
        usage.append(_("account.granted", amount=format_credits(balance.granted)))
    lines = [
        _("account.title", period=this_period(balance.period).render(_.locale),
          remaining=format_credits(balance.remaining), total=format_credits(balance.total)),
        " · ".join(usage),
        _("account.allowance_line", allowance=describe_allowance(balance, _.locale),
          refills=timestamp(balance.refills_at), refills_at=timestamp(balance.refills_at, "f")),
    ]
    if balance.blocked:
        lines.append(_("account.blocked_because", reason=balance.block_reason) if balance.block_reason
                     else _("account.blocked"))
    if recent:
        lines.append(_("account.last_jobs"))
        lines.extend(job_line(job, charged, _.locale) for job, charged in recent)
    return "\n".join(lines)


_STATE_ICONS = {"done": "✅", "failed": "❌"}


def job_line(job: Job, charged: int | None, locale: str = ENGLISH) -> str:
    """One line per job: state, options, cost, prompt, when, and a jump link to its message."""
    _ = Translate(locale)
    icon = _STATE_ICONS.get(job.state.value, "⏳")
    prompt = " ".join(job.request["prompt"].split())
    prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
    cost = (_("account.cost", amount=format_credits(charged)) if charged is not None
            else _(f"account.state.{job.state.value}"))
    when = timestamp(datetime.fromtimestamp(job.created_at / 1000, UTC))
    link = (" · " + _("account.open", url=f"https://discord.com/channels/{job.guild_id}/{job.channel_id}/"
                                          f"{job.message_id}")
            if job.message_id else "")
    return (f"{icon} {describe_options(job, _.locale)} · {cost} · "
            f"{discord.utils.escape_markdown(discord.utils.escape_mentions(prompt))} · {when}{link}")
