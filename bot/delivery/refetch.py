"""Getting a finished job's files back (for /show), from wherever they still live.

Three places may still hold them, tried in this order:
1. the job's result message in Discord, read again with the bot token: attachment links are
   signed and expire after some hours, so a fresh read gives links that work right now;
2. the attachments recorded when the result was posted (`job.delivered`): the same files, but
   their signed links may have expired, and they die with the message;
3. EvoLink's result links, which live for 24 hours.

The first place whose every file can be had wins. Files are streamed to a temporary folder
(never held in memory) that is removed when the caller is done with them. A file over the
upload limit is not downloaded in full: it is linked instead, if its link still answers.
When no place works, the caller gets one reason per place, to tell the member why.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit

import aiohttp
import discord

from bot import USER_AGENT
from bot.delivery.limits import MAX_REQUEST_BYTES
from bot.evolink.limits import RESULT_DOWNLOAD_TIMEOUT, RESULT_LINK_LIFETIME
from bot.i18n import Message
from bot.jobs.store import Job, JobKind
from bot.media.downloads import DownloadError, download_to_file
from bot.media.sources import DiscordMedia
from bot.units import from_millis

log = logging.getLogger(__name__)

# Only asks whether a link still answers; the body is never read.
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=10)


class Origin(StrEnum):
    """Where a job's files were found."""

    MESSAGE = "message"      # the result message, read again with the bot token
    DELIVERED = "delivered"  # the attachment links recorded when the result was posted
    EVOLINK = "evolink"      # EvoLink's own result links


@dataclass(frozen=True)
class RemoteFile:
    url: str
    filename: str
    size: int | None = None  # as recorded or as Discord reports it, when known


@dataclass(frozen=True)
class Source:
    """A place that may hold the job's files."""

    origin: Origin
    files: tuple[RemoteFile, ...]
    links_expire_at: datetime | None = None  # when its links stop working, if known


@dataclass(frozen=True)
class Unavailable:
    """A place known not to hold the files, without downloading anything; `reason` says why
    for the member (None: nothing worth telling, e.g. nothing was ever recorded there)."""

    origin: Origin
    reason: Message | None


@dataclass(frozen=True)
class FetchedFile:
    path: Path  # inside the temporary folder: valid until the refetch context ends
    filename: str
    size: int


@dataclass(frozen=True)
class LinkedFile:
    """A file over the upload limit whose link still answers: shown as a link."""

    file: RemoteFile
    expires_at: datetime | None


@dataclass
class Refetched:
    files: list[FetchedFile] = field(default_factory=list)
    linked: list[LinkedFile] = field(default_factory=list)
    origin: Origin | None = None
    # Why each place did not work, in the order they were tried (for the "files are gone" reply).
    reasons: list[Message] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.files or self.linked)


# -- the places --------------------------------------------------------------------------------


async def job_sources(client: discord.Client, job: Job, now: datetime) -> list[Source | Unavailable]:
    """Every place that may hold the job's files, best first. Only the message costs a request
    (a read with the bot token); the others are decided from the job's row."""
    return [await message_source(client, job), delivered_source(job, now), evolink_source(job, now)]


async def message_source(client: discord.Client, job: Job) -> Source | Unavailable:
    if job.message_id is None:
        return Unavailable(Origin.MESSAGE, Message("history.gone_no_message"))
    try:
        message = await client.get_partial_messageable(job.channel_id).fetch_message(job.message_id)
    except discord.NotFound:
        return Unavailable(Origin.MESSAGE, Message("history.gone_message_deleted"))
    except discord.Forbidden:
        channel = f"<#{job.channel_id}>"
        return Unavailable(Origin.MESSAGE, Message("history.gone_channel_hidden", channel=channel))
    except discord.HTTPException as exc:
        log.warning("Job %d: reading its message failed (HTTP %s, code %s)", job.id, exc.status, exc.code)
        return Unavailable(Origin.MESSAGE, Message("history.gone_message_unreadable", status=exc.status))
    if not message.attachments:
        return Unavailable(Origin.MESSAGE, Message("history.gone_message_without_files"))
    files = tuple(RemoteFile(attachment.url, attachment.filename, attachment.size)
                  for attachment in message.attachments)
    return Source(Origin.MESSAGE, files, _links_expire_at(files))


def delivered_source(job: Job, now: datetime) -> Source | Unavailable:
    """The attachments recorded when the result was posted. Discord's signed links carry their
    expiry (`ex`, hex Unix seconds): links known to be dead are not even tried."""
    if not job.delivered:
        return Unavailable(Origin.DELIVERED, None)
    files = tuple(RemoteFile(str(entry["url"]), str(entry.get("filename") or ""), entry.get("size"))
                  for entry in job.delivered)
    expires_at = _links_expire_at(files)
    if expires_at is not None and expires_at <= now:
        return Unavailable(Origin.DELIVERED, Message("history.gone_saved_links_expired"))
    return Source(Origin.DELIVERED, files, expires_at)


