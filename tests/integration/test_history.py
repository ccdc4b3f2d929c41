"""/jobs and /show: a member's recent jobs, and a finished job posted again with its files."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

from bot.ui.pages import pack_lines
from bot.units import to_millis
from tests.fakes.discord import slash_command_payload
from tests.integration.conftest import (
    CHANNEL_ID,
    GUILD_ID,
    OTHER_GUILD_ID,
    USER_ID,
    integer,
    text,
)

OTHER_MEMBER = 5006


async def finished(harness, prompt: str, n: int = 1, user_id: int = USER_ID):
    """Run /imagine to the end; returns its result message."""
    interaction = await harness.command("imagine", prompt=prompt, n=n, user_id=user_id)
    message = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == n)
    await settled(harness)
    return message


async def settled(harness, timeout: float = 10.0) -> None:
    """Until no job is left unfinished: a result shows in Discord a moment before its job is done."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await harness.bot.services.store.unfinished():
        assert asyncio.get_running_loop().time() < deadline, "a job did not finish"
        await asyncio.sleep(0.01)


def jump_link(message) -> str:
    return f"https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{message.id}"


def evolink_downloads(harness) -> int:
    return len([r for r in harness.evolink.requests if r.path.startswith("/results/")])


async def show(harness, job_id: int, **payload_options) -> int:
    payload = slash_command_payload(harness.discord, name="show", guild_id=GUILD_ID, channel_id=CHANNEL_ID,
                                    user_id=USER_ID, options=[{"name": "job", "type": 4, "value": job_id}],
                                    **payload_options)
    return await harness.discord.send_interaction(payload)


async def private_followup(harness, interaction_id: int):
    """The private answer /show gives after its public deferral: the public placeholder is gone."""
    record = harness.record(interaction_id)
    await harness.discord.wait_for(lambda fake: record.followup_message_ids)
    [message_id] = record.followup_message_ids
    message = harness.discord.messages[message_id]
    assert record.callback_type == 5 and message.ephemeral
    assert harness.original(interaction_id).deleted, "the public 'thinking' message was left behind"
    return message


async def test_jobs_lists_the_callers_jobs_newest_first_with_jump_links_and_no_one_elses(harness):
    fox = await finished(harness, "a red fox in the snow")
    whale = await finished(harness, "a blue whale, another member's", user_id=OTHER_MEMBER)
    owl = await finished(harness, "a green owl at night", n=2)

    reply = await harness.private_refusal(await harness.slash("jobs"))
    # Newest first, each with its number for /show, its options, cost and a jump link.
    assert reply.index("a green owl at night") < reply.index("a red fox in the snow")
    assert re.search(r"`#3` .*1280x1280 · 2 images · 4 credits · a green owl at night", reply)
    assert re.search(r"`#1` .*1280x1280 · 1 image · 2 credits · a red fox in the snow", reply)
    assert jump_link(owl) in reply and jump_link(fox) in reply
    assert "blue whale" not in reply and jump_link(whale) not in reply and "`#2`" not in reply
    assert "/show job:<number>" in reply

    only_newest = await harness.private_refusal(await harness.slash("jobs", integer("count", 1)))
    assert "a green owl at night" in only_newest and "a red fox" not in only_newest


async def test_jobs_without_any_job_points_to_imagine_and_a_bad_count_names_the_rule(harness):
    assert "You have no jobs in this server yet. Start one with /imagine" in await harness.private_refusal(
        await harness.slash("jobs"))
    # Discord's client keeps count within 1..25; a crafted interaction is refused by the bot.
    refusal = await harness.private_refusal(await harness.slash("jobs", integer("count", 26)))
    assert refusal == "count 26: list between 1 and 25 jobs."


async def test_show_posts_a_done_job_again_publicly_with_the_files_of_its_message(harness):
    original = await finished(harness, "a lighthouse at dusk", n=2)
    downloads_before = evolink_downloads(harness)
    balance_before = await harness.balance()

    interaction = await show(harness, 1)
    reposted = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 2)

    assert harness.record(interaction).callback_type == 5 and not reposted.ephemeral
    assert reposted.id != original.id and not original.deleted
    assert [a.data for a in reposted.attachments] == [a.data for a in original.attachments]
    assert "a lighthouse at dusk" in reposted.text and "✅" in reposted.text
    assert "wan:job:1:reroll" in reposted.custom_ids()
    # The bytes came from the fake Discord (the message read with the bot token, then its
    # attachments), not from EvoLink; nothing was charged.
    assert harness.discord.requests_to("GET", rf"^/channels/{CHANNEL_ID}/messages/{original.id}$")
    attachment_ids = {str(a.id) for a in original.attachments}
    fetched = {r.path.split("/")[3] for r in harness.discord.requests_to("GET", r"^/attachments/")}
    assert attachment_ids <= fetched
    assert evolink_downloads(harness) == downloads_before
    assert await harness.balance() == balance_before


