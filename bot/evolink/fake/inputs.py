"""How the fake EvoLink reads a task's input picture, as EvoLink does on download: its own uploads,
or a picture fetched from an origin it was told it may reach (`input_origins`); anything else
passes unchecked, so the fake never reaches an address it was not given."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp import web
from PIL import Image
from yarl import URL

from bot.evolink.fake.base import FakeEvoLinkBase
from bot.evolink.fake.models import FakeUpload

log = logging.getLogger("bot.evolink.fake")

# Both models take input pictures of at most 10 MB (EvoLink's docs). A fetch reads one byte more,
# so a larger file is known to be too large without reading all of it.
INPUT_MAX_BYTES = 10 * 1024 * 1024
INPUT_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=15)

Problem = tuple[str, str]  # (code, message) a task fails with
NOT_DOWNLOADED: Problem = ("image_processing_error", "The input image could not be downloaded")
NOT_A_PICTURE: Problem = ("image_processing_error", "The input image format is not supported")


@dataclass(frozen=True)
class InputPicture:
    data: bytes  # at most INPUT_MAX_BYTES + 1 when fetched: longer means too large
    format: str  # Pillow's name: "PNG", "JPEG", ...
    size: tuple[int, int]
    transparent: bool


class Inputs(FakeEvoLinkBase):
    """Reads input pictures for the task routes; each model applies its own rules to them."""

    # Set up by FakeEvoLink.__init__ (server.py); the session by start().
    input_origins: tuple[str, ...]
    _input_session: aiohttp.ClientSession | None

    async def _input_picture(self, request: web.Request, image_url: str) -> InputPicture | Problem | None:
        """The picture an input URL names, decoded; the problem when it cannot be downloaded or
        decoded; None when the fake may not read it (neither its own nor an allowed origin's)."""
        upload = self._own_upload(request, image_url)
        if upload is False:
            return NOT_DOWNLOADED
        if upload is not None:
            data = upload.data
        elif _origin(image_url) in {_origin(base) for base in self.input_origins}:
            fetched = await self._fetch_input(image_url)
            if fetched is None:
                return NOT_DOWNLOADED
            data = fetched
        else:
            return None
        try:
            # Only the header is read: a fetch cut at INPUT_MAX_BYTES + 1 still opens.
            with Image.open(io.BytesIO(data)) as image:
                transparent = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
                return InputPicture(data, image.format or "", image.size, transparent)
        except Exception:  # Pillow raises many types for undecodable data
            return NOT_A_PICTURE

    def _own_upload(self, request: web.Request, image_url: str) -> FakeUpload | Literal[False] | None:
        """The upload an input URL names when the fake hosts it; False for one of its own URLs
        that names nothing; None for anyone else's URL."""
        url = URL(image_url)
        own = URL(self._public_base(request))
        if url.origin() != own.origin() or not url.path.startswith("/uploads/"):
            return None
        return self.uploads.get(url.path.removeprefix("/uploads/")) or False

    async def _fetch_input(self, image_url: str) -> bytes | None:
        """Download an input from an allowed origin: at most INPUT_MAX_BYTES + 1 bytes, redirects
        not followed (they could lead anywhere); None when the download fails."""
        if self._input_session is None:
            raise RuntimeError("start() the fake before it fetches input pictures")
        shown = URL(image_url).with_query(None)  # Discord's links are signed: keep that out of logs
        try:
            async with self._input_session.get(
                    image_url, allow_redirects=False, timeout=INPUT_FETCH_TIMEOUT) as response:
                if not 200 <= response.status < 300:
                    log.debug("input %s answered %s", shown, response.status)
                    return None
                data = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > INPUT_MAX_BYTES:
                        break
                return bytes(data[: INPUT_MAX_BYTES + 1])
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("input %s could not be downloaded: %r", shown, exc)
            return None


def _origin(url: str) -> tuple[str, str | None, int | None]:
    """Scheme, host and port (the default port when none is written), so that
    https://cdn.discordapp.com and https://cdn.discordapp.com:443/x are one origin."""
    parsed = URL(url)
    return parsed.scheme, parsed.host, parsed.port
