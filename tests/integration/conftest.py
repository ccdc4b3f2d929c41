"""The real bot, wired to a fake Discord and a fake EvoLink over loopback HTTP.

Nothing of the bot is mocked: the interaction payloads go through discord.py's gateway code, every
REST call is HTTP to the fake Discord, every EvoLink call is HTTP to the fake EvoLink. Both the bot
and the fake EvoLink share one ScaledClock, so a 30 s generation takes about 1.5 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import discord
import pytest

from bot.app import WanBot, use_discord_api
from bot.clock import ScaledClock
from bot.config import Settings, load_settings
from bot.evolink.fake import FakeEvoLink
from tests.fakes.discord_api import (
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    slash_command_payload,
)

GUILD_ID = 7000
CHANNEL_ID = 7001
USER_ID = 5005
BOT_TOKEN = "bot-token-for-tests.abc123"
EVOLINK_KEY = "evo-key-for-tests-xyz789"
CLOCK_SPEED = 20


@dataclass
class Harness:
    bot: WanBot
    discord: FakeDiscord
    evolink: FakeEvoLink
    clock: ScaledClock
    settings: Settings

    async def command(self, name: str, user_id: int = USER_ID, guild_id: int | None = GUILD_ID,
                      interaction_id: int | None = None, **options: object) -> int:
        """Send a slash command as a member would; returns the interaction id. An option whose
        value is an attachment payload (FakeDiscord.make_attachment) is sent as an upload."""
        types = {str: 3, int: 4, bool: 5}
        attachments = {key: value for key, value in options.items() if isinstance(value, dict)}
        payload = slash_command_payload(
            self.discord, name=name, guild_id=guild_id,
            channel_id=CHANNEL_ID if guild_id else None, user_id=user_id,
            options=[{"name": key, "type": 11, "value": value["id"]} if key in attachments else
                     {"name": key, "type": types[type(value)], "value": value}
                     for key, value in options.items()],
            resolved={"attachments": {a["id"]: a for a in attachments.values()}} if attachments else None,
        )
        if interaction_id is not None:
            payload["id"] = str(interaction_id)
        return await self.discord.send_interaction(payload)

    async def command_payload(self, payload: dict) -> int:
        """Send a hand-built interaction payload (e.g. a message context menu)."""
        return await self.discord.send_interaction(payload)

    async def post_as_member(self, content: str = "", files: dict[str, bytes] | None = None,
                             user_id: int = USER_ID) -> int:
        return self.discord.post_member_message(CHANNEL_ID, user_id, content, files).id

    def record(self, interaction_id: int):
        return self.discord.interaction_responses[interaction_id]

    def original(self, interaction_id: int):
        message_id = self.record(interaction_id).original_message_id
        return self.discord.messages.get(message_id) if message_id else None

    async def wait_for_original(self, interaction_id: int, predicate, timeout: float = 15.0):
        await self.discord.wait_for(
            lambda fake: (m := self.original(interaction_id)) is not None and predicate(m), timeout
        )
        return self.original(interaction_id)

    def evolink_creates(self) -> list:
        return [r for r in self.evolink.requests if r.method == "POST" and "/generations" in r.path]


async def start_harness(tmp_path, speed: float = CLOCK_SPEED, **setting_overrides: object
                        ) -> AsyncIterator[Harness]:
    clock = ScaledClock(speed=speed, start=datetime.now(UTC))
    evolink = FakeEvoLink(clock=clock, api_key=EVOLINK_KEY, image_seconds=30, image_estimate=30)
    evolink_url = await evolink.start()
    fake_discord = FakeDiscord(
        guilds=[FakeGuild(id=GUILD_ID, name="Test server", channels=[FakeChannel(CHANNEL_ID)])]
    )
    await fake_discord.start()
    settings = load_settings(
        None,
        discord_token=BOT_TOKEN,
        evolink_api_key=EVOLINK_KEY,
        database_path=tmp_path / "bot.db",
        evolink_base_url=evolink_url,
        evolink_files_base_url=evolink_url,
        discord_api_base_url=fake_discord.api_base,
        **setting_overrides,
    )
    previous_base = discord.http.Route.BASE
    use_discord_api(settings.discord_api_base_url)
    bot = WanBot(settings, clock=clock)
    running = asyncio.create_task(bot.start(BOT_TOKEN))
    try:
        await fake_discord.wait_until_identified()
        yield Harness(bot, fake_discord, evolink, clock, settings)
    finally:
        await bot.close()
        await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), 10)
        await fake_discord.close()
        await evolink.close()
        discord.http.Route.BASE = previous_base


@pytest.fixture
async def harness(tmp_path) -> AsyncIterator[Harness]:
    async for running in start_harness(tmp_path):
        yield running