async def test_show_after_the_message_was_deleted_uses_the_saved_links_then_evolinks(harness):
    original = await finished(harness, "a paper boat on a puddle", n=2)
    harness.discord.messages[original.id].deleted = True
    downloads_before = evolink_downloads(harness)

    # The attachment links saved when the result was posted still answer.
    first = await show(harness, 1)
    reposted = await harness.wait_for_original(first, lambda m: len(m.attachments) == 2)
    assert [a.data for a in reposted.attachments] == [a.data for a in original.attachments]
    assert evolink_downloads(harness) == downloads_before

    # Once Discord's links are dead too, EvoLink's (alive for 24 hours) serve the same images.
    for attachment in original.attachments:
        harness.discord.expire_attachment(attachment.id)
    second = await show(harness, 1)
    again = await harness.wait_for_original(second, lambda m: len(m.attachments) == 2)
    assert [a.data for a in again.attachments] == [a.data for a in original.attachments]
    assert evolink_downloads(harness) == downloads_before + 2


async def test_show_when_every_copy_is_gone_says_why_privately(harness):
    original = await finished(harness, "a snow globe")
    harness.discord.messages[original.id].deleted = True
    for attachment in original.attachments:
        harness.discord.expire_attachment(attachment.id)
    long_ago = to_millis(harness.clock.now() - timedelta(hours=25))
    async with harness.bot.services.db.transaction() as tx:
        await tx.execute("UPDATE jobs SET finished_at = :at WHERE id = 1", {"at": long_ago})
    downloads_before = evolink_downloads(harness)

    interaction = await show(harness, 1)
    reply = (await private_followup(harness, interaction)).text

    assert reply.startswith("The files of job 1 are gone, so it cannot be shown again:")
    assert "- its message was deleted" in reply
    assert "- the Discord links saved with it no longer work" in reply
    assert re.search(r"- EvoLink's links expired <t:\d+:R> \(EvoLink keeps results for 24 hours\)", reply)
    assert reply.endswith("Nothing was charged.")
    # Expired EvoLink links are not even tried.
    assert evolink_downloads(harness) == downloads_before
    assert not [m for m in harness.discord.messages_in(CHANNEL_ID) if m.attachments and m.id != original.id]


async def test_show_links_a_file_over_the_members_upload_limit(harness):
    original = await finished(harness, "a tiny limit")
    interaction = await show(harness, 1, attachment_size_limit=1024)
    reposted = await harness.wait_for_original(interaction, lambda m: bool(m.text) and not m.loading)
    assert reposted.attachments == [] and not reposted.ephemeral
    [link] = re.findall(r"wan-1-1\.png \(0\.0 MB\) is over the upload limit here \(0\.0 MB\): <(\S+)>",
                        reposted.text)
    [attachment] = original.attachments
    assert link.startswith(f"{harness.discord.base_url}/attachments/{CHANNEL_ID}/{attachment.id}/")


async def test_show_refuses_unknown_foreign_failed_unfinished_and_deleted_jobs_privately(harness):
    # Job 1: another server's.
    foreign = await harness.slash("imagine", text("prompt", "their secret fox"), guild_id=OTHER_GUILD_ID)
    await harness.wait_for_original(foreign, lambda m: len(m.attachments) == 1)
    # Job 2: failed.
    harness.evolink.fail_tasks_matching("forbidden", "content_policy_violation", "unsafe content")
    failed = await harness.command("imagine", prompt="something forbidden")
    await harness.wait_for_original(failed, lambda m: "Failed" in m.text)
    # Job 3: deleted by its requester with the Delete button's record.
    await finished(harness, "a fox they deleted")
    await harness.bot.services.store.mark_removed(3, USER_ID)

    for job_id in (1, 999):
        refusal = await harness.private_refusal(await show(harness, job_id))
        assert refusal == f"There is no job {job_id} in this server. /jobs lists yours with their numbers."
    refusal = await harness.private_refusal(await show(harness, 2))
    assert refusal == ("Job 2 failed, so it has no files to show. "
                       "Why: The prompt was refused by the safety filter. Try rewording it.")
    refusal = await harness.private_refusal(await show(harness, 3))
    assert refusal == f"The result of job 3 was deleted by <@{USER_ID}>, so it is not posted again."

    # Job 4: still on its way (its downloads are held back).
    hold = harness.evolink.hold_results()
    running = await harness.command("imagine", prompt="a fox still on its way")
    await harness.discord.wait_for(lambda fake: harness.original(running) is not None)
    await harness.wait_for_original(running, lambda m: "Downloading" in m.text, timeout=20)
    refusal = await harness.private_refusal(await show(harness, 4))
    message_id = harness.original(running).id
    assert refusal == (f"Job 4 is not finished yet: it is downloading its results. Follow it here: "
                       f"https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{message_id}")
    hold.release()
    await harness.wait_for_original(running, lambda m: len(m.attachments) == 1)
    assert harness.evolink_creates()[-1].json["prompt"] == "a fox still on its way"


def test_a_long_job_list_is_split_into_embeds_within_discords_limit():
    lines = [f"`#{n}` " + "x" * 300 for n in range(25)]
    pages = pack_lines(lines)
    assert len(pages) == 2 and all(len(page) <= 4096 for page in pages)
    assert "\n".join(pages).split("\n") == lines
