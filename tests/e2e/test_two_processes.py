"""Two `python -m bot run` processes on one PostgreSQL, each running one of two gateway shards.

The fakes run in this test's process and outlive the bots; each bot is started exactly as an
operator would (DATABASE_URL, SHARD_COUNT, SHARD_IDS), and both start at the same moment on an
empty database (both migrate it). What must hold, whatever happens to one of them:
- every job is delivered once, on its own message, and charged once; no EvoLink task is created
  twice, even when the process working on it is killed or stalls;
- MAX_JOBS_IN_FLIGHT and the bot-wide budget hold across both processes, not per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from bot.evolink.fake import FakeEvoLink
from tests.e2e.processes import REPO, BotProcess
from tests.fakes.discord import FakeChannel, FakeDiscord, FakeGuild, slash_command_payload
from tests.prometheus_text import Scrape

BOT_TOKEN = "MTIz.two-process-test-bot-token.xyz"
EVOLINK_KEY = "sk-two-process-test-evolink-key"
IMAGE_PRICE = 2000  # milli-credits: one image at the default price
IMAGE_SECONDS = 4.0  # how long the fake EvoLink takes per image
LEASE_SECONDS = 3
# Guilds by shard: a guild belongs to shard (guild_id >> 22) % 2. Channels are (guild + 1).
SHARD_GUILDS = {0: [(10 << 22) + 1, (12 << 22) + 1], 1: [(11 << 22) + 1, (13 << 22) + 1]}


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(sql, params).fetchall()


class Cluster:
    """The fakes, one PostgreSQL database, and the bot processes started on them."""

    def __init__(self, tmp_path: Path, database_url: str, *, image_seconds: float = IMAGE_SECONDS,
                 **settings: str) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.evolink = FakeEvoLink(api_key=EVOLINK_KEY, image_seconds=image_seconds,
                                   image_estimate=int(image_seconds))
        guilds = [FakeGuild(id=guild, channels=[FakeChannel(guild + 1)])
                  for shard_guilds in SHARD_GUILDS.values() for guild in shard_guilds]
        self.discord = FakeDiscord(guilds=guilds, shard_count=2, max_concurrency=2)
        self.settings = settings
        self.bots: dict[int, BotProcess] = {}  # by shard
        self.interactions: list[int] = []

    async def __aenter__(self) -> Cluster:
        evolink_url = await self.evolink.start()
        await self.discord.start()
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("DISCORD_TOKEN", "EVOLINK_API_KEY", "DATABASE_PATH")}
        self.env.update(
            DISCORD_TOKEN=BOT_TOKEN, DISCORD_API_BASE_URL=self.discord.api_base,
            EVOLINK_API_KEY=EVOLINK_KEY, EVOLINK_BASE_URL=evolink_url, EVOLINK_FILES_BASE_URL=evolink_url,
            DATABASE_URL=self.database_url, SHARD_COUNT="2", LEASE_SECONDS=str(LEASE_SECONDS),
            LOG_LEVEL="DEBUG", PYTHONPATH=str(REPO), HTTP_PORT="0",
            DISCORD_MEDIA_BASE_URLS=self.discord.base_url,
        )
        self.env.update(self.settings)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for bot in self.bots.values():
            if bot.process.returncode is None:
                bot.resume()  # a paused one must wake to die
                await bot.kill()
        await self.discord.close()
        await self.evolink.close()

    async def start_both(self) -> None:
        """Both shard processes at once, on a database neither has migrated yet."""
        for shard in (0, 1):
            self.bots[shard] = await BotProcess.start({**self.env, "SHARD_IDS": str(shard)}, self.tmp_path,
                                                      f"shard-{shard}")
        await self.discord.wait_until_shards_identified({0, 1}, timeout=60)

    async def imagine(self, guild_id: int, user_id: int, prompt: str) -> int:
        interaction = await self.discord.send_interaction(slash_command_payload(
            self.discord, name="imagine", guild_id=guild_id, channel_id=guild_id + 1, user_id=user_id,
            options=[{"name": "prompt", "type": 3, "value": prompt}]))
        self.interactions.append(interaction)
        return interaction

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        # In a thread: the fakes share this loop, and must keep answering the bots meanwhile.
        return await asyncio.to_thread(query, self.database_url, sql, params)

    async def wait_for_rows(self, sql: str, predicate: Any, timeout: float = 60) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + timeout
        rows: list[tuple[Any, ...]] = []
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.errors.UndefinedTable):  # not migrated yet
                rows = await self.rows(sql)
                if predicate(rows):
                    return rows
            await asyncio.sleep(0.05)
        raise AssertionError(f"never true: {sql} (last {rows})\n{self.discord.summary()}")

    def creates(self) -> list[str]:
        """The prompts EvoLink was asked to generate, one per create call it received."""
        return [r.json["prompt"] for r in self.evolink.requests
                if r.method == "POST" and r.path == "/v1/images/generations"]

    def most_tasks_at_once(self) -> int:
        """The most EvoLink tasks generating at the same moment. Each of them held one of the
        bot's slots at least until it ended, so this never exceeds MAX_JOBS_IN_FLIGHT."""
        tasks = list(self.evolink.tasks.values())
        return max((sum(1 for other in tasks if other.started_at <= task.started_at < other.ends_at)
                    for task in tasks), default=0)

    def images_posted(self) -> Counter[int]:
        """How many image attachments each interaction's reply carries, and any other message
        with images (keyed by its own id): there must be none."""
        replies = {self.discord.interaction_responses[i].original_message_id: i for i in self.interactions}
        posted: Counter[int] = Counter()
        for message in self.discord.messages.values():
            images = [a for a in message.attachments if a.filename.endswith(".png")]
            if images and not message.deleted:
                posted[replies.get(message.id, message.id)] += len(images)
        return posted

    async def web_pages(self, bot: BotProcess) -> tuple[dict[str, Any], str]:
        """A process's /healthz (as JSON) and /metrics (Prometheus' text)."""
        base = f"http://127.0.0.1:{bot.web_port()}"
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{base}/healthz") as response:
                health = await response.json()
            async with client.get(f"{base}/metrics") as response:
                assert response.status == 200
                metrics = await response.text()
        return health, metrics

    def assert_no_secret_in_logs(self) -> None:
        password = psycopg.conninfo.conninfo_to_dict(self.database_url).get("password")
        tokens = [self.discord.interaction_responses[i].token for i in self.interactions]
        for bot in self.bots.values():
            log = bot.log()
            for secret in (BOT_TOKEN, EVOLINK_KEY, password, *tokens):
                assert not secret or secret not in log, f"a secret reached the {bot.log_path.name} log"


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path, database_url: str, *, image_seconds: float = IMAGE_SECONDS,
                  **settings: str) -> AsyncIterator[Cluster]:
    async with Cluster(tmp_path, database_url, image_seconds=image_seconds, **settings) as running:
        yield running


