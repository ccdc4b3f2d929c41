"""The text of job messages: progress, result and failure, as members see them."""

from __future__ import annotations

from datetime import UTC, datetime

import discord

from bot.credits import Balance, format_credits
from bot.jobs.failures import JobFailure
from bot.jobs.runner import JobProgress, Phase
from bot.jobs.store import Job, JobKind

BAR_WIDTH = 20
PROMPT_PREVIEW_CHARS = 300

_PHASE_TITLES = {
    Phase.QUEUED: "⏳ Waiting in line",
    Phase.SUBMITTING: "📨 Sending to Wan 2.5",
    Phase.GENERATING: "🎨 Generating",
    Phase.DOWNLOADING: "📥 Downloading the results",
    Phase.UPLOADING: "📤 Uploading to Discord",
}


def timestamp(moment: datetime, style: str = "R") -> str:
    """A Discord timestamp: every client renders it in the reader's own time zone, and the
    relative style ('in 20 seconds') keeps counting without any edit from us."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def progress_bar(percent: int) -> str:
    filled = round(BAR_WIDTH * max(0, min(100, percent)) / 100)
    return "▰" * filled + "▱" * (BAR_WIDTH - filled)


def quoted_prompt(prompt: str) -> str:
    """The prompt as a block quote, shortened, with Markdown neutralised (it is user text)."""
    text = " ".join(prompt.split())
    if len(text) > PROMPT_PREVIEW_CHARS:
        text = text[: PROMPT_PREVIEW_CHARS - 1] + "…"
    return "> " + discord.utils.escape_markdown(discord.utils.escape_mentions(text))


def describe_options(job: Job) -> str:
    """The options of a job in a few words: '1280x1280 · 2 images' or '5 s · 720p video'."""
    request = job.request
    if job.kind is JobKind.VIDEO:
        return f"{request['duration']} s · {request['quality']} video"
    count = request["n"]
    return f"{request['width']}x{request['height']} · {count} image{'s' if count != 1 else ''}"


def render_progress(progress: JobProgress, reserved: int) -> str:
    job = progress.job
    lines = [
        f"**{_PHASE_TITLES[progress.phase]}** · {describe_options(job)} · "
        f"{format_credits(reserved)} credits reserved",
        quoted_prompt(job.request["prompt"]),
    ]
    lines.extend(f"-# {note}" for note in job.request.get("input_notes", ()))
    status = []
    if progress.position is not None:
        status.append(f"**#{progress.position} in line**")
    if progress.percent is not None:
        status.append(f"`{progress_bar(progress.percent)}` {progress.percent}%")
    status.append(f"started {timestamp(progress.started_at)}")
    if progress.phase is Phase.GENERATING and progress.eta:
        status.append(f"ready {timestamp(progress.eta)}")
    lines.append(" · ".join(status))
    if progress.note:
        lines.append(f"*{progress.note}*")
    lines.append(job_reference(job))
    return "\n".join(lines)


def job_reference(job: Job) -> str:
    """The job's id in small print: what a member quotes to the operator, who looks it up with
    /admin job."""
    return f"-# job {job.id}"


def render_result(job: Job, files: int, charged: int, links: list[str] | None = None) -> str:
    lines = [
        f"**✅ Done** · {describe_options(job)} · {format_credits(charged)} credits · "
        f"requested by <@{job.user_id}>",
        quoted_prompt(job.request["prompt"]),
    ]
    lines.extend(links or ())
    return "\n".join(lines)


def render_link_instead_of_file(url: str, expires_at: datetime, why: str) -> str:
    """For a result that cannot be attached: the EvoLink link while it lives, and the reason."""
    return f"{why} Download it here before the link expires {timestamp(expires_at)}: <{url}>"


def render_failure(job: Job, failure: JobFailure, refunded: int | None) -> str:
    lines = [f"**❌ Failed**: {failure.message}", quoted_prompt(job.request["prompt"])]
    if refunded:
        lines.append(f"{format_credits(refunded)} credits were given back.")
    lines.append(job_reference(job))
    return "\n".join(lines)


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
        lines.extend(_job_line(job, charged) for job, charged in recent)
    return "\n".join(lines)


_STATE_ICONS = {"done": "✅", "failed": "❌"}


def _job_line(job: Job, charged: int | None) -> str:
    icon = _STATE_ICONS.get(job.state.value, "⏳")
    prompt = " ".join(job.request["prompt"].split())
    prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
    cost = f"{format_credits(charged)} credits" if charged is not None else job.state.value
    when = timestamp(datetime.fromtimestamp(job.created_at / 1000, UTC))
    link = (f" · [open](https://discord.com/channels/{job.guild_id}/{job.channel_id}/{job.message_id})"
            if job.message_id else "")
    return (f"{icon} {describe_options(job)} · {cost} · "
            f"{discord.utils.escape_markdown(discord.utils.escape_mentions(prompt))} · {when}{link}")


def render_missing_permission(channel_id: int, needed: str) -> str:
    return (f"⚠️ I could not post the result in <#{channel_id}>: I need the **{needed}** permission "
            "there. A moderator can give it to me.")
