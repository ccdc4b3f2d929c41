"""Members' pictures are fetched from Discord's media hosts only, at public addresses only."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from bot.media.downloads import DownloadError
from bot.media.sources import (
    DISCORD_MEDIA_BASE_URLS,
    MediaOrigins,
    NotDiscordMedia,
    PublicAddressResolver,
    fetch_discord_media,
    is_public_address,
    media_session,
)

TIMEOUT = aiohttp.ClientTimeout(total=10)


def test_only_the_configured_origins_are_allowed():
    origins = MediaOrigins(DISCORD_MEDIA_BASE_URLS)
    assert origins.allows("https://cdn.discordapp.com/attachments/1/2/cat.png?ex=1&is=2&hm=3")
    assert origins.allows("https://media.discordapp.net/attachments/1/2/cat.png?width=400")
    assert origins.allows("https://images-ext-1.discordapp.net/external/abc/https/example.org/x.png")
    assert origins.allows("https://CDN.discordapp.com:443/attachments/1/2/a.png")
    for url in ("http://cdn.discordapp.com/attachments/1/2/cat.png",   # not https
                "https://cdn.discordapp.com:8443/attachments/1/2/cat.png",  # another port
                "https://cdn.discordapp.com.evil.example/a.png",
                "https://evil.example/cdn.discordapp.com/a.png",
                "https://169.254.169.254/latest/meta-data/",
                "file:///etc/passwd", "not a url", "https://cdn.discordapp.com:notaport/a.png"):
        assert not origins.allows(url), url


def test_public_addresses():
    assert is_public_address("162.159.128.233")
    for private in ("127.0.0.1", "10.0.0.7", "192.168.1.1", "169.254.169.254", "::1", "fe80::1%eth0",
                    "100.64.0.1", "0.0.0.0", "localhost"):
        assert not is_public_address(private), private


async def test_a_host_name_that_only_points_inside_the_network_is_not_resolved():
    resolver = PublicAddressResolver()
    try:
        with pytest.raises(OSError, match="no public address"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


@pytest.fixture
async def server():
    """A loopback server standing in for a media host: /pic serves bytes, /hop redirects."""
    async def pic(request: web.Request) -> web.Response:
        return web.Response(body=b"picture-bytes", content_type="image/png")

    async def hop(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": request.query["to"]})

    app = web.Application()
    app.router.add_get("/pic", pic)
    app.router.add_get("/hop", hop)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_redirects_are_followed_only_within_the_origins(server, tmp_path):
    origins = MediaOrigins([server])
    async with media_session() as session:
        size = await fetch_discord_media(session, f"{server}/hop?to=/pic", tmp_path / "a", origins=origins,
                                         max_bytes=1000, timeout=TIMEOUT)
        assert size == len(b"picture-bytes") and (tmp_path / "a").read_bytes() == b"picture-bytes"
        with pytest.raises(NotDiscordMedia):
            await fetch_discord_media(session, f"{server}/hop?to=http://10.0.0.1/admin", tmp_path / "b",
                                      origins=origins, max_bytes=1000, timeout=TIMEOUT)
        with pytest.raises(NotDiscordMedia):
            await fetch_discord_media(session, "http://127.0.0.2:9/pic", tmp_path / "c", origins=origins,
                                      max_bytes=1000, timeout=TIMEOUT)
        assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


async def test_an_origin_named_by_a_host_that_resolves_privately_is_never_connected_to(server, tmp_path):
    # The operator wrote a host name, and DNS says it is inside the network: refused at connect.
    by_name = server.replace("127.0.0.1", "localhost")
    async with media_session() as session:
        with pytest.raises(DownloadError) as failed:
            await fetch_discord_media(session, f"{by_name}/pic", tmp_path / "a", origins=MediaOrigins([by_name]),
                                      max_bytes=1000, timeout=TIMEOUT)
    assert not isinstance(failed.value, NotDiscordMedia)
    assert not (tmp_path / "a").exists()
