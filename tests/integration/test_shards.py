"""Shards per process, with the real bot against one fake Discord: which guilds each process gets
and answers, where it connects, how far apart its IDENTIFYs arrive, and what /healthz says.

A guild belongs to shard (guild_id >> 22) % shard_count, and the fake dispatches its events (its
interactions included) only on that shard's connection, as Discord does. The fake enforces
Discord's IDENTIFY limit here (one per 5 s per bucket, bucket = shard_id % max_concurrency): an
IDENTIFY too early would be answered with INVALID_SESSION and recorded as refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import discord

from bot.app import WanBot, use_discord_api
from bot.clock import ScaledClock
from bot.config import Settings, load_settings
from bot.evolink.fake import FakeEvoLink
from bot.web import WebServer
from tests.fakes.discord import FakeChannel, FakeDiscord, FakeGuild, slash_command_payload
from tests.integration.conftest import BOT_TOKEN, CLOCK_SPEED, EVOLINK_KEY, USER_ID, Harness

# Discord's rule, counted on the fake's side (when each IDENTIFY arrived).
IDENTIFY_INTERVAL = 5.0

# (id >> 22) % 2 decides the shard of two; with three shards, these are shards 1 and 2.
SHARD_0_GUILD, SHARD_0_CHANNEL = (10 << 22) + 1, (10 << 22) + 2
SHARD_1_GUILD, SHARD_1_CHANNEL = (11 << 22) + 1, (11 << 22) + 2


@dataclass
class Fakes:
    discord: FakeDiscord
    evolink: FakeEvoLink
    clock: ScaledClock
    tmp_path: Path

    def settings(self, name: str, **overrides: object) -> Settings:
        """A process's settings: its own database and web port, the shared fakes."""
        return load_settings(
            None, discord_token=BOT_TOKEN, evolink_api_key=EVOLINK_KEY,
            database_path=self.tmp_path / f"{name}.db",
            evolink_base_url=self.evolink.base_url, evolink_files_base_url=self.evolink.base_url,
            discord_api_base_url=self.discord.api_base, discord_media_base_urls=(self.discord.base_url,),
            **{"http_host": "127.0.0.1", "http_port": 0, **overrides})

    @asynccontextmanager
    async def running(self, settings: Settings) -> AsyncIterator[Harness]:
        """A started bot (not waited for), closed on the way out."""
        bot = WanBot(settings, clock=self.clock)
        task = asyncio.create_task(bot.start(BOT_TOKEN))
        try:
            yield Harness(bot, self.discord, self.evolink, self.clock, settings, task)
        finally:
            await bot.close()
            await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)


@asynccontextmanager
async def fakes(tmp_path, **discord_options: object) -> AsyncIterator[Fakes]:
    clock = ScaledClock(speed=CLOCK_SPEED)
    evolink = FakeEvoLink(clock=clock, api_key=EVOLINK_KEY, image_seconds=30, image_estimate=30)
    await evolink.start()
    fake = FakeDiscord(guilds=[
        FakeGuild(id=SHARD_0_GUILD, name="Shard 0 server", channels=[FakeChannel(SHARD_0_CHANNEL)]),
        FakeGuild(id=SHARD_1_GUILD, name="Shard 1 server", channels=[FakeChannel(SHARD_1_CHANNEL)]),
    ], identify_rate_limit=True, **discord_options)  # type: ignore[arg-type]
    await fake.start()
    previous_base = discord.http.Route.BASE
    use_discord_api(fake.api_base)
    try:
        yield Fakes(fake, evolink, clock, tmp_path)
    finally:
        await fake.close()
        await evolink.close()
        discord.http.Route.BASE = previous_base


async def imagine(fake: FakeDiscord, guild_id: int, channel_id: int, prompt: str) -> int:
    return await fake.send_interaction(slash_command_payload(
        fake, name="imagine", guild_id=guild_id, channel_id=channel_id, user_id=USER_ID,
        options=[{"name": "prompt", "type": 3, "value": prompt}]))


async def health(bot: WanBot) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as client, \
            client.get(f"http://127.0.0.1:{bot.services.web.port}/healthz") as response:
        return response.status, await response.json()


def identify_log(fake: FakeDiscord) -> list[tuple[int, int, bool]]:
    return [(record.shard_id, record.shard_count, record.accepted) for record in fake.identifies]


