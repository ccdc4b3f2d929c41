"""Issue 5's faults, injected into the fakes while the real bot works: EvoLink storms and refusals,
a channel that refuses the bot, Discord rate limits, overload, and a bot that is shutting down.

Every test checks what the member sees and what they paid: a result once, a charge at most once.
"""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

from bot.jobs.pause import PAUSE_PROBE_SECONDS
from tests.fakes.discord import payload_text
from tests.integration.conftest import (
    CHANNEL_ID,
    LOG_CHANNEL_ID,
    MANAGE_SERVER,
    USER_ID,
    channel,
    on_store,
    start_harness,
)

OTHER_USER = 5006


async def _wait_until_spent(harness, amount: int, user_id: int = USER_ID) -> None:
    for _ in range(200):
        balance = await harness.balance(user_id)
        if balance.held == 0:
            assert balance.spent == amount
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still holding credits: {balance}")


def _polls(harness) -> list:
    return [r for r in harness.evolink.requests if r.path.startswith("/v1/tasks/")]


# -- EvoLink faults ----------------------------------------------------------------------------


async def test_a_storm_of_429s_is_waited_out_as_retry_after_says(harness):
    harness.evolink.fail_next("/v1/tasks/", 429, "rate_limit_exceeded", retry_after="6", times=4)
    interaction = await harness.command("imagine", prompt="a patient heron")
    final = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)
    assert "**✅ Done**" in final.text
    polls = _polls(harness)
    assert len(polls) >= 5
    # Each of the four refusals was followed by a wait of at least Retry-After (the fake and the
    # bot share one clock, so these are the bot's own seconds).
    gaps = [later.time - earlier.time for earlier, later in zip(polls[:4], polls[1:5], strict=True)]
    assert min(gaps) >= 6, gaps
    await _wait_until_spent(harness, 2_000)  # charged once, for the one image


async def test_every_third_poll_failing_with_500_still_delivers(harness):
    harness.evolink.fail_every("/v1/tasks/", 3, 500, "internal_error", "upstream hiccup")
    interaction = await harness.command("imagine", prompt="a stubborn heron", n=2)
    final = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 2, timeout=30)
    assert "**✅ Done**" in final.text
    assert len(harness.evolink_creates()) == 1
    await _wait_until_spent(harness, 4_000)


async def test_a_create_that_times_out_after_evolink_accepted_it_is_not_sent_again(tmp_path):
    async for harness in start_harness(tmp_path, evolink_timeout_seconds=0.5):
        harness.evolink.stall_next_create(3.0)
        interaction = await harness.command("imagine", prompt="a heron in fog")
        final = await harness.wait_for_original(interaction, lambda m: "Failed" in m.text, timeout=30)
        assert "not sent again" in final.text and "2 credits given back" in final.text
        # EvoLink did take it (and will charge the bot's account), but the bot asked only once.
        assert len(harness.evolink.tasks) == 1 and len(harness.evolink_creates()) == 1
        balance = await harness.balance()
        assert (balance.held, balance.spent) == (0, 0)


async def test_an_out_of_credits_account_pauses_new_jobs_tells_everyone_and_resumes(harness):
    moderator = await harness.slash("quota", channel("channel", LOG_CHANNEL_ID), sub="log-channel",
                                    user_id=9009, permissions=MANAGE_SERVER)
    await harness.reply_to(moderator)
    harness.evolink.starting_credits = Decimal(0)  # creates get 402, the balance reads 0

    first = await harness.command("imagine", prompt="a heron at dawn")
    waiting = await harness.wait_for_original(first, lambda m: "Paused" in m.text)
    assert "the bot's EvoLink account is out of credits; moderators were told" in waiting.text
    assert "#1 in line" in waiting.text

    def log_posts(fake) -> list[str]:
        return [m.text for m in fake.messages.values() if m.channel_id == LOG_CHANNEL_ID]

    await harness.discord.wait_for(lambda fake: any("paused" in post for post in log_posts(fake)))

    # Another member's command is refused at once, privately, and costs nothing.
    second = await harness.command("imagine", prompt="a heron at noon", user_id=OTHER_USER)
    assert "New generations are paused" in await harness.private_refusal(second)
    assert (await harness.balance(OTHER_USER)).held == 0
    # Jobs are not failed one by one: one refused create, then nothing until the account works.
    await harness.clock.sleep(PAUSE_PROBE_SECONDS * 2)
    assert len(harness.evolink_creates()) == 1

    harness.evolink.starting_credits = Decimal(10_000)  # the operator tops the account up
    final = await harness.wait_for_original(first, lambda m: len(m.attachments) == 1, timeout=30)
    assert "**✅ Done**" in final.text
    await harness.discord.wait_for(lambda fake: any("resumed" in post for post in log_posts(fake)))
    await _wait_until_spent(harness, 2_000)


