"""Streamed downloads with a size cap: a file is never held whole in memory."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot import USER_AGENT

CHUNK_BYTES = 64 * 1024


class DownloadError(Exception):
    """A file could not be fetched, or was not what it claimed to be."""


async def download_to_file(
    session: aiohttp.ClientSession,
    url: str,
    destination: Path,
    *,
    max_bytes: int,
    timeout: aiohttp.ClientTimeout,
) -> int:
    """Stream `url` into `destination` (never whole in memory); returns the byte count.

    The bytes go to a `.part` file renamed at the end, so `destination` exists only when whole:
    a job resumed after a crash can trust a file it finds there.
    Result links are public CDN URLs: no API key is sent, only an honest User-Agent.
    """
    try:
        async with session.get(url, headers={"User-Agent": USER_AGENT}, timeout=timeout) as response:
            return await stream_to_file(response, destination, max_bytes=max_bytes)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DownloadError(f"result download failed: {type(exc).__name__}") from exc


async def stream_to_file(response: aiohttp.ClientResponse, destination: Path, *, max_bytes: int) -> int:
    """Write a 200 answer's body to `destination` through a `.part` file, at most `max_bytes`."""
    if response.status != 200:
        raise DownloadError(f"result download answered HTTP {response.status}")
    if response.content_length is not None and response.content_length > max_bytes:
        raise DownloadError(f"result is {response.content_length} bytes, over the cap")
    partial = destination.with_name(destination.name + ".part")
    written = 0
    with partial.open("wb") as file:
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            written += len(chunk)
            if written > max_bytes:
                raise DownloadError(f"result is over the cap of {max_bytes} bytes")
            file.write(chunk)
    partial.replace(destination)
    return written
