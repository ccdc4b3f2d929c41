"""How a job looks in Discord: one embed per job, from the first 'queued' to the result.

The embed's title is the prompt (shortened), its description the status line (queued #k,
generating 40% with a bar, uploading, done, failed), its fields the options, the credits, the
requester, when it started and when it should be ready (Discord timestamps, which every client
shows in its own time zone and keeps counting without an edit), and its footer the job id. The
colour follows the state. Every word comes from the catalogue, in the requester's language.
"""

from __future__ import annotations

from datetime import datetime

import discord

from bot.credits import format_credits
from bot.i18n import Message, Translate
from bot.jobs.failures import JobFailure
from bot.jobs.progress import JobProgress, Phase
from bot.jobs.store import Job, JobKind
from bot.ui.pages import (
    EMBED_DESCRIPTION_CHARS,
    EMBED_TOTAL_CHARS,
    LinkLine,
    cut,
    embed_chars,
    fit_link_lines,
)

BAR_WIDTH = 20
TITLE_CHARS = 100  # Discord allows 256; a title is a glance, the full prompt is in Details
PROMPT_PREVIEW_CHARS = 300

# Grey while waiting, blurple while Wan works, gold while the files move, then green or red.
COLOUR_WAITING = discord.Colour(0x99AAB5)
COLOUR_WORKING = discord.Colour(0x5865F2)
COLOUR_FINISHING = discord.Colour(0xF0B232)
COLOUR_DONE = discord.Colour(0x57F287)
COLOUR_FAILED = discord.Colour(0xED4245)

_PHASE_COLOURS = {
    Phase.QUEUED: COLOUR_WAITING,
    Phase.SUBMITTING: COLOUR_WORKING,
    Phase.GENERATING: COLOUR_WORKING,
    Phase.DOWNLOADING: COLOUR_FINISHING,
    Phase.UPLOADING: COLOUR_FINISHING,
}


def timestamp(moment: datetime, style: str = "R") -> str:
    """A Discord timestamp: every client renders it in the reader's own time zone, and the
    relative style ('in 20 seconds') keeps counting without any edit from us."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def progress_bar(percent: int) -> str:
    filled = round(BAR_WIDTH * max(0, min(100, percent)) / 100)
    return "▰" * filled + "▱" * (BAR_WIDTH - filled)


def safe_text(text: str) -> str:
    """User text with Markdown and mentions neutralised."""
    return discord.utils.escape_markdown(discord.utils.escape_mentions(text))


def shortened(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted_prompt(prompt: str) -> str:
    """The prompt as a block quote, shortened, with Markdown neutralised (it is user text)."""
    return "> " + safe_text(shortened(prompt, PROMPT_PREVIEW_CHARS))


def describe_options(job: Job, locale: str | None = None) -> str:
    """The options of a job in a few words: '1280x1280 · 2 images', 'edit of 1 picture · 2 images'
    or '5 s · 720p video'."""
    _ = Translate(locale)
    request = job.request
    if job.kind is JobKind.VIDEO:
        return _("job.options_video", duration=request["duration"], quality=request["quality"])
    count = request["n"]
    images = _("job.images_one" if count == 1 else "job.images_many", count=count)
    if job.kind is JobKind.EDIT:
        pictures = len(request["image_urls"])
        return f"{_('job.options_edit' if pictures == 1 else 'job.options_fusion', count=pictures)} · {images}"
    return f"{request['width']}x{request['height']} · {images}"


def job_reference(job: Job, locale: str | None = None) -> str:
    """The job's id: what a member quotes to the operator, who looks it up with /admin job."""
    return Translate(locale)("job.reference", id=job.id)


def _job_embed(job: Job, _: Translate, status: str, colour: discord.Colour) -> discord.Embed:
    embed = discord.Embed(title=safe_text(shortened(job.request["prompt"], TITLE_CHARS)),
                          description=status, colour=colour)
    embed.set_footer(text=job_reference(job, _.locale))
    return embed


def _common_fields(embed: discord.Embed, job: Job, _: Translate, credits_line: str) -> None:
    embed.add_field(name=_("job.field_options"), value=describe_options(job, _.locale))
    embed.add_field(name=_("job.field_credits"), value=credits_line)
    embed.add_field(name=_("job.field_requester"), value=f"<@{job.user_id}>")


