"""What the buttons under a finished job do (see bot/ui/buttons.py for the buttons).

Every action answers within Discord's 3 seconds: it reads the job's row (local), checks who
clicked, then either opens a form, answers privately, or submits a new job and defers its
reply. Whoever starts a new job from a button pays for it, as with a command; the new job
remembers the job it came from.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import discord

from bot.errors import UserFacingError
from bot.i18n import Translate, for_interaction, supported_locale
from bot.jobs.inputs import ImageSource
from bot.jobs.store import Job, JobKind, JobState
from bot.requests import ImageRequest, VideoRequest, parse_image_request, parse_video_options
from bot.ui import forms, render
from bot.ui.buttons import Action
from bot.ui.checks import has_manage_server, member_role_ids
from bot.ui.errors import RESTARTING, describe_error, reply_with_error
from bot.units import format_credits, from_millis

if TYPE_CHECKING:
    from bot.app import WanBot

log = logging.getLogger(__name__)

# A video's first frame is a Discord attachment link (signed, about 24 hours) or an upload on
# EvoLink's file host (72 hours): past the shorter, a reroll or remix could not fetch it.
VIDEO_INPUT_LIFETIME = timedelta(hours=24)
# EvoLink's result links, the last resort for a result whose message lost its files.
RESULT_LINK_LIFETIME = timedelta(hours=24)


class JobGone(UserFacingError):
    def __init__(self, job_id: int) -> None:
        super().__init__("buttons.job_gone", id=job_id)


class InputsGone(UserFacingError):
    """The job exists, but what a new job would start from does not any more."""


class NotYours(UserFacingError):
    def __init__(self, requester_id: int) -> None:
        super().__init__("buttons.delete_refused", requester=f"<@{requester_id}>")


async def run_action(interaction: discord.Interaction, job_id: int, action: Action) -> None:
    """The entry point of every click: errors become a private reply, never a failed interaction."""
    if await refused_while_restarting(interaction):
        return
    try:
        job = await load_job(interaction, job_id)
        await _ACTIONS[action](interaction, job)
    except Exception as error:  # noqa: BLE001 - every failure is answered; bugs are logged there
        await reply_with_error(interaction, describe_error(interaction, error))


async def refused_while_restarting(interaction: discord.Interaction) -> bool:
    """Clicks are not app commands, so the tree's restart check does not see them: same answer."""
    if not getattr(interaction.client, "shutting_down", False):
        return False
    await reply_with_error(interaction, RESTARTING.render(interaction.locale))
    return True


async def load_job(interaction: discord.Interaction, job_id: int) -> Job:
    """The clicked job, if it still exists and belongs to this server."""
    bot: WanBot = interaction.client  # type: ignore[assignment]
    try:
        job = await bot.services.store.get(job_id)
    except KeyError:
        raise JobGone(job_id) from None
    if job.guild_id != interaction.guild_id:
        raise JobGone(job_id)
    return job


# -- new jobs from an old one -------------------------------------------------------------------

async def reroll(interaction: discord.Interaction, job: Job) -> None:
    """Same options, a new job."""
    bot: WanBot = interaction.client  # type: ignore[assignment]
    request = stored_request(job)
    if isinstance(request, VideoRequest):
        check_video_input_alive(bot, job)
    await bot.start_job_in_reply(interaction, kind=job.kind, request=request, parent_job_id=job.id)


async def remix(interaction: discord.Interaction, job: Job) -> None:
    """A form with the prompt and options filled in; submitting it starts the new job."""
    bot: WanBot = interaction.client  # type: ignore[assignment]
    if job.kind is JobKind.VIDEO:
        check_video_input_alive(bot, job)
    await interaction.response.send_modal(forms.remix_form(job, supported_locale(interaction.locale)))


