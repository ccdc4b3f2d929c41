"""/admin status and /admin job as the bot's owner sees them, and what members see when the owner
refunds or redelivers their job: the text of every private reply, the job's message, the credits."""

from __future__ import annotations

import asyncio
import re

from bot.jobs.failures import OPERATOR_REFUND
from bot.jobs.store import JobState
from bot.units import format_credits
from tests.fakes.discord import DEFAULT_OWNER_ID
from tests.integration.conftest import (
    CHANNEL_ID,
    GUILD_ID,
    MANAGE_SERVER,
    USER_ID,
    fields,
    integer,
    on_store,
    start_harness,
    text,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVOLINK_LINE = re.compile(
    r"EvoLink in the last hour: \*\*(\d+)\*\* calls?, \*\*(\d+)\*\* failed \(\d+\.\d%\), "
    r"(\d+) of them rate limited \(429\)"
)


async def as_owner(harness, *options, sub: str) -> str:
    interaction = await harness.slash("admin", *options, sub=sub, user_id=DEFAULT_OWNER_ID)
    reply = await harness.reply_to(interaction, timeout=30)
    assert harness.original(interaction).ephemeral, "the owner's tools answer privately"
    return reply


async def _wait_for_state(harness, job_id: int, state: JobState) -> None:
    for _ in range(400):
        if (await harness.bot.services.store.get(job_id)).state is state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {state}")


def _polls(harness, task_id: str) -> list:
    return [r for r in harness.evolink.requests if r.path == f"/v1/tasks/{task_id}"]


def _all_polls(harness) -> int:
    return sum(r.path.startswith("/v1/tasks/") for r in harness.evolink.requests)


async def _wait_for_polls(harness, count: int) -> None:
    await harness.discord.wait_for(lambda fake: _all_polls(harness) >= count, timeout=30)


async def test_status_shows_the_line_the_oldest_job_and_evolink_errors(tmp_path, database_target):
    # One slot at EvoLink, so the member's second job waits in line behind the first.
    async for harness in start_harness(tmp_path, max_jobs_in_flight=1, **on_store(database_target)):
        first = await harness.command("imagine", prompt="a heron at the front")
        await harness.wait_for_original(first, lambda m: "Generating" in m.text)
        second = await harness.command("imagine", prompt="a heron behind it")
        await harness.wait_for_original(second, lambda m: "in line" in m.text)

        polls_before = _all_polls(harness)
        harness.evolink.fail_next("/v1/tasks/", 500, "internal_error")
        # The failed poll and its retry: by then the failure has been counted.
        await _wait_for_polls(harness, polls_before + 2)

        reply = await as_owner(harness, sub="status")
        lines = reply.split("\n")
        assert lines[0] == "**Bot status**"
        assert lines[1] == ("Jobs: **1** waiting in line · **1** at EvoLink · "
                            "**0** downloading or delivering")
        assert lines[2] == "New submissions: accepted"
        counts = EVOLINK_LINE.fullmatch(lines[3])
        assert counts, lines[3]
        calls, errors, rate_limited = map(int, counts.groups())
        assert errors >= 1 and calls >= errors + 2  # the create and the retried poll succeeded
        assert rate_limited == 0
        assert re.fullmatch(r"Oldest unfinished job: \*\*1\*\* · image · running · created <t:\d+:R> · "
                            r"server Test server \(`7000`\)", lines[4]), lines[4]


async def test_status_with_nothing_running(harness):
    reply = await as_owner(harness, sub="status")
    assert reply == (
        "**Bot status**\n"
        "Jobs: **0** waiting in line · **0** at EvoLink · **0** downloading or delivering\n"
        "New submissions: accepted\n"
        "EvoLink in the last hour: **0** calls, **0** failed (0.0%), 0 of them rate limited (429)\n"
        "Oldest unfinished job: none\n"
        "Operator ceilings per UTC day: each member at most **200** credits in one server, each server at "
        "most **1000**, the whole bot at most **2000** (today: 0 charged, 0 reserved)"
    )


async def test_the_owners_tools_are_refused_to_everyone_else(harness):
    for sub, options in (("status", ()), ("job", (integer("id", 1), text("action", "refund")))):
        interaction = await harness.slash("admin", *options, sub=sub, user_id=USER_ID,
                                          permissions=MANAGE_SERVER)
        assert await harness.reply_to(interaction) == "Only the bot's owner can do this."


async def test_refunding_a_running_job_stops_it_and_gives_the_credits_back(harness):
    interaction = await harness.command("imagine", prompt="a heron the operator stops")
    message = await harness.wait_for_original(interaction, lambda m: "Generating" in m.text)
    assert message.embeds[0]["footer"]["text"] == "job 1", "members can quote the job's id"
    held = (await harness.balance()).held
    assert held > 0
    task_id = (await harness.bot.services.store.get(1)).task_id

    reply = await as_owner(harness, integer("id", 1), text("action", "refund"), sub="job")
    assert reply == (f"Job 1 was stopped (running until now) and marked failed; {format_credits(held)} "
                     f"credits were given back to <@{USER_ID}>. "
                     "Its message now says the operator stopped it.")

    await harness.discord.wait_for(lambda fake: OPERATOR_REFUND.message in message.text, timeout=10)
    assert message.embeds[0]["description"] == f"**❌ Failed**: {OPERATOR_REFUND.message}"
    assert fields(message.embeds[0])["Credits"] == f"{format_credits(held)} credits given back"
    balance = await harness.balance()
    assert (balance.held, balance.spent) == (0, 0)

    polls = len(_polls(harness, task_id))
    await harness.clock.sleep(30)  # several poll intervals of a 30 s image task
    assert len(_polls(harness, task_id)) == polls, "nobody polls a stopped job"
    assert OPERATOR_REFUND.message in message.text, "no late progress edit overwrote the refund"
    assert (await harness.bot.services.store.get(1)).state is JobState.FAILED


async def test_a_done_job_cannot_be_refunded(harness):
    interaction = await harness.command("imagine", prompt="a heron already delivered")
    await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)
    await _wait_for_state(harness, 1, JobState.DONE)
    spent = (await harness.balance()).spent

    reply = await as_owner(harness, integer("id", 1), text("action", "refund"), sub="job")
    assert reply == ("Job 1 is already finished: it was delivered and charged, so it cannot be refunded. "
                     f"To give the member credits back, use `/quota grant` in its server for <@{USER_ID}>.")
    assert (await harness.balance()).spent == spent > 0
    assert "**✅ Done**" in harness.original(interaction).text


