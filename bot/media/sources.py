"""Where members' pictures may be fetched from: Discord's CDN and media proxy, and nothing else.

A picture a member points the bot at (an upload, a link preview, a result's attachment) is a URL
a stranger influences. Fetching any URL would make the bot a scanner of whatever it can reach, so
a picture is fetched only from the configured Discord media origins (`cdn.discordapp.com`,
`media.discordapp.net`, `images-ext-*.discordapp.net`: a link preview's `proxy_url` is Discord's
cached copy there), redirects are followed only to those origins, and a host name is only
connected to at a public address (a resolver that drops private, loopback and link-local answers). An origin configured as an IP
literal is the operator's explicit choice (a test server), used as it is.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from bot import USER_AGENT
from bot.media.downloads import DownloadError, stream_to_file
from bot.media.limits import MediaLimits

# Attachments live on the CDN (and its media proxy); a link preview's cached copy on the media
# proxy or on the external-image proxies.
DISCORD_MEDIA_BASE_URLS = ("https://cdn.discordapp.com", "https://media.discordapp.net",
                           "https://images-ext-1.discordapp.net", "https://images-ext-2.discordapp.net")
MAX_REDIRECTS = 3
_DEFAULT_PORTS = {"http": 80, "https": 443}


class NotDiscordMedia(DownloadError):
    """The URL (or a redirect) leads somewhere other than Discord's media hosts."""


def _origin(url: str) -> tuple[str, str, int] | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:  # a port that is not a number
        return None
    return scheme, parts.hostname.lower().rstrip("."), port


class MediaOrigins:
    """The scheme, host and port pairs a picture may come from."""

    def __init__(self, base_urls: Iterable[str] = DISCORD_MEDIA_BASE_URLS) -> None:
        origins = {_origin(url) for url in base_urls}
        origins.discard(None)
        self._origins: frozenset[tuple[str, str, int]] = frozenset(origins)  # type: ignore[arg-type]

    def allows(self, url: str) -> bool:
        return _origin(url) in self._origins


def is_public_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_global
    except ValueError:
        return False


class PublicAddressResolver(AbstractResolver):
    """DNS answers for host names, without the private, loopback, link-local and other non-public
    addresses: a name that only points inside the network cannot be connected to."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = [answer for answer in await self._resolver.resolve(host, port, family)
                   if is_public_address(answer["host"])]
        if not answers:
            raise OSError(f"{host} resolves to no public address")
        return answers

    async def close(self) -> None:
        await self._resolver.close()


def media_session() -> aiohttp.ClientSession:
    """The session members' pictures are fetched with: public addresses only."""
    connector = aiohttp.TCPConnector(resolver=PublicAddressResolver())
    return aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT})


async def fetch_discord_media(
    session: aiohttp.ClientSession,
    url: str,
    destination: Path,
    *,
    origins: MediaOrigins,
    max_bytes: int,
    timeout: aiohttp.ClientTimeout,
) -> int:
    """Stream a picture from Discord's media hosts into `destination`; returns the byte count.
    Raises NotDiscordMedia for any other host (also as a redirect's target), DownloadError when
    the fetch fails. Redirects are followed by hand, each checked, at most MAX_REDIRECTS."""
    for _ in range(MAX_REDIRECTS + 1):
        if not origins.allows(url):
            raise NotDiscordMedia("the URL is not on Discord's media hosts")
        try:
            async with session.get(url, timeout=timeout, allow_redirects=False) as response:
                if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                    url = urljoin(url, response.headers["Location"])
                    continue
                return await stream_to_file(response, destination, max_bytes=max_bytes)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise DownloadError(f"download failed: {type(exc).__name__}") from exc
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects")


@dataclass(frozen=True)
class DiscordMedia:
    """Fetching files from Discord's media hosts: members' pictures, and a finished job's files
    read back for /show. Each download waits for a download slot of the guild it is for."""

    session: aiohttp.ClientSession  # see media_session(): public addresses only
    origins: MediaOrigins
    limits: MediaLimits

    async def fetch(self, url: str, destination: Path, *, guild_id: int, max_bytes: int,
                    timeout: aiohttp.ClientTimeout) -> int:
        async with self.limits.downloads.slot(guild_id):
            return await fetch_discord_media(self.session, url, destination, origins=self.origins,
                                             max_bytes=max_bytes, timeout=timeout)