async def animate(interaction: discord.Interaction, job: Job) -> None:
    """A form for the video: which image (when there are several), what happens, how long."""
    if job.kind is not JobKind.IMAGE or job.state is not JobState.DONE:
        raise InputsGone("buttons.nothing_to_animate", id=job.id)
    images = len(result_images(interaction.message, job))
    if images == 0:
        raise InputsGone("buttons.images_gone", id=job.id)
    await interaction.response.send_modal(
        forms.animate_form(job, images, supported_locale(interaction.locale)))


def stored_request(job: Job) -> ImageRequest | VideoRequest:
    if job.kind is JobKind.VIDEO:
        return VideoRequest.from_dict(job.request)
    return ImageRequest.from_dict(job.request)


def check_video_input_alive(bot: WanBot, job: Job) -> None:
    if bot.services.clock.now() - from_millis(job.created_at) > VIDEO_INPUT_LIFETIME:
        raise InputsGone("buttons.video_input_gone", id=job.id)


def result_images(message: discord.Message | None, job: Job) -> list[ImageSource]:
    """The job's images, in order: from the clicked message (its links are fresh: Discord signs
    them for each payload), else the attachments recorded at delivery."""
    if message is not None and message.attachments:
        return [ImageSource(a.url, a.filename, a.size) for a in message.attachments
                if (a.content_type or "").startswith("image/") or a.width]
    return [ImageSource(item["url"], item["filename"], item.get("size")) for item in job.delivered
            if str(item.get("content_type") or "").startswith("image/")]


# -- private answers ----------------------------------------------------------------------------

async def details(interaction: discord.Interaction, job: Job) -> None:
    """Everything about the job, for the one who asked: full prompt, options, task id, timings,
    credits."""
    bot: WanBot = interaction.client  # type: ignore[assignment]
    ledger = bot.services.ledger
    charged = (await ledger.charges([job.id])).get(job.id)
    refunded = (await ledger.refunds([job.id])).get(job.id)
    await interaction.response.send_message(
        embed=details_embed(job, for_interaction(interaction), charged=charged, refunded=refunded),
        ephemeral=True)


def details_embed(job: Job, _: Translate, *, charged: int | None, refunded: int | None) -> discord.Embed:
    embed = discord.Embed(title=_("buttons.details_title", id=job.id),
                          description=render.safe_text(job.request["prompt"])[:4000],
                          colour=render.COLOUR_WORKING)
    embed.add_field(name=_("job.field_options"), value=_describe_all_options(job, _), inline=False)
    embed.add_field(name=_("job.field_requester"), value=f"<@{job.user_id}>")
    embed.add_field(name=_("buttons.field_state"), value=_(f"buttons.state_{job.state.value}"))
    if charged is not None:
        credits = _("job.credits_charged", credits=format_credits(charged))
    elif refunded is not None:
        credits = _("job.credits_refunded", credits=format_credits(refunded))
    else:
        credits = _("buttons.credits_pending")
    embed.add_field(name=_("job.field_credits"), value=credits)
    embed.add_field(name=_("buttons.field_task"), value=f"`{job.task_id}`" if job.task_id else "—")
    embed.add_field(name=_("buttons.field_timings"), value=_timings(job, _), inline=False)
    if job.parent_job_id:
        embed.add_field(name=_("buttons.field_parent"), value=_("job.reference", id=job.parent_job_id))
    if job.error_message and job.state is JobState.FAILED:
        embed.add_field(name=_("buttons.field_error"), value=job.error_message[:1024], inline=False)
    return embed


def _describe_all_options(job: Job, _: Translate) -> str:
    request = job.request
    extend = _("buttons.yes" if request.get("prompt_extend", True) else "buttons.no")
    if job.kind is JobKind.VIDEO:
        return _("buttons.options_video", duration=request["duration"], quality=request["quality"],
                 size=f"{request['image_width']}x{request['image_height']}", extend=extend)
    return _("buttons.options_image", size=f"{request['width']}x{request['height']}", n=request["n"],
             extend=extend)


