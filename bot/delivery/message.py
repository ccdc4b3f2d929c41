"""A job's message in Discord: throttled progress edits, the result upload, and the fallbacks
when the interaction token can no longer be used or the channel refuses the bot. (What the
message shows is bot/ui/render.py; fitting the files to the upload limit is fitting.py.)

Edits go through the interaction token while it lives (15 minutes), then through the bot token on
the same message (channel and message ids are kept), and, if that message is gone, as a new
message in the channel that mentions the requester. A job resumed after a restart has no
interaction at all and starts on the bot token. If the bot lacks a permission in the channel,
the requester is told which one and gets the result by DM.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import discord

from bot.clock import Clock
from bot.delivery.fitting import UploadFitter
from bot.delivery.limits import DEFAULT_UPLOAD_LIMIT, NONCE_CHARS
from bot.i18n import Message, Translate, text
from bot.jobs.failures import JobFailed, JobFailure
from bot.jobs.kinds import ResultFile
from bot.jobs.progress import JobProgress
from bot.jobs.runner import JobRunner
from bot.jobs.store import Job, JobStore, LeaseLost
from bot.media.limits import MediaLimits
from bot.ui import render
from bot.ui.buttons import result_view
from bot.units import to_millis

log = logging.getLogger(__name__)

MIN_EDIT_INTERVAL = 3.0  # seconds between two edits of one message (Discord's webhook limits)
# A progress state is shown only once it has lasted this long: the states a job passes through
# in a blink (sending, downloading and uploading an image) are skipped, and their edits with them,
# so the result's edit never waits for the interval behind an edit nobody had time to read.
PROGRESS_SETTLE_SECONDS = 1.0
# Stop using the token a little before it dies: an upload started at 14:59 would fail midway.
TOKEN_SAFETY_MARGIN = timedelta(seconds=60)
INVALID_WEBHOOK_TOKEN = 50027
UNKNOWN_MESSAGE = 10008
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
REQUEST_TOO_LARGE = 40005
# After an edit Discord made us wait for (a rate limit), the next waits twice as long, up to this.
MAX_EDIT_INTERVAL = 30.0

FilesFactory = Callable[[], list[discord.File]]


@dataclass(frozen=True)
class Display:
    """What one edit shows: the job's embed, the buttons under a result, and text above the
    embed only where someone must be addressed (a new message, a DM)."""

    embed: discord.Embed
    view: discord.ui.View | None = None
    content: str | None = None

    def key(self) -> tuple:
        """Equal keys look the same to a reader: an edit that changes nothing is skipped."""
        return (self.content, self.embed.to_dict(), self.view.to_components() if self.view else None)


class JobMessage:
    """Implements the runner's JobReporter for one job's message in a channel."""

    def __init__(
        self,
        client: discord.Client,
        job: Job,
        *,
        store: JobStore,
        clock: Clock,
        reserved: int,
        interaction: discord.Interaction | None = None,
        fitter: UploadFitter | None = None,
    ) -> None:
        self._interaction = interaction  # None for a job resumed after a restart
        self._fitter = fitter or UploadFitter(ffmpeg=None, media=MediaLimits.unbounded())
        self._client = client
        self._store = store
        self._clock = clock
        self._job_id = job.id
        self._reserved = reserved
        self._channel_id = job.channel_id
        self._guild_id = job.guild_id
        self._requester_id = job.user_id
        # Known from the deferral's answer, so the bot token can edit it even if the
        # interaction token is already too old to use.
        self._message_id = job.message_id
        self._token_usable = interaction is not None
        self._locale = job.locale
        self._shown: tuple | None = None  # Display.key() of what the message shows
        self._last_edit_at = -math.inf
        self._edit_interval = MIN_EDIT_INTERVAL
        self._progress_refused = False  # the channel refused an edit: no more progress there
        self._pending: Display | None = None
        self._pending_since = -math.inf  # when the pending display (or the one it replaced) came
        self._flusher: asyncio.Task[None] | None = None
        self._edit_lock = asyncio.Lock()

    def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()

    # -- JobReporter ----------------------------------------------------------------------------

    async def show_progress(self, progress: JobProgress) -> None:
        """Never waits on Discord: the newest text is handed to a background flusher, so a slow
        or rate-limited edit cannot hold up polling."""
        display = Display(render.progress_embed(progress, reserved=self._reserved))
        if self._progress_refused or display.key() in (
                self._pending and self._pending.key(), self._shown):
            return
        if self._pending is None:
            self._pending_since = self._clock.monotonic()
        self._pending = display
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_progress(), name=f"job-{self._job_id}-edits")

    async def deliver(self, job: Job, results: list[ResultFile], charged: int,
                      links_expire_at: datetime) -> None:
        """Attach every result that fits the upload limit that applies (shrunk or re-encoded if
        needed); link the others while EvoLink's links live. A 413 from Discord means the limit
        was smaller than we knew: try again at Discord's base limit, then fall back to links."""
        limit = self._upload_limit()
        # dict.fromkeys drops a repeat: when the limit already is Discord's base limit, trying it
        # again would only send the same files to the same refusal.
        for attempt_limit in dict.fromkeys((limit, min(limit, DEFAULT_UPLOAD_LIMIT), 0)):
            fitted = await self._fitter.fit(job, results, attempt_limit, links_expire_at, self._locale)
            display = Display(
                render.result_embed(job, charged=charged, links=fitted.links,
                                    finished_at=to_millis(self._clock.now())),
                result_view(job),
            )
            attachable = fitted.attachable
            files = _files_factory(job, attachable) if attachable else None
            try:
                message = await self._final_edit(display, files)
                if message is not None:
                    await self._store.set_delivered(job.id, [_attachment_record(a) for a in message.attachments])
                return
            except discord.Forbidden as exc:
                if exc.code not in (MISSING_PERMISSIONS, MISSING_ACCESS):
                    raise
                needed = "Attach Files" if files else "View Channel and Send Messages"
                await self._deliver_by_dm(display, files, needed)
                return
            except discord.HTTPException as exc:
                if not _is_too_large(exc) or not attachable:
                    raise
                log.info("Job %d: Discord refused the upload as too large at %d bytes",
                         self._job_id, attempt_limit)

    async def show_failure(self, job: Job, failure: JobFailure, refunded: int | None) -> None:
        await self._final_edit(Display(render.failure_embed(job, failure, refunded)), None)

    # -- a channel that refuses the bot -----------------------------------------------------------

    async def _deliver_by_dm(self, display: Display, files: FilesFactory | None, needed: str) -> None:
        """The bot may not post the result in the channel: say so where it can (the reply, if a
        text edit still works), and send the result to the requester by DM. If DMs are closed
        too, the job fails (and is refunded) with the same explanation."""
        log.warning("Job %d: missing permission in channel %d (needs %s); delivering by DM",
                    self._job_id, self._channel_id, needed)
        _ = Translate(self._locale)
        why = render.render_missing_permission(self._channel_id, needed, self._locale)
        try:
            await self._edit(replace(display, content=f"{why} {_('job.sent_by_dm')}"), None,
                             allow_new_message=False)
        except discord.HTTPException:
            pass  # not even a text edit: the DM below is the only place left
        try:
            channel = await self._client.create_dm(discord.Object(self._requester_id))
            await channel.send(why, embed=display.embed, files=files() if files else discord.utils.MISSING,
                               nonce=_nonce(self._job_id, "dm"))
        except discord.HTTPException as exc:
            log.warning("Job %d: the DM was refused too (HTTP %s, code %s)", self._job_id, exc.status, exc.code)
            raise JobFailed(JobFailure.of(
                "missing_permission", "job.dms_closed",
                why=Message("job.missing_permission", channel=f"<#{self._channel_id}>", needed=needed),
            )) from exc

    # -- throttling -----------------------------------------------------------------------------

    async def _flush_progress(self) -> None:
        """Show the newest pending text, waiting out the interval between edits; states that were
        overtaken while waiting are skipped."""
        while self._pending is not None:
            async with self._edit_lock:
                await self._wait_for_edit_slot(settle_from=self._pending_since)
                display, self._pending = self._pending, None
                if display is None or display.key() == self._shown:
                    continue
                began = self._clock.monotonic()
                try:
                    # Progress is never worth a new message: without a way to edit, skip it.
                    await self._edit(display, None, allow_new_message=False)
                except LeaseLost:
                    return  # another process shows this job now
                except discord.HTTPException as exc:
                    log.warning("Job %d: progress edit failed (HTTP %s, code %s)",
                                self._job_id, exc.status, exc.code)
                    if exc.status == 403:
                        # Repeated 403s can get the bot's IP banned: stop; the result still tries.
                        self._progress_refused = True
                self._adapt_edit_interval(self._clock.monotonic() - began)

    def _adapt_edit_interval(self, took: float) -> None:
        """discord.py waits out a 429 inside the call, so an edit that took longer than the interval
        was rate limited: back off, and come back to the normal pace once edits are quick again."""
        if took > MIN_EDIT_INTERVAL:
            self._edit_interval = min(self._edit_interval * 2, MAX_EDIT_INTERVAL)
        else:
            self._edit_interval = MIN_EDIT_INTERVAL

    async def _final_edit(self, display: Display, files: FilesFactory | None) -> discord.Message | None:
        self._pending = None
        if self._flusher is not None:
            self._flusher.cancel()
        async with self._edit_lock:
            await self._wait_for_edit_slot()
            return await self._edit(display, files, allow_new_message=True)

    async def _wait_for_edit_slot(self, settle_from: float = -math.inf) -> None:
        ready_at = max(self._last_edit_at + self._edit_interval, settle_from + PROGRESS_SETTLE_SECONDS)
        wait = ready_at - self._clock.monotonic()
        if wait > 0:
            await self._clock.sleep(wait)

    # -- routing one edit -------------------------------------------------------------------------

    async def _edit(self, display: Display, files: FilesFactory | None, *,
                    allow_new_message: bool) -> discord.Message | None:
        if self._store.lease_lapsed(self._job_id):
            # This process stalled past its lease (checked after waiting for the edit's turn):
            # another one may be showing the job now, and an edit from here would overwrite it.
            raise LeaseLost(self._job_id)
        try:
            return await self._route_edit(display, files, allow_new_message=allow_new_message)
        finally:
            # Counted from the end: an edit that discord.py held back for a 429 landed only now.
            self._last_edit_at = self._clock.monotonic()

    async def _route_edit(self, display: Display, files: FilesFactory | None, *,
                          allow_new_message: bool) -> discord.Message | None:
        """Edit the job's message by the best route still open; returns the message as Discord
        shows it now, or None if no route was open (progress only). Raises only when the final
        result could not be shown anywhere."""
        def attachments() -> list[discord.File]:
            # Fresh files for each request (a failed one spends them); none: keep what is attached.
            return files() if files else discord.utils.MISSING

        interaction = self._interaction
        if interaction is not None and self._token_alive():
            try:
                message = await interaction.edit_original_response(
                    content=display.content, embed=display.embed, view=display.view, attachments=attachments())
                await self._remember_message(message.id)
                self._shown = display.key()
                return message
            except discord.HTTPException as exc:
                if exc.code == INVALID_WEBHOOK_TOKEN or exc.status == 401:
                    # Never use a dead token again: repeated 401s can get the bot's IP banned.
                    self._token_usable = False
                    log.info("Job %d: interaction token no longer valid; using the bot token",
                             self._job_id)
                elif exc.code == UNKNOWN_MESSAGE:
                    self._message_id = None
                else:
                    raise
        if self._message_id is not None:
            partial = self._client.get_partial_messageable(self._channel_id).get_partial_message(
                self._message_id
            )
            try:
                edited = await partial.edit(content=display.content, embed=display.embed, view=display.view,
                                            attachments=attachments())
                self._shown = display.key()
                return edited
            except discord.NotFound:
                log.info("Job %d: the job message was deleted", self._job_id)
                self._message_id = None
        if not allow_new_message:
            return None
        channel = self._client.get_partial_messageable(self._channel_id)
        posted = await channel.send(
            text(self._locale, "job.new_message_for", mention=f"<@{self._requester_id}>"),
            embed=display.embed, view=display.view or discord.utils.MISSING,
            files=files() if files else discord.utils.MISSING,
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(self._requester_id)]),
            # Discord returns the message already sent under this nonce instead of a second one:
            # a delivery repeated after a crash between sending and recording it posts once.
            nonce=_nonce(self._job_id, "new"),
        )
        await self._remember_message(posted.id)
        self._shown = display.key()
        return posted

    def _token_alive(self) -> bool:
        return self._interaction is not None and self._token_usable and (
            self._clock.now() < self._interaction.expires_at - TOKEN_SAFETY_MARGIN
        )

    async def _remember_message(self, message_id: int) -> None:
        if message_id != self._message_id:
            self._message_id = message_id
            await self._store.set_message(self._job_id, message_id)

    def _upload_limit(self) -> int:
        """The per-file limit of the route the next edit will take: the interaction's (it
        reflects the member's Nitro) while the token lives, else the guild's boost tier."""
        if self._interaction is not None and self._token_alive():
            return self._interaction.filesize_limit
        guild = self._client.get_guild(self._guild_id)
        return guild.filesize_limit if guild else DEFAULT_UPLOAD_LIMIT


