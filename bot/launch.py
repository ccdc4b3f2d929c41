"""The one path that starts a job, for every command, button, form and menu: check, reserve,
acknowledge, start.

Every kind of job takes the same steps in the same order:

1. refuse while new generations are paused (EvoLink refused the bot's account);
2. refuse a prompt with one of the server's blocked terms;
3. when the job has slow work to do before it can be reserved (a video's first frame, or the
   pictures to edit: fetched, checked, repaired, uploaded), refuse what the member cannot afford
   now, acknowledge publicly, then do that work, one job's pictures per member at a time; a
   refusal from here on replaces the public "thinking…" with a private answer (bot/ui/errors.py);
4. reserve: the job's row and its credit hold, in one transaction (every quota check again,
   atomically). A job with nothing to prepare is reserved before it is acknowledged, so each of
   its refusals is a private first answer;
5. acknowledge (if not yet) and put the job in line with its message. Any failure from the
   reservation until the job is in line cancels it and frees its hold.

Options and the channel's defaults are turned into a request by the callers, with
ChannelDefaults.image_request / edit_options / video_options (see `channel_defaults`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import discord

from bot.channel_defaults import ChannelDefaults
from bot.i18n import supported_locale
from bot.jobs.failures import NOT_ACKNOWLEDGED
from bot.jobs.inputs import ImageSource, PreparedInput, prepare_input_picture
from bot.jobs.runner import Submission
from bot.jobs.store import JobKind
from bot.media.picture_rules import PICTURE_TO_EDIT, VIDEO_FIRST_FRAME, PictureRules
from bot.pricing import Prices
from bot.requests import EditOptions, EditRequest, GenerationRequest, VideoOptions, VideoRequest
from bot.ui.checks import member_role_ids
from bot.ui.errors import defer_publicly, placeholder_taken
from bot.ui.render import shortened

if TYPE_CHECKING:
    from bot.services import Services  # built above the launcher, which only uses them

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ready:
    """A job whose request is complete: a prompt for images, or pictures already on Discord or
    EvoLink (a reroll or remix of a video or an edit)."""

    kind: JobKind
    request: GenerationRequest

    @property
    def prompt(self) -> str:
        return self.request.prompt


class PicturesToPrepare(Protocol):
    """A job that starts from pictures still to fetch, check against its model's rules and
    repair; its request is complete once they are."""

    kind: ClassVar[JobKind]
    rules: ClassVar[PictureRules]

    @property
    def prompt(self) -> str: ...

    @property
    def sources(self) -> tuple[ImageSource, ...]: ...

    def estimate(self, prices: Prices) -> int: ...

    def request(self, prepared: Sequence[PreparedInput]) -> GenerationRequest: ...


@dataclass(frozen=True)
class NeedsPicture:
    """A video whose first frame is a picture still to fetch, check and repair."""

    options: VideoOptions
    source: ImageSource
    kind: ClassVar[JobKind] = JobKind.VIDEO
    rules: ClassVar[PictureRules] = VIDEO_FIRST_FRAME

    @property
    def prompt(self) -> str:
        return self.options.prompt

    @property
    def sources(self) -> tuple[ImageSource, ...]:
        return (self.source,)

    def estimate(self, prices: Prices) -> int:
        return prices.video_estimate(self.options.duration, self.options.quality)

    def request(self, prepared: Sequence[PreparedInput]) -> VideoRequest:
        [frame] = prepared
        options = self.options
        return VideoRequest(
            prompt=options.prompt, duration=options.duration, quality=options.quality,
            prompt_extend=options.prompt_extend, image_url=frame.image_url,
            image_width=frame.width, image_height=frame.height, input_notes=frame.notes,
        )


@dataclass(frozen=True)
class NeedsPicturesToEdit:
    """An edit of one picture, or a fusion of two, whose pictures are still to fetch, check and
    repair (to the editing model's rules, which are not the video's)."""

    options: EditOptions
    sources: tuple[ImageSource, ...]
    kind: ClassVar[JobKind] = JobKind.EDIT
    rules: ClassVar[PictureRules] = PICTURE_TO_EDIT

    def __post_init__(self) -> None:
        assert 1 <= len(self.sources) <= 2, "an edit takes one picture, or two to fuse"

    @property
    def prompt(self) -> str:
        return self.options.prompt

    def estimate(self, prices: Prices) -> int:
        return prices.edit_estimate(self.options.n)

    def request(self, prepared: Sequence[PreparedInput]) -> EditRequest:
        options = self.options
        notes = [note for picture in prepared for note in picture.notes] if len(prepared) == 1 else [
            # Two pictures: say which one each repair was made to.
            f"{shortened(source.name, 40)}: {note}" for source, picture in zip(self.sources, prepared, strict=True)
            for note in picture.notes]
        return EditRequest(
            prompt=options.prompt, n=options.n, prompt_extend=options.prompt_extend,
            image_urls=tuple(picture.image_url for picture in prepared),
            image_sizes=tuple((picture.width, picture.height) for picture in prepared),
            input_notes=tuple(notes),
        )


JobDraft = Ready | NeedsPicture | NeedsPicturesToEdit


class Launcher:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def channel_defaults(self, interaction: discord.Interaction) -> ChannelDefaults:
        """The defaults of the channel the interaction comes from (for options left out)."""
        assert interaction.guild_id is not None and interaction.channel_id is not None
        return await self._services.channel_defaults.get(interaction.guild_id, interaction.channel_id)

    async def start(self, interaction: discord.Interaction, draft: JobDraft, *,
                    parent_job_id: int | None = None) -> None:
        """Start the job `draft` describes, in a new reply to `interaction`; raises a
        UserFacingError (the caller's error handler answers it privately) when it may not run."""
        services = self._services
        assert interaction.guild_id is not None and interaction.channel_id is not None
        services.runner.check_accepting()
        await services.blocked_terms.check(interaction.guild_id, draft.prompt)
        deferral: discord.InteractionCallbackResponse | None = None
        if isinstance(draft, Ready):
            submission = await self._reserve(interaction, draft.kind, draft.request, parent_job_id)
        else:
            deferral, submission = await self._prepare_and_reserve(interaction, draft, parent_job_id)
        async with self._cancelled_unless_started(submission):
            if deferral is None:
                deferral = await defer_publicly(interaction)
            await self._follow_in_reply(interaction, submission, deferral)

    async def _prepare_and_reserve(
        self, interaction: discord.Interaction, draft: PicturesToPrepare, parent_job_id: int | None,
    ) -> tuple[discord.InteractionCallbackResponse | None, Submission]:
        services = self._services
        assert interaction.guild_id is not None
        roles = member_role_ids(interaction)
        estimate = draft.estimate(services.settings.prices)
        # Refused privately before anything public happens; the real, atomic reservation comes
        # once the pictures are known to be usable.
        await services.ledger.check_allowed(interaction.guild_id, interaction.user.id, roles, estimate)
        deferral = await defer_publicly(interaction)
        # One job's pictures of a member's at a time: six parallel /animate from someone who can
        # afford one video download and decode one picture; the others find the credits reserved.
        async with services.media.preparing_picture(interaction.user.id):
            await services.ledger.check_allowed(interaction.guild_id, interaction.user.id, roles, estimate)
            prepared = [
                await prepare_input_picture(
                    source, draft.rules, media=services.discord_media, evolink=services.evolink,
                    guild_id=interaction.guild_id, max_download_bytes=services.settings.max_input_image_bytes,
                    locale=supported_locale(interaction.locale))
                for source in draft.sources
            ]
            request = draft.request(prepared)
            return deferral, await self._reserve(interaction, draft.kind, request, parent_job_id)

    async def _reserve(self, interaction: discord.Interaction, kind: JobKind,
                       request: GenerationRequest, parent_job_id: int | None) -> Submission:
        assert interaction.guild_id is not None and interaction.channel_id is not None
        return await self._services.runner.submit(
            kind=kind, guild_id=interaction.guild_id, channel_id=interaction.channel_id,
            user_id=interaction.user.id, interaction_id=interaction.id, request=request,
            role_ids=member_role_ids(interaction), locale=supported_locale(interaction.locale),
            parent_job_id=parent_job_id,
        )

    @asynccontextmanager
    async def _cancelled_unless_started(self, submission: Submission) -> AsyncIterator[None]:
        """A submitted job (written, its credits held) that fails to be acknowledged and put in
        line, for whatever reason (Discord refused the answer, the network broke, the handler was
        cancelled), is failed and refunded at once: a job the member never saw start must never
        run and be charged after a restart. (If even this cannot be written, the next start
        fails it: see JobRunner.resume_unfinished.)"""
        try:
            yield
        except BaseException:
            # Shielded: a cancellation (shutdown) must not cut the refund in half.
            await asyncio.shield(self._services.runner.cancel_unstarted(submission.job_id, NOT_ACKNOWLEDGED))
            log.warning("Job %d: not acknowledged; cancelled and refunded", submission.job_id)
            raise

    async def _follow_in_reply(self, interaction: discord.Interaction, submission: Submission,
                               deferral: discord.InteractionCallbackResponse | None) -> None:
        """Put the job in line with its progress and results in the deferred reply. The reply's
        id is stored at once, so the bot token can take over from the interaction token."""
        services = self._services
        message_id = deferral.message_id if deferral is not None else None
        acknowledged = await services.store.acknowledge(submission.job_id, message_id)
        job = await services.store.get(submission.job_id)
        reporter = services.messages.in_reply(job, interaction, submission.reserved)
        placeholder_taken(interaction)
        if not acknowledged:
            # This process stalled so long between writing the job and answering that another
            # one gave the job up as never acknowledged, and refunded it: say so in the reply.
            log.warning("Job %d: acknowledged too late; it was cancelled and refunded", job.id)
            await reporter.show_failure(job, NOT_ACKNOWLEDGED, submission.reserved)
            return
        services.runner.enqueue(job, reporter, running_limit=submission.running_limit)