def _timings(job: Job, _: Translate) -> str:
    lines = [_("buttons.timing_created", at=render.timestamp(from_millis(job.created_at), "f"))]
    if job.submitted_at:
        waited = max(0, round((job.submitted_at - job.created_at) / 1000))
        lines.append(_("buttons.timing_submitted", at=render.timestamp(from_millis(job.submitted_at), "T"),
                       seconds=waited))
    if job.finished_at:
        took = max(0, round((job.finished_at - (job.submitted_at or job.created_at)) / 1000))
        lines.append(_("buttons.timing_finished", at=render.timestamp(from_millis(job.finished_at), "T"),
                       seconds=took))
    return "\n".join(lines)


async def delete(interaction: discord.Interaction, job: Job) -> None:
    """The requester or a moderator removes the result; /show will not post it again."""
    bot: WanBot = interaction.client  # type: ignore[assignment]
    if not await may_delete(interaction, job):
        raise NotYours(job.user_id)
    if interaction.message is not None:
        await interaction.message.delete()
    await bot.services.store.mark_removed(job.id, interaction.user.id)
    log.info("Job %d: result deleted by user %d", job.id, interaction.user.id)
    await interaction.response.send_message(for_interaction(interaction)("buttons.deleted", id=job.id),
                                            ephemeral=True)


async def may_delete(interaction: discord.Interaction, job: Job) -> bool:
    """The requester; or a moderator: Manage Messages or Manage Server in this channel, or the
    moderator role set with /quota moderator-role."""
    if interaction.user.id == job.user_id:
        return True
    permissions = interaction.permissions
    if permissions.manage_messages or has_manage_server(interaction):
        return True
    bot: WanBot = interaction.client  # type: ignore[assignment]
    moderator_role = await bot.services.quotas.moderator_role(job.guild_id)
    return moderator_role is not None and moderator_role in member_role_ids(interaction)


# -- the forms' answers -----------------------------------------------------------------------

async def run_form(interaction: discord.Interaction, job_id: int, form: str) -> None:
    """The entry point of a submitted Remix or Animate form (custom_id matched forms.FORM_ID)."""
    if await refused_while_restarting(interaction):
        return
    try:
        await submit_form(interaction, await load_job(interaction, job_id), form)
    except Exception as error:  # noqa: BLE001 - every failure is answered; bugs are logged there
        await reply_with_error(interaction, describe_error(interaction, error))


async def submit_form(interaction: discord.Interaction, job: Job, form: str) -> None:
    """Start the job a submitted form asks for."""
    bot: WanBot = interaction.client  # type: ignore[assignment]
    values = forms.submitted_values(interaction.data)
    prompt_extend = job.request.get("prompt_extend", True)
    if form == "animate":
        images = result_images(interaction.message, job)
        index = int(values.get("image") or 0)
        if not 0 <= index < len(images):
            raise InputsGone("buttons.images_gone", id=job.id)
        options = parse_video_options(values.get("prompt"), values.get("duration"), values.get("quality"))
        await bot.start_video_in_reply(interaction, images[index], options, parent_job_id=job.id)
        return
    if job.kind is JobKind.IMAGE:
        request = parse_image_request(values.get("prompt"), values.get("size"),
                                      int(values["n"]) if values.get("n", "").isdigit() else None,
                                      prompt_extend)
        await bot.start_job_in_reply(interaction, kind=JobKind.IMAGE, request=request, parent_job_id=job.id)
        return
    check_video_input_alive(bot, job)
    options = parse_video_options(values.get("prompt"), values.get("duration"), values.get("quality"),
                                  prompt_extend)
    request = VideoRequest.from_dict({**job.request, "prompt": options.prompt, "duration": options.duration,
                                      "quality": options.quality})
    await bot.start_job_in_reply(interaction, kind=JobKind.VIDEO, request=request, parent_job_id=job.id)


_ACTIONS = {
    Action.REROLL: reroll,
    Action.REMIX: remix,
    Action.ANIMATE: animate,
    Action.DETAILS: details,
    Action.DELETE: delete,
}