def owner_clause(bot: BotProcess) -> str:
    # A lease's owner is "host:pid:random" (bot/jobs/store.py).
    return f"split_part(lease_owner, ':', 2) = '{bot.pid}'"


async def test_a_burst_survives_killing_one_process_delivered_once_and_charged_once(tmp_path, postgres_url):
    in_flight = 4
    async with cluster(tmp_path, postgres_url, MAX_JOBS_IN_FLIGHT=str(in_flight)) as c:
        await c.start_both()
        # 12 members in four servers, two per shard, each asks for one image at once.
        prompts = {}
        for guilds in SHARD_GUILDS.values():
            for guild in guilds:
                for member in range(3):
                    prompt = f"lantern {guild} {member}"
                    prompts[await c.imagine(guild, 500 + member, prompt)] = prompt

        # Kill a process while every slot generates (nothing half-sent) and jobs still wait in
        # line: the one holding more of the generating jobs (whichever claimed them).
        await c.wait_for_rows(
            "SELECT COUNT(*) FILTER (WHERE state = 'running'), COUNT(*) FILTER (WHERE state = 'submitting'), "
            "COUNT(*) FILTER (WHERE state = 'queued' AND acknowledged_at IS NOT NULL) FROM jobs",
            lambda rows: rows[0][0] == in_flight and rows[0][1] == 0 and rows[0][2] >= 1)
        held = {shard: len(await c.rows(f"SELECT id FROM jobs WHERE state = 'running' AND {owner_clause(bot)}"))
                for shard, bot in c.bots.items()}
        victim = max(held, key=held.__getitem__)
        first, second = c.bots[victim], c.bots[1 - victim]
        orphans = await c.rows(f"SELECT id FROM jobs WHERE state = 'running' AND {owner_clause(first)}")
        await first.kill()

        await c.wait_for_rows("SELECT state, COUNT(*) FROM jobs GROUP BY state",
                              lambda rows: rows == [("done", 12)], timeout=120)

        # Every member's reply carries their one image; no other message carries any.
        assert c.images_posted() == Counter({interaction: 1 for interaction in prompts}), c.discord.summary()
        for interaction, prompt in prompts.items():
            reply = c.discord.messages[c.discord.interaction_responses[interaction].original_message_id]
            assert prompt in (reply.embeds[0]["title"] if reply.embeds else reply.text)
        # EvoLink was asked once per job, never twice for the same one, never beyond the cap.
        assert sorted(c.creates()) == sorted(prompts.values())
        assert c.most_tasks_at_once() <= in_flight
        # Each job reserved once and was charged once, its price.
        ledger = await c.rows("SELECT job_id, kind, amount FROM ledger ORDER BY job_id, id")
        by_job: dict[int, list[tuple[str, int]]] = {}
        for job_id, kind, amount in ledger:
            by_job.setdefault(job_id, []).append((kind, amount))
        assert by_job == {job_id: [("reserve", IMAGE_PRICE), ("settle", IMAGE_PRICE)] for job_id in range(1, 13)}
        assert await c.rows("SELECT COUNT(*) FROM credit_holds") == [(0,)]
        # The survivor took the dead one's generating jobs over and finished them, and says so
        # on /healthz and /metrics.
        assert orphans and all(f"Job {job_id}: taken over in state running" in second.log()
                               for (job_id,) in orphans)
        taken_over = second.log().count("taken over in state")
        health, metrics = await c.web_pages(second)
        assert health["leases"] == {"jobs": [], "taken_over": taken_over}
        assert Scrape.parse(metrics).value("wanbot_lease_takeovers_total") == taken_over
        assert Scrape.parse(metrics).value("wanbot_jobs", kind="image", state="queued") == 0
        assert await second.stop() == 0
        c.assert_no_secret_in_logs()


