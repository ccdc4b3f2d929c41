"""The world the bot runs in during a benchmark: fake Discord and fake EvoLink on loopback, in
the benchmark's process, and the settings that point a bot process (or several, one gateway shard
each) at them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.store import BotDatabase
from bot.evolink.fake import FakeEvoLink
from tests.fakes.discord import FakeChannel, FakeDiscord, FakeGuild

BOT_TOKEN = "MTIz.bench-bot-token.xyz"
EVOLINK_KEY = "sk-bench-evolink-key"
GUILD_ID = 7100
FIRST_CHANNEL_ID = 7200
REPO = Path(__file__).resolve().parents[1]
# Settings of the bot that the benchmark decides, whatever the shell running it has set.
_DECIDED_HERE = ("DISCORD_TOKEN", "EVOLINK_API_KEY", "PUBLIC_BASE_URL", "DATABASE_PATH", "DATABASE_URL",
                 "SHARD_COUNT", "SHARD_IDS", "LEASE_SECONDS")


def shard_guild_id(shard: int, shard_count: int) -> int:
    """A guild that Discord puts on `shard`: a guild's shard is (guild_id >> 22) % shard_count."""
    return ((100 * shard_count + shard) << 22) + GUILD_ID


@dataclass(frozen=True)
class Scenario:
    """One burst: who asks for what, and how long EvoLink takes."""

    images: int = 1000
    videos: int = 50
    edits: int = 100               # /edit jobs, of which `fusions` fuse two pictures
    fusions: int = 33
    users: int = 100
    channels: int = 10
    burst_seconds: float = 10.0    # the commands arrive spread over this long
    image_estimate: int = 20       # EvoLink's estimated_time, shortened from about 30 s
    video_estimate: int = 30       # shortened from about 120 s
    duration_spread: float = 0.3   # each task takes its estimate x uniform(0.7, 1.3)
    progress_curve_spread: float = 0.3
    seed: int = 2026

    @property
    def jobs(self) -> int:
        return self.images + self.videos + self.edits


class World:
    """The fakes. With one shard, one server holds every channel (as in every run before shards);
    with `shards` > 1, one server per shard, the channels dealt round-robin among them."""

    def __init__(self, scenario: Scenario, workdir: Path, video_result: Path, *, shards: int = 1) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.shards = shards
        self.channel_ids = [FIRST_CHANNEL_ID + i for i in range(scenario.channels)]
        guild_ids = [GUILD_ID] if shards == 1 else [shard_guild_id(shard, shards) for shard in range(shards)]
        # Channel i is in server i % len(guild_ids).
        self.guild_of = {cid: guild_ids[i % len(guild_ids)] for i, cid in enumerate(self.channel_ids)}
        guilds = [FakeGuild(id=guild_id, name="Bench server" if shards == 1 else f"Bench server {shard}",
                            member_count=scenario.users + 1,
                            channels=[FakeChannel(cid, name=f"gen-{i}") for i, cid in enumerate(self.channel_ids)
                                      if self.guild_of[cid] == guild_id])
                  for shard, guild_id in enumerate(guild_ids)]
        self.discord = (FakeDiscord(guilds=guilds, rate_limits=True) if shards == 1 else
                        FakeDiscord(guilds=guilds, rate_limits=True, shard_count=shards, max_concurrency=shards))
        self.evolink = FakeEvoLink(
            api_key=EVOLINK_KEY,
            image_seconds=scenario.image_estimate, image_estimate=scenario.image_estimate,
            video_seconds=scenario.video_estimate, video_estimate=scenario.video_estimate,
            duration_spread=scenario.duration_spread,
            progress_curve_spread=scenario.progress_curve_spread, seed=scenario.seed,
        )
        self.evolink.starting_credits = self.evolink.key_credit_limit = 10**9
        self.evolink.video_result = video_result

    async def start(self) -> None:
        await self.discord.start()
        # Like EvoLink, the fake fetches the pictures the bot passes on (first frames, pictures to
        # edit) from the fake Discord's CDN and checks them; an edit's results derive from them.
        self.evolink.input_origins = (self.discord.base_url,)
        self.evolink_url = await self.evolink.start()

    async def close(self) -> None:
        await self.discord.close()
        await self.evolink.close()

    async def wait_until_connected(self, timeout: float) -> None:
        """Until every shard has identified at the fake gateway."""
        if self.shards == 1:
            await self.discord.wait_until_identified(timeout=timeout)
        else:
            await self.discord.wait_until_shards_identified(set(range(self.shards)), timeout=timeout)

    def bot_env(self, database: BotDatabase, *, http_port: int, callbacks: bool, shard: int | None = None,
                lease_seconds: float | None = None) -> dict[str, str]:
        """The bot's settings, as environment variables (how an operator sets them). `shard`: the
        one gateway shard this process runs, of `self.shards`."""
        env = {key: value for key, value in os.environ.items() if key not in _DECIDED_HERE}
        env.update(database.env())
        if shard is not None:
            env.update(SHARD_COUNT=str(self.shards), SHARD_IDS=str(shard))
        if lease_seconds is not None:
            env["LEASE_SECONDS"] = f"{lease_seconds:g}"
        env.update(
            DISCORD_TOKEN=BOT_TOKEN, DISCORD_API_BASE_URL=self.discord.api_base,
            EVOLINK_API_KEY=EVOLINK_KEY, EVOLINK_BASE_URL=self.evolink_url,
            EVOLINK_FILES_BASE_URL=self.evolink_url,
            LOG_LEVEL="INFO", PYTHONPATH=str(REPO),
            HTTP_HOST="127.0.0.1", HTTP_PORT=str(http_port),
            # The burst is the point: every job goes to EvoLink at once, none waits in line.
            MAX_JOBS_IN_FLIGHT="1000", MAX_JOBS_IN_FLIGHT_PER_MEMBER="1000",
            DEFAULT_MAX_CONCURRENT_JOBS="50", DEFAULT_DAILY_CREDITS="1000000",
            MAX_MEMBER_CREDITS_PER_DAY="1000000", MAX_SERVER_CREDITS_PER_DAY="100000000",
            BOT_DAILY_BUDGET="100000000",
            DISCORD_MEDIA_BASE_URLS=self.discord.base_url,  # the fake's CDN serves the pictures
        )
        if callbacks:
            # Loopback over http: the fake EvoLink allows it (the real one wants public HTTPS).
            env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{http_port}"
        return env
