"""What the buttons under a finished job do (see bot/ui/buttons.py for the buttons).

Every action answers within Discord's 3 seconds: it reads the job's row (local), checks who
clicked, then either opens a form, answers privately, or starts a new job through the launcher.
Whoever starts a new job from a button pays for it, as with a command; the new job remembers the
job it came from. The results cog (cogs/results.py) hands clicks and submitted forms to
`ResultActions`, which holds the services it needs: nothing here reaches up to the bot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord

from bot.delivery.limits import (
    DISCORD_ATTACHMENT_LINK_LIFETIME,
    EMBED_DESCRIPTION_CHARS,
    EMBED_FIELD_VALUE_CHARS,
)
from bot.errors import UserFacingError
from bot.evolink.limits import UPLOADED_FILE_LIFETIME
from bot.i18n import Translate, for_interaction, supported_locale
from bot.jobs.inputs import ImageSource
from bot.jobs.store import Job, JobKind, JobState
from bot.launch import Launcher, NeedsPicture, NeedsPicturesToEdit, Ready
from bot.requests import (
    EditRequest,
    GenerationRequest,
    ImageRequest,
    VideoRequest,
    parse_image_request,
    parse_video_options,
)
from bot.ui import forms, render
from bot.ui.buttons import Action
from bot.ui.checks import has_manage_server, member_role_ids
from bot.ui.errors import RESTARTING, describe_error, reply_with_error
from bot.units import format_credits, from_millis

if TYPE_CHECKING:
    from bot.services import Services  # built above the launcher, which only uses them

log = logging.getLogger(__name__)

# A video's first frame, or a picture to edit, is a Discord attachment link (signed, about 24
# hours) or an upload on EvoLink's file host (UPLOADED_FILE_LIFETIME): past the shorter, a reroll
# or remix could not fetch it.
INPUT_LIFETIME = min(DISCORD_ATTACHMENT_LINK_LIFETIME, UPLOADED_FILE_LIFETIME)

class JobGone(UserFacingError):
    def __init__(self, job_id: int) -> None:
        super().__init__("buttons.job_gone", id=job_id)


class InputsGone(UserFacingError):
    """The job exists, but what a new job would start from does not any more."""


class NotYours(UserFacingError):
    def __init__(self, requester_id: int) -> None:
        super().__init__("buttons.delete_refused", requester=f"<@{requester_id}>")


Handler = Callable[[discord.Interaction, Job], Awaitable[None]]


class ResultActions:
    """What a click on a result's button, or a submitted Remix or Animate form, does."""

    def __init__(self, services: Services, launcher: Launcher) -> None:
        self._services = services
        self._launcher = launcher
        self._actions: dict[Action, Handler] = {
            Action.REROLL: self.reroll,
            Action.REMIX: self.remix,
            Action.EDIT: self.edit,
            Action.ANIMATE: self.animate,
            Action.DETAILS: self.details,
            Action.DELETE: self.delete,
        }

    async def run_action(self, interaction: discord.Interaction, job_id: int, action: Action) -> None:
        """The entry point of every click: errors become a private reply, never a failed interaction."""
        if await refused_while_restarting(interaction):
            return
        try:
            job = await self.load_job(interaction, job_id)
            await self._actions[action](interaction, job)
        except Exception as error:  # noqa: BLE001 - every failure is answered; bugs are logged there
            await reply_with_error(interaction, describe_error(interaction, error))

    async def run_form(self, interaction: discord.Interaction, job_id: int, form: str) -> None:
        """The entry point of a submitted Remix or Animate form (custom_id matched forms.FORM_ID)."""
        if await refused_while_restarting(interaction):
            return
        try:
            await self.submit_form(interaction, await self.load_job(interaction, job_id), form)
        except Exception as error:  # noqa: BLE001 - every failure is answered; bugs are logged there
            await reply_with_error(interaction, describe_error(interaction, error))

    async def load_job(self, interaction: discord.Interaction, job_id: int) -> Job:
        """The clicked job, if it still exists and belongs to this server."""
        try:
            job = await self._services.store.get(job_id)
        except KeyError:
            raise JobGone(job_id) from None
        if job.guild_id != interaction.guild_id:
            raise JobGone(job_id)
        return job

    # -- new jobs from an old one ---------------------------------------------------------------

    async def reroll(self, interaction: discord.Interaction, job: Job) -> None:
        """Same options, a new job."""
        self._check_inputs_alive(job)
        await self._launcher.start(interaction, Ready(job.kind, stored_request(job)), parent_job_id=job.id)

    async def remix(self, interaction: discord.Interaction, job: Job) -> None:
        """A form with the prompt and options filled in; submitting it starts the new job."""
        self._check_inputs_alive(job)
        await interaction.response.send_modal(forms.remix_form(job, supported_locale(interaction.locale)))

    async def edit(self, interaction: discord.Interaction, job: Job) -> None:
        """A form for the edit: what to change, which image, another to fuse it with, how many."""
        images = len(self._finished_images(interaction, job, "buttons.nothing_to_edit"))
        defaults = (await self._launcher.channel_defaults(interaction)).or_built_in()
        assert defaults.n is not None  # every option filled
        await interaction.response.send_modal(forms.edit_form(
            job, images, defaults.n, supported_locale(interaction.locale)))

    async def animate(self, interaction: discord.Interaction, job: Job) -> None:
        """A form for the video: which image (when there are several), what happens, how long."""
        images = len(self._finished_images(interaction, job, "buttons.nothing_to_animate"))
        await interaction.response.send_modal(
            forms.animate_form(job, images, supported_locale(interaction.locale)))

    def _finished_images(self, interaction: discord.Interaction, job: Job, nothing: str) -> list[ImageSource]:
        """The images of a finished job that makes images, from the clicked message; else say why not."""
        # Delivering too: the buttons appear with the results, a moment before the job's row
        # says it is done, and a quick click must not be told there is nothing.
        if not job.kind.makes_images or job.state not in (JobState.DONE, JobState.DELIVERING):
            raise InputsGone(nothing, id=job.id)
        images = result_images(interaction.message, job)
        if not images:
            raise InputsGone("buttons.images_gone", id=job.id)
        return images

    async def submit_form(self, interaction: discord.Interaction, job: Job, form: str) -> None:
        """Start the job a submitted form asks for."""
        values = forms.submitted_values(interaction.data)
        prompt_extend = job.request.get("prompt_extend", True)
        if form == "animate":
            images = result_images(interaction.message, job)
            index = int(values.get("image") or 0)
            if not 0 <= index < len(images):
                raise InputsGone("buttons.images_gone", id=job.id)
            options = parse_video_options(values.get("prompt"), values.get("duration"), values.get("quality"))
            await self._launcher.start(interaction, NeedsPicture(options, images[index]), parent_job_id=job.id)
            return
        if form == "edit":
            images = result_images(interaction.message, job)
            if not images:
                raise InputsGone("buttons.images_gone", id=job.id)
            wanted, sources = forms.chosen_edit(interaction.data, images,
                                                await self._launcher.channel_defaults(interaction))
            await self._launcher.start(interaction, NeedsPicturesToEdit(wanted, sources), parent_job_id=job.id)
            return
        if job.kind is JobKind.IMAGE:
            request = parse_image_request(values.get("prompt"), values.get("size"),
                                          int(values["n"]) if values.get("n", "").isdigit() else None,
                                          prompt_extend)
            await self._launcher.start(interaction, Ready(JobKind.IMAGE, request), parent_job_id=job.id)
            return
        self._check_inputs_alive(job)
        if job.kind is JobKind.EDIT:
            defaults = await self._launcher.channel_defaults(interaction)
            edit_options = defaults.edit_options(values.get("prompt"), values.get("n"), prompt_extend)
            edit = EditRequest.from_dict({**job.request, "prompt": edit_options.prompt, "n": edit_options.n})
            await self._launcher.start(interaction, Ready(JobKind.EDIT, edit), parent_job_id=job.id)
            return
        options = parse_video_options(values.get("prompt"), values.get("duration"), values.get("quality"),
                                      prompt_extend)
        video = VideoRequest.from_dict({**job.request, "prompt": options.prompt, "duration": options.duration,
                                        "quality": options.quality})
        await self._launcher.start(interaction, Ready(JobKind.VIDEO, video), parent_job_id=job.id)

    def _check_inputs_alive(self, job: Job) -> None:
        """A video or an edit starts from pictures that live about a day: past that, say so (and
        charge nothing) rather than send EvoLink links it can no longer fetch."""
        if job.kind is JobKind.IMAGE:
            return
        if self._services.clock.now() - from_millis(job.created_at) > INPUT_LIFETIME:
            raise InputsGone("buttons.video_input_gone" if job.kind is JobKind.VIDEO else "buttons.edit_input_gone",
                             id=job.id)

    # -- private answers ------------------------------------------------------------------------

    async def details(self, interaction: discord.Interaction, job: Job) -> None:
        """Everything about the job, for the one who asked: full prompt, options, task id,
        timings, credits."""
        cost = await self._services.ledger.job_cost(job.id)
        await interaction.response.send_message(
            embed=details_embed(job, for_interaction(interaction), charged=cost.charged, refunded=cost.refunded),
            ephemeral=True)

    async def delete(self, interaction: discord.Interaction, job: Job) -> None:
        """The requester or a moderator removes the result; /show will not post it again."""
        if not await self._may_delete(interaction, job):
            raise NotYours(job.user_id)
        if interaction.message is not None:
            await interaction.message.delete()
        await self._services.store.mark_removed(job.id, interaction.user.id)
        log.info("Job %d: result deleted by user %d", job.id, interaction.user.id)
        await interaction.response.send_message(for_interaction(interaction)("buttons.deleted", id=job.id),
                                                ephemeral=True)

    async def _may_delete(self, interaction: discord.Interaction, job: Job) -> bool:
        """The requester; or a moderator: Manage Messages or Manage Server in this channel, or
        the moderator role set with /quota moderator-role."""
        if interaction.user.id == job.user_id:
            return True
        permissions = interaction.permissions
        if permissions.manage_messages or has_manage_server(interaction):
            return True
        moderator_role = await self._services.quotas.moderator_role(job.guild_id)
        return moderator_role is not None and moderator_role in member_role_ids(interaction)


