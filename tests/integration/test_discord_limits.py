"""What the bot sends stays within Discord's limits where the text is not its own: EvoLink's long
links and error codes, and a server's long list of quota settings. The fake Discord refuses any
body over a limit (tests/fakes/discord/bodies.py), so a message that would break one fails here."""

from __future__ import annotations

import re

import pytest

from tests.fakes.discord import slash_command_payload
from tests.integration.conftest import CHANNEL_ID, GUILD_ID, MANAGE_SERVER, USER_ID, member, number, role
from tests.integration.test_history import settled

# Nothing here depends on the store: once, on SQLite (see tests/conftest.py).
pytestmark = pytest.mark.store_independent

MOD_ID = 6006
TOO_LARGE = {"code": 40005, "message": "Request entity too large"}
UPLOADS = r"/messages/(@original|\d+)$"


def refused_bodies(harness) -> list:
    return [r for r in harness.discord.requests if r.form_errors]


def description(message) -> str:
    [embed] = message.embeds
    return embed["description"]


async def linked_job(harness, prompt: str, n: int):
    """An /imagine job whose images Discord refuses as too large: its result carries links only."""
    harness.discord.fail_next("PATCH", UPLOADS, 413, TOO_LARGE, only_uploads=True)
    interaction = await harness.command("imagine", prompt=prompt, n=n)
    final = await harness.wait_for_original(interaction, lambda m: "Done" in m.text, timeout=30)
    await settled(harness)
    assert final.attachments == []
    return final


async def test_long_evolink_links_are_kept_whole_and_their_reasons_shortened_to_fit(harness):
    # Four links of ~950 characters and their reasons pass the description's 4,096 together.
    harness.evolink.result_link_query = "?sig=" + "a" * 850
    final = await linked_job(harness, "four foxes in a row", n=4)

    text = description(final)
    [task_id] = harness.evolink.tasks
    urls = [f"{harness.evolink.base_url}/results/{task_id}/{i}?sig={'a' * 850}" for i in range(4)]
    assert all(f"<{url}>" in text for url in urls), text
    assert len(text) <= 4096 and "…" in text  # the reasons gave way, the links did not
    assert len(re.findall(r"before the link expires <t:\d+:R>", text)) == 4
    assert refused_bodies(harness) == []
    assert (await harness.settled_balance()).spent == 8_000  # four images, charged as delivered


async def test_a_link_too_long_for_discord_is_announced_instead_of_breaking_the_message(harness):
    harness.evolink.result_link_query = "?sig=" + "b" * 5000
    final = await linked_job(harness, "a fox with a long link", n=1)

    text = description(final)
    assert "Discord refused the image" in text and "Its download link is too long to show here." in text
    assert "?sig=" not in text and len(text) <= 4096
    assert "wan:job:1:reroll" in final.custom_ids()  # still a finished job with its buttons
    assert refused_bodies(harness) == []


async def test_show_keeps_its_link_lines_within_the_embed(harness):
    harness.evolink.result_link_query = "?sig=" + "c" * 900
    await linked_job(harness, "four owls", n=4)

    # Every file is over this member's upload limit: /show links all four.
    payload = slash_command_payload(harness.discord, name="show", guild_id=GUILD_ID, channel_id=CHANNEL_ID,
                                    user_id=USER_ID, options=[{"name": "job", "type": 4, "value": 1}],
                                    attachment_size_limit=1024)
    interaction = await harness.discord.send_interaction(payload)
    shown = await harness.wait_for_original(interaction, lambda m: bool(m.text) and not m.loading)

    text = description(shown)
    lines = text.split("\n")[1:]
    assert len(text) <= 4096 and len(lines) == 4 and not shown.ephemeral
    for line in lines:
        # Each line links its file whole, or says its link is too long: never a link cut short.
        whole = re.search(r"<(http\S+?\?sig=c{900})>", line)
        assert whole or line.endswith("and its link is too long to show."), line
    assert re.search(r"<http\S+\?sig=c{900}>", text)
    assert refused_bodies(harness) == []


async def test_a_huge_error_code_from_evolink_still_gives_a_failure_embed_and_the_credits_back(harness):
    harness.evolink.fail_tasks_matching("doomed", "E" * 5000, "the model fell over")
    interaction = await harness.command("imagine", prompt="a doomed fox")
    final = await harness.wait_for_original(interaction, lambda m: "Failed" in m.text, timeout=30)

    text = description(final)
    assert re.fullmatch(r"\*\*❌ Failed\*\*: EvoLink could not finish this job \(E{63}…: the model fell over\)\.",
                        text), text
    balance = await harness.settled_balance()
    assert (balance.spent, balance.remaining) == (0, 40_000)
    assert refused_bodies(harness) == []
    job = await harness.bot.services.store.get(1)
    assert len(job.error_code) <= 64


async def test_quota_show_with_many_allowances_answers_with_all_of_them_within_discords_limits(harness):
    # Set through the real commands, as moderators would: 60 role and 60 personal allowances (all
    # within the operator's default ceiling of 200 a day).
    roles = [1_230_000_000_000_001_000 + i for i in range(60)]
    members = [1_230_000_000_000_002_000 + i for i in range(60)]
    for i, role_id in enumerate(roles):
        await mod_command(harness, role("role", role_id, f"role{i}"), number("amount", 100 + i), sub="set-role")
    for i, user_id in enumerate(members):
        await mod_command(harness, member("member", user_id), number("amount", 120 + i), sub="set-user")

    interaction = await harness.slash("quota", sub="show", user_id=MOD_ID, permissions=MANAGE_SERVER)
    await harness.wait_for_original(interaction, lambda m: bool(m.text))
    record = harness.record(interaction)
    await harness.discord.wait_for(lambda fake: len(record.followup_message_ids) >= 1)
    pages = [harness.original(interaction)] + [harness.discord.messages[i] for i in record.followup_message_ids]

    assert all(page.ephemeral and 0 < len(page.content) <= 2000 for page in pages)
    shown = "\n".join(page.content for page in pages)
    assert shown.startswith("**Default allowance**: 40 credits per member per day")
    for i, role_id in enumerate(roles):
        assert f"<@&{role_id}> {100 + i}" in shown
    for i, user_id in enumerate(members):
        assert f"<@{user_id}> {120 + i}" in shown
    assert "**Blocked**: nobody" in shown and "**Log channel**: none" in shown
    assert refused_bodies(harness) == []


async def mod_command(harness, *options, sub: str) -> None:
    interaction = await harness.slash("quota", *options, sub=sub, user_id=MOD_ID, permissions=MANAGE_SERVER)
    await harness.reply_to(interaction)
