"""The world the bot runs in during a benchmark: fake Discord and fake EvoLink on loopback, in
the benchmark's process, and the settings that point a bot process at them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bot.evolink.fake import FakeEvoLink
from tests.fakes.discord import FakeChannel, FakeDiscord, FakeGuild

BOT_TOKEN = "MTIz.bench-bot-token.xyz"
EVOLINK_KEY = "sk-bench-evolink-key"
GUILD_ID = 7100
FIRST_CHANNEL_ID = 7200
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Scenario:
    """One burst: who asks for what, and how long EvoLink takes."""

    images: int = 1000
    videos: int = 50
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
        return self.images + self.videos


class World:
    def __init__(self, scenario: Scenario, workdir: Path, video_result: Path) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.channel_ids = [FIRST_CHANNEL_ID + i for i in range(scenario.channels)]
        self.discord = FakeDiscord(
            guilds=[FakeGuild(id=GUILD_ID, name="Bench server", member_count=scenario.users + 1,
                              channels=[FakeChannel(cid, name=f"gen-{i}")
                                        for i, cid in enumerate(self.channel_ids)])],
            rate_limits=True,
        )
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
        self.evolink_url = await self.evolink.start()
        await self.discord.start()

    async def close(self) -> None:
        await self.discord.close()
        await self.evolink.close()

    def bot_env(self, database: Path, *, http_port: int, callbacks: bool) -> dict[str, str]:
        """The bot's settings, as environment variables (how an operator sets them)."""
        env = {key: value for key, value in os.environ.items()
               if key not in ("DISCORD_TOKEN", "EVOLINK_API_KEY", "PUBLIC_BASE_URL")}
        env.update(
            DISCORD_TOKEN=BOT_TOKEN, DISCORD_API_BASE_URL=self.discord.api_base,
            EVOLINK_API_KEY=EVOLINK_KEY, EVOLINK_BASE_URL=self.evolink_url,
            EVOLINK_FILES_BASE_URL=self.evolink_url,
            DATABASE_PATH=str(database), LOG_LEVEL="INFO", PYTHONPATH=str(REPO),
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