def evolink_source(job: Job, now: datetime) -> Source | Unavailable:
    if not job.result_urls:
        return Unavailable(Origin.EVOLINK, None)
    finished = from_millis(job.finished_at or job.submitted_at or job.created_at)
    expires_at = finished + RESULT_LINK_LIFETIME
    if expires_at <= now:
        when = f"<t:{int(expires_at.timestamp())}:R>"  # a Discord timestamp, in the reader's time zone
        return Unavailable(Origin.EVOLINK, Message("history.gone_evolink_expired", when=when))
    extension = "mp4" if job.kind is JobKind.VIDEO else "png"
    files = tuple(RemoteFile(url, _name_from_url(url, f"wan-{job.id}-{index + 1}.{extension}"))
                  for index, url in enumerate(job.result_urls))
    return Source(Origin.EVOLINK, files, expires_at)


# -- fetching ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetchers:
    """How each place's files are fetched: Discord's (the message, the recorded attachments) from
    Discord's media hosts only, EvoLink's with the bot's session; each download takes one of the
    guild's download slots."""

    session: aiohttp.ClientSession
    discord_media: DiscordMedia
    guild_id: int

    async def fetch(self, origin: Origin, url: str, path: Path, max_bytes: int) -> int:
        if origin is Origin.EVOLINK:
            async with self.discord_media.limits.downloads.slot(self.guild_id):
                return await download_to_file(self.session, url, path, max_bytes=max_bytes,
                                              timeout=RESULT_DOWNLOAD_TIMEOUT)
        return await self.discord_media.fetch(url, path, guild_id=self.guild_id, max_bytes=max_bytes,
                                              timeout=RESULT_DOWNLOAD_TIMEOUT)

    async def still_served(self, origin: Origin, url: str) -> bool:
        if origin is Origin.EVOLINK:
            return await _still_served(self.session, url, allow_redirects=True)
        if not self.discord_media.origins.allows(url):
            return False
        return await _still_served(self.discord_media.session, url, allow_redirects=False)


@asynccontextmanager
async def refetch_files(
    sources: Sequence[Source | Unavailable],
    *,
    fetchers: Fetchers,
    max_file_bytes: int,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    job_id: int | None = None,
) -> AsyncIterator[Refetched]:
    """The files of the first place that has all of them, in a temporary folder removed on exit.

    A file over `max_file_bytes` (or over what is left of `max_request_bytes`) is linked instead
    of attached when its link still answers. Nothing found: `found` is False and `reasons` says
    why, place by place.
    """
    with tempfile.TemporaryDirectory(prefix="wan-show-") as folder:
        result = Refetched()
        for source in sources:
            if isinstance(source, Unavailable):
                if source.reason is not None:
                    result.reasons.append(source.reason)
                continue
            attempt = Path(folder) / source.origin.value
            attempt.mkdir()
            fetched = await _fetch_all(source, attempt, fetchers=fetchers, max_file_bytes=max_file_bytes,
                                       max_request_bytes=max_request_bytes)
            if fetched is not None:
                result.files, result.linked = fetched
                result.origin = source.origin
                log.info("Job %s: %d file(s) fetched again from the %s, %d linked", job_id,
                         len(result.files), source.origin.value, len(result.linked))
                break
            log.info("Job %s: the %s no longer has every file", job_id, source.origin.value)
            result.reasons.append(Message(f"history.gone_{source.origin.value}"))
        yield result


async def _fetch_all(
    source: Source, folder: Path, *, fetchers: Fetchers, max_file_bytes: int, max_request_bytes: int,
) -> tuple[list[FetchedFile], list[LinkedFile]] | None:
    """Every file of one place, downloaded or linked; None as soon as one is gone."""
    files: list[FetchedFile] = []
    linked: list[LinkedFile] = []
    room = max_request_bytes
    for index, remote in enumerate(source.files):
        cap = min(max_file_bytes, room)
        # The local name is ours (an index), never the remote one: no path tricks.
        path = folder / f"file-{index + 1}"
        if remote.size is None or remote.size <= cap:
            try:
                size = await fetchers.fetch(source.origin, remote.url, path, cap)
            except DownloadError as exc:
                log.info("Download of %s file %d failed: %s", source.origin.value, index + 1, exc)
            else:
                files.append(FetchedFile(path, _safe_filename(remote.filename, index), size))
                room -= size
                continue
        # Too large to attach here (or the download broke): a link still serves, if it answers.
        if not await fetchers.still_served(source.origin, remote.url):
            return None
        linked.append(LinkedFile(remote, source.links_expire_at))
    return files, linked


async def _still_served(session: aiohttp.ClientSession, url: str, *, allow_redirects: bool) -> bool:
    try:
        async with session.get(url, headers={"User-Agent": USER_AGENT}, timeout=PROBE_TIMEOUT,
                               allow_redirects=allow_redirects) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def _links_expire_at(files: Sequence[RemoteFile]) -> datetime | None:
    """When the first of these Discord links expires, if they say."""
    expiries = [expiry for file in files if (expiry := _signed_link_expiry(file.url)) is not None]
    return min(expiries, default=None)


def _signed_link_expiry(url: str) -> datetime | None:
    """Discord CDN links end in `?ex=<hex Unix seconds>&is=...&hm=...`."""
    values = parse_qs(urlsplit(url).query).get("ex")
    try:
        return from_millis(int(values[0], 16) * 1000) if values else None
    except ValueError:
        return None


def _name_from_url(url: str, default: str) -> str:
    name = PurePosixPath(urlsplit(url).path).name
    return name if "." in name else default


def _safe_filename(name: str, index: int) -> str:
    """The upload's name: the recorded one without any folder part, else a plain one."""
    base = PurePosixPath(name.replace("\\", "/")).name.strip()
    return base or f"file-{index + 1}"
