"""A job's message in Discord: throttled progress edits, the result upload, and the fallbacks
when the interaction token can no longer be used.

Edits go through the interaction token while it lives (15 minutes), then through the bot token on
the same message (channel and message ids are kept), and, if that message is gone, as a new
message in the channel that mentions the requester.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from datetime import timedelta

import discord

from bot.clock import Clock
from bot.jobs.failures import JobFailure
from bot.jobs.runner import JobProgress
from bot.jobs.store import Job, JobStore
from bot.media.images import ImageFile, shrink_to_fit
from bot.ui import render

log = logging.getLogger(__name__)

MIN_EDIT_INTERVAL = 3.0  # seconds between two edits of one message (Discord's webhook limits)
# Stop using the token a little before it dies: an upload started at 14:59 would fail midway.
TOKEN_SAFETY_MARGIN = timedelta(seconds=60)
INVALID_WEBHOOK_TOKEN = 50027
UNKNOWN_MESSAGE = 10008
# Discord refuses a request whose files add up to more than about 25 MiB.
MAX_REQUEST_BYTES = 24 * 1024 * 1024

FilesFactory = Callable[[], list[discord.File]]


class JobMessage:
    """Implements the runner's JobReporter for a job started by a slash command."""

    def __init__(
        self,
        interaction: discord.Interaction,
        *,
        store: JobStore,
        clock: Clock,
        job_id: int,
        reserved: int,
    ) -> None:
        self._interaction = interaction
        self._client = interaction.client
        self._store = store
        self._clock = clock
        self._job_id = job_id
        self._reserved = reserved
        self._channel_id = interaction.channel_id
        self._message_id: int | None = None
        self._token_usable = True
        self._shown_text: str | None = None
        self._last_edit_at = -math.inf
        self._pending_text: str | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._edit_lock = asyncio.Lock()

    # -- JobReporter ----------------------------------------------------------------------------

    async def show_progress(self, progress: JobProgress) -> None:
        """Never waits on Discord: the newest text is handed to a background flusher, so a slow
        or rate-limited edit cannot hold up polling."""
        text = render.render_progress(progress, self._reserved)
        if text in (self._pending_text, self._shown_text):
            return
        self._pending_text = text
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_progress(), name=f"job-{self._job_id}-edits")

    async def deliver(self, job: Job, images: list[ImageFile], charged: int) -> None:
        images = await self._fit_for_upload(images)
        names = [f"wan-{job.id}-{index + 1}.{image.extension}" for index, image in enumerate(images)]

        def files() -> list[discord.File]:
            # A discord.File is spent by a failed request: every attempt gets fresh ones.
            return [discord.File(image.path, filename=name) for image, name in zip(images, names, strict=True)]

        await self._final_edit(render.render_result(job, len(images), charged), files)

    async def show_failure(self, job: Job, failure: JobFailure, refunded: int | None) -> None:
        await self._final_edit(render.render_failure(job, failure, refunded), None)

    # -- throttling -----------------------------------------------------------------------------

    async def _flush_progress(self) -> None:
        """Show the newest pending text, waiting out the interval between edits; states that were
        overtaken while waiting are skipped."""
        while self._pending_text is not None:
            async with self._edit_lock:
                await self._wait_for_edit_slot()
                text, self._pending_text = self._pending_text, None
                if text is None or text == self._shown_text:
                    continue
                try:
                    # Progress is never worth a new message: without a way to edit, skip it.
                    await self._edit(text, None, allow_new_message=False)
                except discord.HTTPException as exc:
                    log.warning("Job %d: progress edit failed (HTTP %s, code %s)",
                                self._job_id, exc.status, exc.code)

    async def _final_edit(self, text: str, files: FilesFactory | None) -> None:
        self._pending_text = None
        if self._flusher is not None:
            self._flusher.cancel()
        async with self._edit_lock:
            await self._wait_for_edit_slot()
            await self._edit(text, files, allow_new_message=True)

    async def _wait_for_edit_slot(self) -> None:
        wait = self._last_edit_at + MIN_EDIT_INTERVAL - self._clock.monotonic()
        if wait > 0:
            await self._clock.sleep(wait)

    # -- routing one edit -------------------------------------------------------------------------

    async def _edit(self, text: str, files: FilesFactory | None, *, allow_new_message: bool) -> None:
        """Edit the job's message by the best route still open. Raises only when the final
        result could not be shown anywhere."""
        self._last_edit_at = self._clock.monotonic()
        attachments = {"attachments": files()} if files else {}
        if self._token_alive():
            try:
                message = await self._interaction.edit_original_response(content=text, **attachments)
                await self._remember_message(message.id)
                self._shown_text = text
                return
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
            attachments = {"attachments": files()} if files else {}
        if self._message_id is not None:
            partial = self._client.get_partial_messageable(self._channel_id).get_partial_message(
                self._message_id
            )
            try:
                await partial.edit(content=text, **attachments)
                self._shown_text = text
                return
            except discord.NotFound:
                log.info("Job %d: the job message was deleted", self._job_id)
                self._message_id = None
        if not allow_new_message:
            return
        channel = self._client.get_partial_messageable(self._channel_id)
        message = await channel.send(
            f"<@{self._interaction.user.id}> {text}",
            files=files() if files else discord.utils.MISSING,
            allowed_mentions=discord.AllowedMentions(users=[self._interaction.user]),
        )
        await self._remember_message(message.id)
        self._shown_text = text

    def _token_alive(self) -> bool:
        return self._token_usable and (
            self._clock.now() < self._interaction.expires_at - TOKEN_SAFETY_MARGIN
        )

    async def _remember_message(self, message_id: int) -> None:
        if message_id != self._message_id:
            self._message_id = message_id
            await self._store.set_message(self._job_id, message_id)

    async def _fit_for_upload(self, images: list[ImageFile]) -> list[ImageFile]:
        """Keep every file under the upload limit that applies, and the request under 25 MiB."""
        limit = self._interaction.filesize_limit
        if not self._token_alive() and self._interaction.guild is not None:
            limit = self._interaction.guild.filesize_limit
        per_file = min(limit, MAX_REQUEST_BYTES // max(1, len(images)))
        fitted = []
        for image in images:
            if image.size > per_file:
                image = await asyncio.to_thread(shrink_to_fit, image, per_file)
            fitted.append(image)
        return fitted