async def refused_while_restarting(interaction: discord.Interaction) -> bool:
    """Clicks are not app commands, so the tree's restart check does not see them: same answer."""
    if not getattr(interaction.client, "shutting_down", False):
        return False
    await reply_with_error(interaction, RESTARTING.render(interaction.locale))
    return True


def stored_request(job: Job) -> GenerationRequest:
    if job.kind is JobKind.VIDEO:
        return VideoRequest.from_dict(job.request)
    if job.kind is JobKind.EDIT:
        return EditRequest.from_dict(job.request)
    return ImageRequest.from_dict(job.request)


def result_images(message: discord.Message | None, job: Job) -> list[ImageSource]:
    """The job's images, in order: from the clicked message (its links are fresh: Discord signs
    them for each payload), else the attachments recorded at delivery."""
    if message is not None and message.attachments:
        return [ImageSource(a.url, a.filename, a.size) for a in message.attachments
                if (a.content_type or "").startswith("image/") or a.width]
    return [ImageSource(item["url"], item["filename"], item.get("size")) for item in job.delivered
            if str(item.get("content_type") or "").startswith("image/")]


# -- what Details shows --------------------------------------------------------------------------

def details_embed(job: Job, _: Translate, *, charged: int | None, refunded: int | None) -> discord.Embed:
    embed = discord.Embed(title=_("buttons.details_title", id=job.id),
                          description=render.safe_text(job.request["prompt"])[:EMBED_DESCRIPTION_CHARS],
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
        embed.add_field(name=_("buttons.field_error"), value=job.error_message[:EMBED_FIELD_VALUE_CHARS], inline=False)
    return embed


def _describe_all_options(job: Job, _: Translate) -> str:
    request = job.request
    extend = _("buttons.yes" if request.get("prompt_extend", True) else "buttons.no")
    if job.kind is JobKind.VIDEO:
        return _("buttons.options_video", duration=request["duration"], quality=request["quality"],
                 size=f"{request['image_width']}x{request['image_height']}", extend=extend)
    if job.kind is JobKind.EDIT:
        sizes = ", ".join(f"{width}x{height}" for width, height in request["image_sizes"])
        key = "buttons.options_edit" if len(request["image_sizes"]) == 1 else "buttons.options_fusion"
        return _(key, sizes=sizes, n=request["n"], extend=extend)
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
