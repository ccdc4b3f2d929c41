"""Two bots (as two processes would) on one PostgreSQL, each running one of two shards: what one
of them learns reaches the other through the database. An EvoLink callback that arrives at the
process not working on its job still wakes the job; a pause (EvoLink refused the account) started
by one process pauses the other too, and both resume together; the two take turns at IDENTIFY in a
shared bucket.
"""

from __future__ import annotations

from decimal import Decimal

from bot.jobs.pause import PAUSE_PROBE_SECONDS
from tests.fakes.ports import free_port
from tests.integration.test_shards import (
    IDENTIFY_INTERVAL,
    SHARD_0_CHANNEL,
    SHARD_0_GUILD,
    SHARD_1_CHANNEL,
    SHARD_1_GUILD,
    fakes,
    imagine,
)

IMAGE_SECONDS = 60  # of clock time: the safety-net poll of callback mode is due at 1.5 x this


async def test_a_callback_that_reaches_the_other_process_wakes_the_job_where_it_runs(tmp_path, postgres_url):
    first_port, second_port = free_port(), free_port()
    async with fakes(tmp_path, shard_count=2, max_concurrency=2) as f:
        f.evolink.image_seconds = f.evolink.image_estimate = IMAGE_SECONDS
        # Each process gives EvoLink the other's address: whichever of them claims the job, its
        # callback arrives at the process that is not watching it (as behind a load balancer).
        first_settings = f.settings("first", shard_count=2, shard_ids="0", database_url=postgres_url,
                                    http_port=first_port, public_base_url=f"http://127.0.0.1:{second_port}")
        second_settings = f.settings("second", shard_count=2, shard_ids="1", database_url=postgres_url,
                                     http_port=second_port, public_base_url=f"http://127.0.0.1:{first_port}")
        async with f.running(first_settings) as first, f.running(second_settings):
            await f.discord.wait_until_shards_identified({0, 1}, timeout=30)
            interaction = await imagine(f.discord, SHARD_0_GUILD, SHARD_0_CHANNEL, "a heron woken from afar")
            final = await first.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=60)
            assert "a heron woken from afar" in final.embeds[0]["title"]

            [task] = f.evolink.tasks.values()
            [callback] = f.evolink.callbacks
            assert callback.answer == 204  # the other process knew the job, and passed the word on
            reads = [r for r in f.evolink.requests if r.method == "GET" and r.path == f"/v1/tasks/{task.id}"]
            # Read once, right after the callback: not at the safety-net poll (1.5 estimates in).
            assert len(reads) == 1
            assert reads[0].time - task.started_at < 1.25 * IMAGE_SECONDS


async def test_a_pause_started_by_one_process_pauses_the_other_and_both_resume(tmp_path, postgres_url):
    async with fakes(tmp_path, shard_count=2, max_concurrency=2) as f:
        f.evolink.starting_credits = Decimal(0)  # creates get 402: the account is out of credits
        async with f.running(f.settings("first", shard_count=2, shard_ids="0", database_url=postgres_url)) as first, \
                f.running(f.settings("second", shard_count=2, shard_ids="1", database_url=postgres_url)) as second:
            await f.discord.wait_until_shards_identified({0, 1}, timeout=30)
            waiting = await imagine(f.discord, SHARD_0_GUILD, SHARD_0_CHANNEL, "a heron at dawn")
            await first.wait_for_original(waiting, lambda m: "Paused" in m.text, timeout=30)

            # The other process, which never met the refusal, pauses too: its members are told.
            await f.discord.wait_for(lambda _: second.bot.services.runner.status().paused is not None, timeout=30)
            refused = await imagine(f.discord, SHARD_1_GUILD, SHARD_1_CHANNEL, "a heron at noon")
            assert "New generations are paused" in await second.private_refusal(refused)
            assert len([r for r in f.evolink.requests if r.method == "POST"]) == 1  # nothing more was tried

            f.evolink.starting_credits = Decimal(10_000)  # the operator tops the account up
            await first.clock.sleep(PAUSE_PROBE_SECONDS)
            final = await first.wait_for_original(waiting, lambda m: len(m.attachments) == 1, timeout=30)
            assert "**✅ Done**" in final.text
            await f.discord.wait_for(lambda _: all(bot.bot.services.runner.status().paused is None
                                                   for bot in (first, second)), timeout=30)
            later = await imagine(f.discord, SHARD_1_GUILD, SHARD_1_CHANNEL, "a heron at dusk")
            await second.wait_for_original(later, lambda m: len(m.attachments) == 1, timeout=30)


async def test_two_processes_sharing_an_identify_bucket_take_turns(tmp_path, postgres_url):
    """max_concurrency 1: both shards are in bucket 0, so their IDENTIFYs must come 5 s apart,
    though each process runs one shard and knows nothing of the other but the database."""
    async with fakes(tmp_path, shard_count=2, max_concurrency=1) as f:
        async with f.running(f.settings("first", shard_count=2, shard_ids="0", database_url=postgres_url)), \
                f.running(f.settings("second", shard_count=2, shard_ids="1", database_url=postgres_url)):
            await f.discord.wait_until_shards_identified({0, 1}, timeout=60)
            accepted = sorted(record.time for record in f.discord.identifies if record.accepted)
            assert [record.accepted for record in f.discord.identifies] == [True, True]
            assert accepted[1] - accepted[0] >= IDENTIFY_INTERVAL