def _files_factory(job: Job, results: list[ResultFile]) -> FilesFactory:
    names = [f"wan-{job.id}-{index + 1}.{result.extension}" for index, result in enumerate(results)]

    def files() -> list[discord.File]:
        # A discord.File is spent by a failed request: every attempt gets fresh ones.
        return [discord.File(result.path, filename=name)
                for result, name in zip(results, names, strict=True)]

    return files


def _nonce(job_id: int, purpose: str) -> str:
    return f"wan{job_id}{purpose}"[:NONCE_CHARS]


def _is_too_large(error: discord.HTTPException) -> bool:
    # A proxy may answer 413 without Discord's JSON body, so the status counts as much as the code.
    return error.status == 413 or error.code == REQUEST_TOO_LARGE


def _attachment_record(attachment: discord.Attachment) -> dict[str, object]:
    return {"url": attachment.url, "filename": attachment.filename,
            "content_type": attachment.content_type, "size": attachment.size}


class JobMessages:
    """Makes the message of each job: the runner's JobReporter, for a job just started from an
    interaction (its reply) or for a job known only from its row (resumed, or an operator's)."""

    def __init__(self, client: discord.Client, *, store: JobStore, clock: Clock, runner: JobRunner,
                 ffmpeg: str | None, media: MediaLimits) -> None:
        self._client = client
        self._store = store
        self._clock = clock
        self._runner = runner
        self._fitter = UploadFitter(ffmpeg=ffmpeg, media=media)

    def in_reply(self, job: Job, interaction: discord.Interaction, reserved: int) -> JobMessage:
        """The deferred reply to `interaction` (its id already stored on the job), edited with the
        interaction's token while it lives, then with the bot token."""
        return JobMessage(self._client, job, store=self._store, clock=self._clock, reserved=reserved,
                          interaction=interaction, fitter=self._fitter)

    def for_stored_job(self, job: Job) -> JobMessage:
        """A job known only from its row: no interaction, so every edit uses the bot token on the
        stored channel and message."""
        return JobMessage(self._client, job, store=self._store, clock=self._clock,
                          reserved=self._runner.estimate(job), fitter=self._fitter)
