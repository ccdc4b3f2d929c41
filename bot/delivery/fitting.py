"""Fitting a job's results to Discord's upload limits: what is attached as it is, what is shrunk
(images re-encoded, videos re-encoded with ffmpeg), and what can only be linked, and why."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime

from bot.delivery.limits import MAX_REQUEST_BYTES
from bot.i18n import Message, Translate
from bot.jobs.kinds import ResultFile
from bot.jobs.store import Job, JobKind
from bot.media import megabytes
from bot.media.downloads import DownloadError
from bot.media.images import shrink_to_fit
from bot.media.limits import MediaLimits
from bot.media.video import VideoFitError, fit_video
from bot.ui import render
from bot.ui.pages import LinkLine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fitted:
    attachable: list[ResultFile]  # within the limit, shrunk where needed
    links: list[LinkLine]         # one line per result that can only be linked (the embed fits them)


@dataclass(frozen=True)
class UploadFitter:
    """Makes results fit an upload limit. Shrinking takes one of the guild's processing slots
    (bot/media/limits.py): image re-encodes and ffmpeg runs are the bot's heaviest work."""

    ffmpeg: str | None  # None: a video over the limit is linked, not re-encoded
    media: MediaLimits

    async def fit(self, job: Job, results: list[ResultFile], limit: int, links_expire_at: datetime,
                  locale: str) -> Fitted:
        """Split the results into files to attach (made to fit `limit`, and the whole request
        under Discord's request size) and lines linking those that cannot be attached. A `limit`
        of 0 attaches nothing: Discord refused even what fitted its base limit."""
        _ = Translate(locale)
        per_file = min(limit, MAX_REQUEST_BYTES // max(1, len(results)))
        attachable: list[ResultFile] = []
        links: list[LinkLine] = []
        for result in results:
            if result.size <= per_file:
                attachable.append(result)
                continue
            if per_file <= 0:
                why = _("job.refused_too_large", noun=_noun(result, _), size=megabytes(result.size))
            else:
                try:
                    attachable.append(await self._shrink(job, result, per_file))
                    continue
                except (VideoFitError, DownloadError) as exc:
                    why = _("job.over_upload_limit", noun=_noun(result, _), size=megabytes(result.size),
                            limit=megabytes(per_file), reason=_fit_failure(exc, locale))
            links.append(render.link_instead_of_file(result.source_url, links_expire_at, why, locale))
        return Fitted(attachable, links)

    async def _shrink(self, job: Job, result: ResultFile, max_bytes: int) -> ResultFile:
        if result.kind.makes_images:
            async with self.media.processing.slot(job.guild_id):
                image = await asyncio.to_thread(shrink_to_fit, result.path, max_bytes)
            return replace(result, path=image.path, size=image.size, extension=image.extension,
                           width=image.width, height=image.height)
        if self.ffmpeg is None:
            raise VideoFitError(Message("video.ffmpeg_missing"))
        async with self.media.processing.slot(job.guild_id):
            video = await fit_video(self.ffmpeg, result.path, max_bytes, work_dir=result.path.parent,
                                    duration_hint=job.request.get("duration"))
        log.info("Job %d: video re-encoded from %d to %d bytes", job.id, result.size, video.size)
        return replace(result, path=video.path, size=video.size)


def _noun(result: ResultFile, _: Translate) -> str:
    return _("job.noun_video" if result.kind is JobKind.VIDEO else "job.noun_image")


def _fit_failure(error: VideoFitError | DownloadError, locale: str) -> str:
    # A download error's text is technical (and English); the fitting reasons are translated.
    return error.localized(locale) if isinstance(error, VideoFitError) else str(error)