async def test_a_key_refused_mid_job_pauses_without_failing_the_running_job(harness):
    interaction = await harness.command("imagine", prompt="a heron with a revoked key")
    await harness.wait_for_original(interaction, lambda m: "Generating" in m.text)
    harness.evolink.fail_next("/v1/tasks/", 401, "invalid_api_key", "key revoked")
    # While paused, newcomers are refused; the job already at EvoLink keeps going.
    await harness.discord.wait_for(lambda fake: harness.bot.services.runner.status().paused is not None)
    late = await harness.command("imagine", prompt="a late heron", user_id=OTHER_USER)
    assert "the bot's EvoLink API key was refused" in await harness.private_refusal(late)

    final = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)
    assert "**✅ Done**" in final.text
    await _wait_until_spent(harness, 2_000)
    await harness.discord.wait_for(lambda fake: harness.bot.services.runner.status().paused is None,
                                   timeout=30)


# -- Discord faults ----------------------------------------------------------------------------


async def test_without_attach_files_the_member_is_told_and_gets_the_result_by_dm(harness):
    interaction = await harness.command("imagine", prompt="a heron, privately")
    message = await harness.wait_until_generating(interaction)
    # The token dies (edits move to the bot token) in a channel where the bot may not upload.
    harness.discord.expire_token(harness.record(interaction).token)
    harness.discord.deny_permissions(CHANNEL_ID, "ATTACH_FILES")

    await harness.discord.wait_for(lambda fake: any(m.attachments for m in fake.dm_messages(USER_ID)),
                                   timeout=30)
    [dm] = harness.discord.dm_messages(USER_ID)
    assert "**Attach Files**" in dm.text and "**✅ Done**" in dm.text
    assert [a.filename for a in dm.attachments] == ["wan-1-1.png"]  # the first job of a fresh database
    assert "**Attach Files**" in message.text and "sent the result to you by DM" in message.text
    assert message.attachments == []
    await _wait_until_spent(harness, 2_000)  # settled once the DM went out


async def test_when_dms_are_closed_too_the_job_fails_with_the_reason_and_is_refunded(harness):
    interaction = await harness.command("imagine", prompt="a heron nobody sees")
    message = await harness.wait_until_generating(interaction)
    harness.discord.expire_token(harness.record(interaction).token)
    harness.discord.deny_permissions(CHANNEL_ID, "ATTACH_FILES")
    harness.discord.refuse_dms(USER_ID)

    await harness.discord.wait_for(lambda fake: "Failed" in message.text, timeout=30)
    assert "**Attach Files**" in message.text and "DMs are closed" in message.text
    balance = await harness.balance()
    assert (balance.spent, balance.held) == (0, 0)


async def test_rate_limited_progress_edits_back_off_and_the_result_still_arrives(harness):
    limited = {"message": "You are being rate limited.", "retry_after": 0.3, "global": False}
    harness.discord.fail_next("PATCH", r"/messages/@original$", 429, limited, times=3)
    interaction = await harness.command("imagine", prompt="a heron in a hurry")
    final = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)
    assert "**✅ Done**" in final.text
    token = harness.record(interaction).token
    edits = [r for r in harness.discord.requests if token in r.path and r.method == "PATCH"]
    assert sum(r.status == 429 for r in edits) == 3
    # Never more than one edit per 3 s of the bot's clock (20x faster than the wall clock).
    applied = [when for when, _ in final.edits]
    gaps = [(later - earlier) * 20 for earlier, later in zip(applied, applied[1:], strict=False)]
    assert all(gap >= 2.9 for gap in gaps), gaps


# -- overload: the fair line ---------------------------------------------------------------------


async def test_one_heavy_member_cannot_starve_another(tmp_path, database_target):
    async for harness in start_harness(tmp_path, speed=60, max_jobs_in_flight=1,
                                       default_max_concurrent_jobs=20, default_daily_credits=100,
                                       **on_store(database_target)):
        heavy = [await harness.command("imagine", prompt=f"heavy fox {index}") for index in range(1, 11)]
        await harness.wait_for_original(heavy[-1], lambda m: "in line" in m.text)
        light = await harness.command("imagine", prompt="light fox", user_id=OTHER_USER)
        await harness.wait_for_original(light, lambda m: len(m.attachments) == 1, timeout=60)
        for interaction in heavy:
            await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=60)

        prompts = [r.json["prompt"] for r in harness.evolink_creates()]
        assert prompts.index("light fox") < prompts.index("heavy fox 3"), prompts
        # The last heavy job saw its place in line count down to the front. It went back one
        # place at most once: when the light member's job was put ahead of it. (Edits are
        # throttled, so some places in between may never have been shown.)
        last = harness.original(heavy[-1])
        places = [int(found) for _, data in last.edits
                  for found in re.findall(r"#(\d+) in line", payload_text(data))]
        rises = [later - earlier for earlier, later in zip(places, places[1:], strict=False) if later > earlier]
        assert places and rises in ([], [1]) and places[-1] <= 2, places
        await _wait_until_spent(harness, 20_000)


# -- shutdown ----------------------------------------------------------------------------------


async def test_a_command_during_shutdown_is_refused_clearly_and_charges_nothing(harness):
    harness.bot.shutting_down = True  # what WanBot.close sets first
    interaction = await harness.command("imagine", prompt="a late heron")
    assert "The bot is restarting" in await harness.private_refusal(interaction)
    assert harness.evolink_creates() == [] and (await harness.balance()).held == 0
    harness.bot.shutting_down = False