def _note_text(note: str | Message | None, locale: str) -> str | None:
    return note.render(locale) if isinstance(note, Message) else note


def progress_embed(progress: JobProgress, *, reserved: int) -> discord.Embed:
    """The job while it is on its way: what it is doing now and when it should be ready."""
    job = progress.job
    _ = Translate(job.locale)
    lines = [_status_line(progress, _)]
    if progress.percent is not None and progress.phase is Phase.GENERATING:
        lines.append(f"`{progress_bar(progress.percent)}`")
    note = _note_text(progress.note, _.locale)
    if note:
        lines.append(f"*{note}*")
    lines.extend(f"-# {input_note}" for input_note in job.request.get("input_notes", ()))
    embed = _job_embed(job, _, "\n".join(lines), _PHASE_COLOURS[progress.phase])
    _common_fields(embed, job, _, _("job.credits_reserved", credits=format_credits(reserved)))
    embed.add_field(name=_("job.field_started"), value=timestamp(progress.started_at))
    if progress.phase is Phase.GENERATING and progress.eta:
        embed.add_field(name=_("job.field_eta"), value=timestamp(progress.eta))
    return embed


def _status_line(progress: JobProgress, _: Translate) -> str:
    phase = progress.phase
    if phase is Phase.QUEUED:
        if progress.position is not None:
            return _("job.status_queued_at", position=progress.position)
        return _("job.status_queued")
    if phase is Phase.GENERATING and progress.percent is not None:
        return _("job.status_generating_percent", percent=progress.percent)
    return _(f"job.status_{phase.value}")


def result_embed(job: Job, *, charged: int, locale: str | None = None, links: list[LinkLine] | None = None,
                 finished_at: int | None = None) -> discord.Embed:
    """The finished job, shown above its files (Discord lays several images out as a gallery), with
    a line for each file that could only be linked, shortened so the embed stays within Discord's
    limits. `finished_at` (Unix ms) stands in for the job's own while it is still being delivered."""
    _ = Translate(locale or job.locale)
    status = _("job.status_done")
    embed = _job_embed(job, _, status, COLOUR_DONE)
    _common_fields(embed, job, _, _("job.credits_charged", credits=format_credits(charged)))
    finished_at = job.finished_at or finished_at
    if job.submitted_at and finished_at:
        took = max(0, round((finished_at - job.submitted_at) / 1000))
        embed.add_field(name=_("job.field_took"), value=_("job.seconds", seconds=took))
    if links:
        room = min(EMBED_DESCRIPTION_CHARS, EMBED_TOTAL_CHARS - embed_chars(embed) + len(status)) - len(status) - 1
        embed.description = "\n".join([status, *fit_link_lines(links, room)])
    return embed


def failure_embed(job: Job, failure: JobFailure, refunded: int | None) -> discord.Embed:
    _ = Translate(job.locale)
    # Failure texts quote EvoLink, whose words have no length limit: keep the embed within Discord's.
    reason = cut(failure.localized(_.locale), EMBED_DESCRIPTION_CHARS - len(_("job.status_failed", reason="")))
    embed = _job_embed(job, _, _("job.status_failed", reason=reason), COLOUR_FAILED)
    credits_line = (_("job.credits_refunded", credits=format_credits(refunded)) if refunded
                    else _("job.credits_none"))
    _common_fields(embed, job, _, credits_line)
    return embed


def link_instead_of_file(url: str, expires_at: datetime, why: str, locale: str | None = None) -> LinkLine:
    """For a result that cannot be attached: the EvoLink link while it lives, and the reason (or,
    if there is no room for the link, that it is too long to show)."""
    _ = Translate(locale)
    return LinkLine(with_link=lambda reason: _("job.link_instead", why=reason, expires=timestamp(expires_at),
                                               url=url),
                    without_link=lambda reason: _("job.link_too_long", why=reason),
                    why=why)


def render_missing_permission(channel_id: int, needed: str, locale: str | None = None) -> str:
    return Translate(locale)("job.missing_permission", channel=f"<#{channel_id}>", needed=needed)
