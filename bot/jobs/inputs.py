"""A job's input picture (a video's first frame, a picture to edit): fetched from Discord, checked
and repaired to the model's rules, uploaded if changed.

Everything here happens before anything is reserved or paid: a picture that cannot be used ends
with a reply naming the rule and the value, and no API call. The picture is fetched only from
Discord's media hosts (bot/media/sources.py), and the download and the decoding each wait for a
media slot (bot/media/limits.py), so no member or guild can make the bot fetch or decode without
bound before it has reserved anything.
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
from bot.media.downloads import DownloadError
from bot.media.input_image import PictureRules, PreparedImage, UnusableImage, prepare_input_image
from bot.media.sources import DiscordMedia, NotDiscordMedia

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


async def prepare_input_picture(
    source: ImageSource,
    rules: PictureRules,
    *,
    media: DiscordMedia,
    evolink: EvoLinkClient,
    guild_id: int,
    max_download_bytes: int,
    locale: str = ENGLISH,
) -> PreparedInput:
    """Fetch, check against the model's `rules` and, when needed, repair and upload the picture. Raises UnusableImage (the
    member's to fix) or InputUnavailable. The notes on repairs are written in `locale`, the
    requester's: they are stored with the job, whose messages are in that language. The remote
    answer is never shown to the member (it is logged): a picture link must not become a way to
    probe what the bot can reach."""
    if source.claimed_size is not None and source.claimed_size > max_download_bytes:
        raise UnusableImage(Message("inputs.subject_attachment", name=source.name), megabytes(source.claimed_size),
                            Message("inputs.rule_too_large", limit=megabytes(max_download_bytes)))
    if not media.origins.allows(source.url):
        raise InputUnavailable("inputs.not_on_discord", name=source.name)
    folder = Path(tempfile.mkdtemp(prefix="wan-input-"))
    try:
        original = folder / "original"
        try:
            await media.fetch(source.url, original, guild_id=guild_id, max_bytes=max_download_bytes,
                              timeout=INPUT_DOWNLOAD_TIMEOUT)
        except NotDiscordMedia as exc:
            log.info("Input %s led away from Discord's media hosts: %s", source.name, exc)
            raise InputUnavailable("inputs.not_on_discord", name=source.name) from exc
        except DownloadError as exc:
            log.info("Input %s could not be downloaded: %s", source.name, exc)
            raise InputUnavailable("inputs.download_failed", name=source.name) from exc
        async with media.limits.processing.slot(guild_id):
            prepared = await asyncio.to_thread(
                prepare_input_image, original, folder, rules, display_name=source.name
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


__all__ = ["ImageSource", "InputUnavailable", "PreparedInput", "UnusableImage", "prepare_input_picture"]