async def test_show_describes_a_job_and_links_its_message(harness):
    interaction = await harness.command("imagine", prompt="a heron to look at")
    message = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1, timeout=30)
    await _wait_for_state(harness, 1, JobState.DONE)
    job = await harness.bot.services.store.get(1)

    reply = await as_owner(harness, integer("id", 1), sub="job")  # show is the default action
    lines = reply.split("\n")
    assert lines[0] == "**Job 1** · image · 1280x1280 · 1 image · **done**"
    assert lines[1] == "> a heron to look at"
    assert lines[2] == (f"Server Test server (`{GUILD_ID}`) · channel <#{CHANNEL_ID}> · "
                        f"requested by <@{USER_ID}> (`{USER_ID}`)")
    assert re.fullmatch(r"Created <t:\d+:f> \(<t:\d+:R>\) · sent to EvoLink <t:\d+:f> \(<t:\d+:R>\) · "
                        r"finished <t:\d+:f> \(<t:\d+:R>\)", lines[3]), lines[3]
    assert lines[4] == f"EvoLink task: `{job.task_id}`"
    assert lines[5:] == [
        "Results: 1 known (EvoLink links)",
        f"Charged: {format_credits((await harness.balance()).spent)} credits",
        "Runner: done with it",
        f"Message: https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{message.id}",
    ]


async def test_show_names_an_unknown_id(harness):
    reply = await as_owner(harness, integer("id", 42), text("action", "show"), sub="job")
    assert reply == "There is no job 42."
    assert await as_owner(harness, integer("id", 42), text("action", "retry-delivery"), sub="job") == (
        "There is no job 42.")


async def test_retry_delivery_posts_a_refunded_job_for_free_once_the_channel_allows_uploads(harness):
    interaction = await harness.command("imagine", prompt="a heron delivered late")
    message = await harness.wait_for_original(interaction, lambda m: "Generating" in m.text)
    harness.discord.expire_token(harness.record(interaction).token)
    harness.discord.deny_permissions(CHANNEL_ID, "ATTACH_FILES")
    harness.discord.refuse_dms(USER_ID)
    await harness.discord.wait_for(lambda fake: "Failed" in message.text, timeout=30)
    await _wait_for_state(harness, 1, JobState.FAILED)
    assert "DMs are closed" in message.text and message.embeds[0]["footer"]["text"] == "job 1"
    assert message.attachments == []

    # While the channel still refuses uploads, a retry fails with the reason, and the message
    # shows the job's failure again (not a "Done" the member never got).
    reply = await as_owner(harness, integer("id", 1), text("action", "retry-delivery"), sub="job")
    assert reply.startswith("Job 1 was not delivered again: ⚠️ I could not post the result in "
                            f"<#{CHANNEL_ID}>: I need the **Attach Files** permission there.")
    assert reply.endswith("Your DMs are closed too, so the result could not be sent.\n"
                          "Its message shows its failure again.")
    assert message.embeds[0]["description"].startswith("**❌ Failed**: ") and message.attachments == []
    assert fields(message.embeds[0])["Credits"].endswith(" credits given back")

    harness.discord.allow_permissions(CHANNEL_ID, "ATTACH_FILES")
    bot_token_edits = rf"^/channels/{CHANNEL_ID}/messages/{message.id}$"
    edits_before = len(harness.discord.requests_to("PATCH", bot_token_edits))
    reply = await as_owner(harness, integer("id", 1), text("action", "retry-delivery"), sub="job")
    assert reply == (
        f"Job 1 was delivered again in its message (https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/"
        f"{message.id}), free of charge: it had failed (`missing_permission`) and its credits were given "
        "back, so nothing was charged."
    )
    assert "**✅ Done**" in message.text and fields(message.embeds[0])["Credits"] == "0 credits charged"
    assert len(message.attachments) == 1 and message.attachments[0].data.startswith(PNG_MAGIC)
    # Through the bot token: the interaction token is long dead.
    edits = harness.discord.requests_to("PATCH", bot_token_edits)
    assert len(edits) > edits_before and edits[-1].status == 200 and edits[-1].files
    balance = await harness.balance()
    assert (balance.held, balance.spent) == (0, 0)
    assert (await harness.bot.services.store.get(1)).state is JobState.FAILED  # refunded stays refunded


async def test_retry_delivery_of_a_running_job_says_it_is_busy(harness):
    interaction = await harness.command("imagine", prompt="a heron still cooking")
    await harness.wait_for_original(interaction, lambda m: "Generating" in m.text)
    reply = await as_owner(harness, integer("id", 1), text("action", "retry-delivery"), sub="job")
    assert reply == ("Job 1 is still being worked on (running): it delivers by itself when it finishes. "
                     "Refund it instead if it is stuck.")
