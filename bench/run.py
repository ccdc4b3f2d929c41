"""One benchmark run: fresh fakes, a fresh database, the bot process, the burst, the figures."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from bench.burst import FIRST_USER_ID, Fired, animate_payload, fire_burst, first_frame, wait_until_all_end
from bench.figures import BigVideo, RunFigures, collect
from bench.process import BotProcess
from bench.world import Scenario, World
from tests.fakes.ports import free_port

BOT_MODULE = "bot"
BASELINE_MODULE = "bench.naive_bot"
# Generous: the slowest task ends at video_estimate x 1.3; the rest is start-up and delivery.
END_TIMEOUT_MARGIN = 180.0


async def run_mode(label: str, scenario: Scenario, workdir: Path, *, module: str, callbacks: bool,
                   small_video: Path, big_video: Path | None = None) -> RunFigures:
    folder = workdir / label
    folder.mkdir(parents=True, exist_ok=True)
    world = World(scenario, folder, small_video)
    await world.start()
    database = folder / "bot.db"
    bot = await BotProcess.start(module, world.bot_env(database, http_port=free_port(), callbacks=callbacks),
                                 folder, "bot")
    try:
        try:
            await world.discord.wait_until_identified(timeout=60)
        except TimeoutError:
            raise RuntimeError(f"the bot did not connect; its log ends with:\n{bot.log_tail()}") from None
        await asyncio.sleep(1.0)  # let start-up settle, so it is not counted as the burst's work
        measured_big = None
        if big_video is not None:
            measured_big = await deliver_big_video(world, bot, database, big_video)
        bot.reset_peak()
        bot.peak_rss = bot.rss()
        cpu_before = bot.cpu_seconds()
        fired = await fire_burst(world)
        timeout = scenario.burst_seconds + scenario.video_estimate * 1.5 + END_TIMEOUT_MARGIN
        problems = await wait_until_all_end(database, fired, world, timeout)
        figures = collect(label, world, database, fired)
        figures.problems[:0] = problems
        figures.cpu_burst = bot.cpu_seconds() - cpu_before
        figures.cpu_total = bot.cpu_seconds()
        figures.peak_rss = max(bot.peak_rss, bot.peak())
        figures.wall = fired.finished - fired.started
        figures.big_video = measured_big
        return figures
    finally:
        code = await bot.stop()
        await world.close()
        if code not in (0, -15):
            print(f"[{label}] the bot exited with {code}; log tail:\n{bot.log_tail()}")


async def deliver_big_video(world: World, bot: BotProcess, database: Path, video: Path) -> BigVideo:
    """One /animate whose result is `video`, on an otherwise idle bot: how much its resident memory
    rises while it downloads, checks, re-encodes (ffmpeg, another process) and uploads it."""
    evolink = world.evolink
    saved = (evolink.video_result, evolink.video_seconds, evolink.video_estimate)
    evolink.video_result, evolink.video_seconds, evolink.video_estimate = video, 3, 3
    try:
        rss_before = bot.rss()
        bot.reset_peak()
        started = time.monotonic()
        payload = animate_payload(world, -1, FIRST_USER_ID, world.channel_ids[0], first_frame())
        interaction_id = await world.discord.send_interaction(payload)
        fired = Fired(interactions={interaction_id: -1})
        problems = await wait_until_all_end(database, fired, world, timeout=300)
        if problems:
            raise RuntimeError(f"the 90 MB video job did not end: {problems}")
        seconds = time.monotonic() - started
        record = world.discord.interaction_responses[interaction_id]
        message = world.discord.messages[record.original_message_id]
        return BigVideo(size=video.stat().st_size, uploaded=sum(a.size for a in message.attachments),
                        rss_before=rss_before, peak_during=bot.peak(), seconds=seconds)
    finally:
        evolink.video_result, evolink.video_seconds, evolink.video_estimate = saved


def scaled(scenario: Scenario, images: int, videos: int | None) -> Scenario:
    return replace(scenario, images=images, videos=images // 20 if videos is None else videos)
