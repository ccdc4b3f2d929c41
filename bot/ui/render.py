"""The text of job messages: progress, result and failure, as members see them."""

from __future__ import annotations

from datetime import datetime

import discord

from bot.credits import format_credits
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


def render_missing_permission(channel_id: int, needed: str) -> str:
    return (f"⚠️ I could not post the result in <#{channel_id}>: I need the **{needed}** permission "
            "there. A moderator can give it to me.")