async def test_a_stalled_process_whose_job_was_taken_over_shows_and_writes_nothing_more(tmp_path, postgres_url):
    # The image takes long enough that both processes are still watching it when the first wakes.
    async with cluster(tmp_path, postgres_url, image_seconds=12) as c:
        await c.start_both()
        first, second = c.bots[0], c.bots[1]
        interaction = await c.imagine(SHARD_GUILDS[0][0], 501, "a lighthouse that stalls")
        await c.wait_for_rows(f"SELECT 1 FROM jobs WHERE id = 1 AND state = 'running' AND {owner_clause(first)}",
                              lambda rows: rows == [(1,)])

        first.pause()  # stalls past its lease (a long pause, a partition): it knows nothing of it
        await c.wait_for_rows(f"SELECT 1 FROM jobs WHERE id = 1 AND state = 'running' AND {owner_clause(second)}",
                              lambda rows: rows == [(1,)])
        edits_before_waking = len(c.discord.requests)
        first.resume()  # wakes mid-generation, still watching a job it no longer holds
        await c.wait_for_rows("SELECT state FROM jobs WHERE id = 1", lambda rows: rows == [("done",)])
        await asyncio.sleep(LEASE_SECONDS)  # time enough for a (wrong) late write or upload

        reply_id = c.discord.interaction_responses[interaction].original_message_id
        assert len([r for r in c.discord.requests if r.method == "PATCH" and r.files]) == 1
        assert c.images_posted() == Counter({interaction: 1})
        assert "a lighthouse that stalls" in c.discord.messages[reply_id].embeds[0]["title"]
        assert "Done" in c.discord.messages[reply_id].text
        assert len(c.creates()) == 1
        assert await c.rows("SELECT kind, amount FROM ledger WHERE job_id = 1 ORDER BY id") == [
            ("reserve", IMAGE_PRICE), ("settle", IMAGE_PRICE)]
        assert "Job 1: taken over in state running" in second.log()
        assert re.search(r"Job 1: [^\n]*stopped working on it", first.log())
        # The woken process showed nothing more: it would have edited with the interaction's
        # token (the process that took over never had it, and edits with the bot token).
        assert [r.route for r in c.discord.requests[edits_before_waking:] if r.path.startswith("/webhooks/")] == []
        assert await first.stop() == 0 and await second.stop() == 0
        c.assert_no_secret_in_logs()