async def test_two_processes_each_get_and_answer_only_the_guilds_of_their_shard(tmp_path):
    async with fakes(tmp_path, shard_count=2, max_concurrency=2) as f, \
            f.running(f.settings("first", shard_count=2, shard_ids="0")) as first, \
            f.running(f.settings("second", shard_count=2, shard_ids="1")) as second:
        await asyncio.wait_for(asyncio.gather(first.bot.wait_until_ready(), second.bot.wait_until_ready()), 30)

        # Both reached the fake's gateway (the address its GET /gateway/bot gives, not Discord's
        # built-in one): one IDENTIFY each, for its own shard of two, none refused.
        assert sorted(identify_log(f.discord)) == [(0, 2, True), (1, 2, True)]
        assert f.discord.identified_shards() == {0, 1}
        assert [guild.id for guild in first.bot.guilds] == [SHARD_0_GUILD]
        assert [guild.id for guild in second.bot.guilds] == [SHARD_1_GUILD]

        # /imagine in the guild of shard 1 is answered by the second process, and charged there.
        interaction = await imagine(f.discord, SHARD_1_GUILD, SHARD_1_CHANNEL, "a lantern on shard one")
        final = await second.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)
        assert final.embeds[0]["title"] == "a lantern on shard one"
        assert (await second.settled_balance(guild_id=SHARD_1_GUILD)).spent == 2_000  # 2 credits, in milli-credits
        assert len(await second.bot.services.store.recent_for_member(SHARD_1_GUILD, USER_ID)) == 1
        assert await first.bot.services.store.recent_for_member(SHARD_1_GUILD, USER_ID) == []

        # ... and one in the guild of shard 0 by the first.
        interaction = await imagine(f.discord, SHARD_0_GUILD, SHARD_0_CHANNEL, "a kite on shard zero")
        await first.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)
        assert (await first.settled_balance(guild_id=SHARD_0_GUILD)).spent == 2_000
        assert await second.bot.services.store.recent_for_member(SHARD_0_GUILD, USER_ID) == []
        assert len(first.evolink_creates()) == 2  # one EvoLink task per command, none twice

        # Each process's /healthz names its own shard, of two.
        for harness, shard in ((first, 0), (second, 1)):
            status, body = await health(harness.bot)
            assert (status, body["discord"], body["shard_count"]) == (200, "connected", 2)
            assert [(s["id"], s["state"]) for s in body["shards"]] == [(shard, "connected")]


async def test_without_shard_settings_one_process_identifies_every_shard_discord_reports(tmp_path):
    async with fakes(tmp_path, shard_count=2, max_concurrency=2) as f, f.running(f.settings("all")) as bot:
        await asyncio.wait_for(bot.bot.wait_until_ready(), 30)
        assert sorted(identify_log(f.discord)) == [(0, 2, True), (1, 2, True)]
        assert sorted(guild.id for guild in bot.bot.guilds) == [SHARD_0_GUILD, SHARD_1_GUILD]
        # Both shards' guilds are answered by this one process.
        for guild_id, channel_id in ((SHARD_0_GUILD, SHARD_0_CHANNEL), (SHARD_1_GUILD, SHARD_1_CHANNEL)):
            interaction = await imagine(f.discord, guild_id, channel_id, f"a bell in {guild_id}")
            await bot.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)
        status, body = await health(bot.bot)
        assert (status, body["shard_count"]) == (200, 2)
        assert [(s["id"], s["state"]) for s in body["shards"]] == [(0, "connected"), (1, "connected")]


async def test_identifies_of_one_bucket_arrive_at_least_5_s_apart_and_other_buckets_do_not_wait(tmp_path):
    """Three shards, max_concurrency 2: shards 0 and 2 share bucket 0, shard 1 has bucket 1."""
    async with fakes(tmp_path, shard_count=3, max_concurrency=2) as f, f.running(f.settings("paced")):
        await f.discord.wait_until_shards_identified({0, 1, 2}, timeout=30)
        assert identify_log(f.discord) == [(0, 3, True), (1, 3, True), (2, 3, True)], "none refused"
        arrived = {record.shard_id: record.time for record in f.discord.identifies}
        assert arrived[2] - arrived[0] >= IDENTIFY_INTERVAL
        # Shard 1 did not wait out bucket 0's interval (discord.py's own hook would have).
        assert arrived[1] - arrived[0] < IDENTIFY_INTERVAL


async def test_an_invalidated_session_identifies_again_at_the_same_gateway_within_the_limit(tmp_path):
    """discord.py sends a shard whose session was invalidated to its built-in gateway address;
    this bot goes back to the one its GET /gateway/bot gave, and waits for its bucket."""
    async with fakes(tmp_path, shard_count=2, max_concurrency=2) as f, \
            f.running(f.settings("one", shard_count=2, shard_ids="1")) as one:
        await asyncio.wait_for(one.bot.wait_until_ready(), 30)
        await f.discord.drop_connections(resumable=False)  # its RESUME gets INVALID_SESSION
        await f.discord.wait_until_shards_identified({1}, timeout=30)
        assert identify_log(f.discord) == [(1, 2, True), (1, 2, True)]
        assert f.discord.identifies[1].time - f.discord.identifies[0].time >= IDENTIFY_INTERVAL
        interaction = await imagine(f.discord, SHARD_1_GUILD, SHARD_1_CHANNEL, "a compass after a reconnect")
        await one.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)


async def test_healthz_lists_this_process_shards_as_disconnected_until_they_connect(tmp_path):
    async with fakes(tmp_path, shard_count=2, max_concurrency=2) as f, \
            f.running(f.settings("running", shard_count=2, shard_ids="0")) as running:
        await asyncio.wait_for(running.bot.wait_until_ready(), 30)
        services = running.bot.services
        not_started = WanBot(f.settings("idle", shard_count=4, shard_ids="2,3"))
        server = WebServer(bot=not_started, db=services.db, runner=services.runner,
                           callbacks=services.callbacks, host="127.0.0.1", port=0)
        await server.start()
        try:
            async with aiohttp.ClientSession() as client, \
                    client.get(f"http://127.0.0.1:{server.port}/healthz") as response:
                status, body = response.status, await response.json()
        finally:
            await server.stop()
        assert (status, body["status"], body["discord"], body["database"]) == (503, "unhealthy", "disconnected", "ok")
        assert (body["shard_count"], body["shards"]) == (4, [
            {"id": 2, "state": "disconnected", "latency_ms": None},
            {"id": 3, "state": "disconnected", "latency_ms": None}])
