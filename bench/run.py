"""One benchmark run: fresh fakes, a fresh database, the bot process(es), the burst, the figures.
With several processes each runs one gateway shard of the same bot on one PostgreSQL database;
the kill run SIGKILLs one of them mid-burst and times how long its jobs take to be finished by the
others."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.burst import FIRST_USER_ID, Fired, animate_payload, fire_burst, first_frame, wait_until_all_end
from bench.figures import LEASED_STATES, BigVideo, KillFigures, ProcessFigures, RunFigures, collect, lease_pid
from bench.process import BotProcess
from bench.store import BotDatabase, Store
from bench.world import Scenario, World
from tests.fakes.ports import free_port

BOT_MODULE = "bot"
BASELINE_MODULE = "bench.naive_bot"
# Generous: the slowest task ends at video_estimate x 1.3; the rest is start-up and delivery.
END_TIMEOUT_MARGIN = 180.0
IDLE_SECONDS = 3.0  # how long the connected, idle bot's CPU is watched before anything is asked
# The kill run's lease: a killed process's jobs wait at most this long before another takes them.
KILL_LEASE_SECONDS = 10.0
_KILL_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class Mode:
    """How one run differs from the others."""

    label: str
    module: str = BOT_MODULE
    callbacks: bool = False
    processes: int = 1
    kill: bool = False  # SIGKILL one process once jobs are generating (processes > 1)


async def run_mode(mode: Mode, scenario: Scenario, workdir: Path, store: Store, *, small_video: Path,
                   big_video: Path | None = None) -> RunFigures:
    folder = workdir / mode.label
    folder.mkdir(parents=True, exist_ok=True)
    world = World(scenario, folder, small_video, shards=mode.processes)
    await world.start()
    database = await store.fresh(folder)
    lease_seconds = KILL_LEASE_SECONDS if mode.kill else None
    bots: list[BotProcess] = []
    try:
        for shard in range(mode.processes):
            shard_of = shard if mode.processes > 1 else None
            env = world.bot_env(database, http_port=free_port(), callbacks=mode.callbacks, shard=shard_of,
                                lease_seconds=lease_seconds)
            bots.append(await BotProcess.start(mode.module, env, folder,
                                               "bot" if mode.processes == 1 else f"shard-{shard}"))
        try:
            await world.wait_until_connected(timeout=60)
        except (TimeoutError, AssertionError):
            tails = "\n".join(f"{bot.log_path.name}:\n{bot.log_tail()}" for bot in bots)
            raise RuntimeError(f"the bot did not connect; its log ends with:\n{tails}") from None
        await asyncio.sleep(1.0)  # let start-up settle, so it is not counted as the burst's work
        idle_before = [bot.cpu_seconds() for bot in bots]
        await asyncio.sleep(IDLE_SECONDS)
        idle_rates = [(bot.cpu_seconds() - before) / IDLE_SECONDS
                      for bot, before in zip(bots, idle_before, strict=True)]
        measured_big = None
        if big_video is not None:
            measured_big = await deliver_big_video(world, bots, database, big_video)
        cpu_before = []
        for bot in bots:
            bot.reset_peak()
            bot.peak_rss = bot.rss()
            cpu_before.append(bot.cpu_seconds())
        server_cpu_before = store.server_cpu_seconds(database)
        fired = await fire_burst(world)
        at_kill: dict[int, ProcessFigures] = {}
        kill, killed_at, watching = None, None, None
        if mode.kill:
            kill, killed_at, victim_pid = await kill_one(bots, database, fired, lease_seconds or 0,
                                                         cpu_before, at_kill)
            watching = asyncio.create_task(watch_takeover(database, kill, victim_pid, killed_at))
        timeout = scenario.burst_seconds + scenario.video_estimate * 1.5 + END_TIMEOUT_MARGIN
        problems = await wait_until_all_end(database, fired, world, timeout)
        if watching is not None:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        server_cpu_after = store.server_cpu_seconds(database)
        figures = await collect(mode.label, world, database, fired, kill=kill, killed_at=killed_at)
        figures.store = store.kind
        figures.problems[:0] = problems
        figures.processes = [at_kill.get(index) or process_figures(bot, len(bots), index, cpu_before[index])
                             for index, bot in enumerate(bots)]
        for process, rate in zip(figures.processes, idle_rates, strict=True):
            process.idle_cpu_rate = rate
        if server_cpu_before is not None and server_cpu_after is not None:
            figures.server_cpu_burst = server_cpu_after - server_cpu_before
        figures.wall = fired.finished - fired.started
        figures.big_video = measured_big
        return figures
    finally:
        for bot in bots:
            code = await bot.stop()
            if code not in (0, -15) and not (mode.kill and code == -9):
                print(f"[{mode.label}] {bot.log_path.stem} exited with {code}; log tail:\n{bot.log_tail()}")
        await asyncio.to_thread(database.close)
        await world.close()


def process_figures(bot: BotProcess, count: int, index: int, cpu_before: float, *,
                    killed: bool = False) -> ProcessFigures:
    """A live process's figures now."""
    cpu = bot.cpu_seconds()
    return ProcessFigures(name="bot" if count == 1 else f"shard {index}", peak_rss=max(bot.peak_rss, bot.peak()),
                          cpu_burst=cpu - cpu_before, cpu_total=cpu, killed=killed)


