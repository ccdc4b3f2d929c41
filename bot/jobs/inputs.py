"""A video job's input picture: fetched from Discord, checked and repaired, uploaded if changed.

Everything here happens before anything is reserved or paid: a picture that cannot be used ends
with a reply naming the rule and the value, and no API call.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bot.errors import UserFacingError
from bot.evolink.client import EvoLinkClient
from bot.evolink.errors import EvoLinkError
from bot.i18n import ENGLISH, Message
from bot.media import megabytes
from bot.media.downloads import DownloadError, download_to_file
from bot.media.input_image import PreparedImage, UnusableImage, prepare_input_image

log = logging.getLogger(__name__)

INPUT_DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=120, connect=15, sock_read=30)


@dataclass(frozen=True)
class ImageSource:
    """Where a member's picture is: a Discord attachment (or embed image) URL."""

    url: str
    name: str
    claimed_size: int | None = None  # what Discord says; checked against the bytes anyway


@dataclass(frozen=True)
class PreparedInput:
    image_url: str               # what EvoLink will fetch
    width: int
    height: int
    notes: tuple[str, ...]       # what was repaired, for the member, in their language


class InputUnavailable(UserFacingError):
    """The picture could not be fetched or handed to EvoLink (not the member's fault)."""


async def prepare_video_input(
    source: ImageSource,
    *,
    session: aiohttp.ClientSession,
    evolink: EvoLinkClient,
    max_download_bytes: int,
    locale: str = ENGLISH,
) -> PreparedInput:
    """Fetch, check and, when needed, repair and upload the picture. Raises UnusableImage (the
    member's to fix) or InputUnavailable. The notes on repairs are written in `locale`, the
    requester's: they are stored with the job, whose messages are in that language."""
    if source.claimed_size is not None and source.claimed_size > max_download_bytes:
        raise UnusableImage(Message("inputs.subject_attachment", name=source.name),
                            megabytes(source.claimed_size),
                            Message("inputs.rule_too_large", limit=megabytes(max_download_bytes)))
    folder = Path(tempfile.mkdtemp(prefix="wan-input-"))
    try:
        original = folder / "original"
        try:
            await download_to_file(session, source.url, original, max_bytes=max_download_bytes,
                                   timeout=INPUT_DOWNLOAD_TIMEOUT)
        except DownloadError as exc:
            log.info("Input %s could not be downloaded: %s", source.name, exc)
            raise InputUnavailable("inputs.download_failed", name=source.name, reason=str(exc)) from exc
        prepared = await asyncio.to_thread(
            prepare_input_image, original, folder, display_name=source.name
        )
        if not prepared.repaired:
            # Untouched: EvoLink fetches it straight from Discord's CDN.
            return PreparedInput(source.url, prepared.width, prepared.height, ())
        image_url = await _upload(evolink, prepared, source.name)
        return PreparedInput(image_url, prepared.width, prepared.height, prepared.changes_in(locale))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _upload(evolink: EvoLinkClient, prepared: PreparedImage, name: str) -> str:
    data = await asyncio.to_thread(prepared.path.read_bytes)  # at most 10 MB by the input rules
    try:
        uploaded = await evolink.upload_file(
            data, filename=f"input.{prepared.extension}", content_type=prepared.content_type
        )
    except EvoLinkError as exc:
        log.warning("Uploading the repaired input %s failed: %s", name, exc)
        raise InputUnavailable("inputs.upload_failed") from exc
    return uploaded.file_url


__all__ = ["ImageSource", "InputUnavailable", "PreparedInput", "UnusableImage", "prepare_video_input"]