async def test_a_process_stopped_by_sigterm_hands_its_jobs_over_at_once(tmp_path, postgres_url):
    # Leases far longer than the test waits: only a lease given up can be taken this soon.
    async with cluster(tmp_path, postgres_url, image_seconds=6, LEASE_SECONDS="600") as c:
        await c.start_both()
        first, second = c.bots[0], c.bots[1]
        interaction = await c.imagine(SHARD_GUILDS[0][0], 502, "a ferry handed over")
        await c.wait_for_rows(f"SELECT 1 FROM jobs WHERE id = 1 AND state = 'running' AND {owner_clause(first)}",
                              lambda rows: rows == [(1,)])

        assert await first.stop() == 0  # a deploy: SIGTERM
        assert "Gave up the leases of 1 job(s)" in first.log()
        await c.wait_for_rows("SELECT state FROM jobs WHERE id = 1", lambda rows: rows == [("done",)], timeout=60)

        assert "Job 1: taken over in state running" in second.log()
        assert c.images_posted() == Counter({interaction: 1})
        assert len(c.creates()) == 1
        assert await c.rows("SELECT kind, amount FROM ledger WHERE job_id = 1 ORDER BY id") == [
            ("reserve", IMAGE_PRICE), ("settle", IMAGE_PRICE)]
        assert await second.stop() == 0
        c.assert_no_secret_in_logs()


async def test_racing_reservations_from_two_processes_never_overdraw_the_bot_budget(tmp_path, postgres_url):
    fits = 5
    async with cluster(tmp_path, postgres_url, BOT_DAILY_BUDGET=str(fits * IMAGE_PRICE // 1000),
                       MAX_SERVER_CREDITS_PER_DAY="10") as c:
        await c.start_both()
        # Twice what the whole bot may spend today, asked in both shards' servers at once.
        asked = [c.imagine(guild, 600 + member, f"a kite {guild} {member}")
                 for guilds in SHARD_GUILDS.values() for guild in guilds for member in range(3)]
        interactions = await asyncio.gather(*asked)

        def answered(fake: FakeDiscord) -> bool:
            return all(fake.interaction_responses[i].callback_type is not None for i in interactions)

        await c.discord.wait_for(answered, timeout=60)
        await c.wait_for_rows("SELECT COUNT(*) FROM jobs WHERE state NOT IN ('done', 'failed')",
                              lambda rows: rows == [(0,)], timeout=90)
        reserved = await c.rows("SELECT COUNT(*), SUM(amount) FROM ledger WHERE kind = 'reserve'")
        assert reserved == [(fits, fits * IMAGE_PRICE)]
        assert await c.rows("SELECT SUM(amount) FROM ledger WHERE kind = 'settle'") == [(fits * IMAGE_PRICE,)]
        assert len(c.creates()) == fits
        refused = [i for i in interactions
                   if "used its daily budget" in str(c.discord.interaction_responses[i].callback_data)]
        assert len(refused) == len(interactions) - fits
        # Both processes accepted some: the race was between them, not inside one.
        accepted_guilds = {row[0] for row in await c.rows("SELECT guild_id FROM jobs")}
        assert accepted_guilds & set(SHARD_GUILDS[0]) and accepted_guilds & set(SHARD_GUILDS[1])
        c.assert_no_secret_in_logs()


@pytest.fixture(autouse=True)
def _only_loopback(postgres_url):
    assert "@127.0.0.1:" in postgres_url