async def kill_one(bots: list[BotProcess], database: BotDatabase, fired: Fired,
                   lease_seconds: float, cpu_before: list[float],
                   at_kill: dict[int, ProcessFigures]) -> tuple[KillFigures, float, int]:
    """Once every command of the burst has its job (so none is left unanswered on the dead
    shard) and jobs are generating, SIGKILL the process holding the most of them (which process
    claims a job is the shared line's choice). Its figures up to then go in `at_kill`."""
    deadline = time.monotonic() + _KILL_WAIT_SECONDS
    while True:
        rows = await asyncio.to_thread(database.rows, "SELECT interaction_id, state, lease_owner FROM jobs")
        rows = [row for row in rows if row["interaction_id"] in fired.interactions]
        generating = [lease_pid(row["lease_owner"]) for row in rows if row["state"] == "running"]
        if len(rows) == len(fired.interactions) and generating:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no job was generating {_KILL_WAIT_SECONDS:.0f} s after the burst")
        await asyncio.sleep(0.2)
    held = {index: generating.count(bot.pid) for index, bot in enumerate(bots)}
    victim = max(held, key=held.__getitem__)
    bot = bots[victim]
    at_kill[victim] = process_figures(bot, len(bots), victim, cpu_before[victim], killed=True)
    await bot.kill()
    killed_at = time.monotonic()
    # What it held at the kill: nothing has moved since, as no other process may take a lease
    # over before it lapses (at least two thirds of LEASE_SECONDS after its last renewal).
    rows = await asyncio.to_thread(database.rows, "SELECT id, state, lease_owner FROM jobs ORDER BY id")
    orphans = [row["id"] for row in rows
               if row["state"] in LEASED_STATES and lease_pid(row["lease_owner"]) == bot.pid]
    print(f"  killed shard {victim} (pid {bot.pid}) holding {len(orphans)} job(s), "
          f"{held[victim]} of them generating; LEASE_SECONDS={lease_seconds:g}", flush=True)
    return KillFigures(lease_seconds=lease_seconds, victim=f"shard {victim}", orphans=orphans), killed_at, bot.pid


async def watch_takeover(database: BotDatabase, kill: KillFigures, victim_pid: int, killed_at: float) -> None:
    """Note when none of the killed process's jobs is still under its lease (each was taken over
    by another process, or ended), looking every 0.2 s."""
    orphans = set(kill.orphans)
    while True:
        rows = await asyncio.to_thread(database.rows, "SELECT id, state, lease_owner FROM jobs")
        if not any(row["id"] in orphans and row["state"] in LEASED_STATES
                   and lease_pid(row["lease_owner"]) == victim_pid for row in rows):
            kill.last_taken_over = time.monotonic() - killed_at
            return
        await asyncio.sleep(0.2)


async def deliver_big_video(world: World, bots: list[BotProcess], database: BotDatabase, video: Path) -> BigVideo:
    """One /animate whose result is `video`, on an otherwise idle bot: how much its resident memory
    rises while it downloads, checks, re-encodes (ffmpeg, another process) and uploads it. With
    several processes, the one whose memory rose most (the one that took the job)."""
    evolink = world.evolink
    saved = (evolink.video_result, evolink.video_seconds, evolink.video_estimate)
    evolink.video_result, evolink.video_seconds, evolink.video_estimate = video, 3, 3
    try:
        rss_before = [bot.rss() for bot in bots]
        for bot in bots:
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
        assert record.original_message_id is not None
        message = world.discord.messages[record.original_message_id]
        peaks = [bot.peak() for bot in bots]
        rose_most = max(range(len(bots)), key=lambda index: peaks[index] - rss_before[index])
        return BigVideo(size=video.stat().st_size, uploaded=sum(a.size for a in message.attachments),
                        rss_before=rss_before[rose_most], peak_during=peaks[rose_most], seconds=seconds)
    finally:
        evolink.video_result, evolink.video_seconds, evolink.video_estimate = saved


def scaled(scenario: Scenario, images: int, videos: int | None, edits: int | None = None,
           fusions: int | None = None) -> Scenario:
    """The burst for `images` /imagine jobs: by default one /animate per 20 of them, one /edit per
    10, and one edit in three a fusion of two pictures."""
    edits = images // 10 if edits is None else edits
    return replace(scenario, images=images, videos=images // 20 if videos is None else videos,
                   edits=edits, fusions=edits // 3 if fusions is None else fusions)
