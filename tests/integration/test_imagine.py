"""/imagine end to end: a member's command becomes images in the channel, paid for once."""

from __future__ import annotations

import io
import re

from PIL import Image

from tests.fakes.discord import payload_text
from tests.integration.conftest import EVOLINK_KEY, USER_ID, fields, on_store, start_harness

PROGRESS = re.compile(r"Generating\*\* · (\d+)%\n`[▰▱]{20}`")


async def test_imagine_delivers_the_images_with_live_progress_and_charges_once(harness):
    interaction = await harness.command("imagine", prompt="a red fox in the snow", size="1024x1024", n=2)

    final = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 2)

    # Answered in time with a public "thinking" deferral, then edited in place.
    record = harness.record(interaction)
    assert record.callback_type == 5 and not final.ephemeral
    # The files: two real PNGs of the requested size, uploaded to the same reply.
    for attachment in final.attachments:
        with Image.open(io.BytesIO(attachment.data)) as image:
            assert (image.format, image.size) == ("PNG", (1024, 1024))
    [embed] = final.embeds
    assert embed["title"] == "a red fox in the snow" and embed["description"] == "**✅ Done**"
    assert fields(embed) == {"Options": "1024x1024 · 2 images", "Credits": "4 credits charged",
                             "Requested by": f"<@{USER_ID}>", "Took": fields(embed)["Took"]}
    assert embed["footer"]["text"] == "job 1" and embed["color"] == 0x57F287
    assert ["wan:job:1:reroll", "wan:job:1:remix", "wan:job:1:edit", "wan:job:1:animate", "wan:job:1:details",
            "wan:job:1:delete"] == final.custom_ids()

    # Progress: edits of the same message with a bar whose percentage never goes backwards,
    # never closer together than the 3 s rule (in the shared scaled clock: 3 s / 20 = 0.15 s).
    contents = [payload_text(json) for _, json in final.edits if json and "embeds" in json]
    percents = [int(m[1]) for text in contents if (m := PROGRESS.search(text))]
    assert any("**🎨 Generating**" in text for text in contents)
    assert len(percents) >= 2 and percents == sorted(percents) and 0 < max(percents) <= 100
    assert len(contents) == len(set(contents)), "an edit repeated text already shown"
    edit_times = [t for t, _ in final.edits]
    gaps = [later - earlier for earlier, later in zip(edit_times, edit_times[1:], strict=False)]
    assert min(gaps) >= 0.8 * 3 / harness.clock.speed

    # EvoLink: one create with the member's options, then polls; the key went only to the API.
    [create] = harness.evolink_creates()
    assert create.json == {"model": "wan2.5-text-to-image", "prompt": "a red fox in the snow",
                           "size": "1024x1024", "n": 2, "prompt_extend": True}
    api_calls = [r for r in harness.evolink.requests if r.path.startswith("/v1/")]
    assert all(r.headers["Authorization"] == f"Bearer {EVOLINK_KEY}" for r in api_calls)
    downloads = [r for r in harness.evolink.requests if r.path.startswith("/results/")]
    assert len(downloads) == 2 and all("Authorization" not in r.headers for r in downloads)
    assert all(r.headers["User-Agent"].startswith("wan-discord-bot/") for r in harness.evolink.requests)

    # Credits: 40 a day by default, 2 per image: 4 spent, 36 left, as /credits tells the member
    # (once the job has settled, just after its delivery).
    await harness.settled_balance()
    credits = await harness.command("credits")
    reply = await harness.wait_for_original(credits, lambda m: bool(m.text))
    assert reply.ephemeral
    assert "36 of 40 left" in reply.text and "Used: 4" in reply.text


async def test_bad_input_is_refused_with_the_rule_and_the_value_and_nothing_is_sent(harness):
    cases = {
        "size 3000x100: the aspect ratio must be between 1:4 and 4:1":
            dict(prompt="a fox", size="3000x100"),
        "size 767x768: the image must have between 768x768":
            dict(prompt="a fox", size="767x768"),
        # Discord's client would stop these, but a crafted interaction carries anything.
        "n 5: the number of images must be between 1 and 4": dict(prompt="a fox", n=5),
        "prompt of 2,001 characters: at most 2,000 characters are allowed": dict(prompt="x" * 2001),
        "prompt (empty): describe what to generate": dict(prompt="   "),
    }
    for expected, options in cases.items():
        interaction = await harness.command("imagine", **options)
        assert expected in await harness.private_refusal(interaction)

    assert harness.evolink_creates() == []
    balance = await harness.bot.services.ledger.balance(7000, USER_ID)
    assert (balance.spent, balance.held, balance.remaining) == (0, 0, 40_000)


async def test_not_enough_credits_says_what_is_left_and_when_it_refills(tmp_path, database_target):
    async for harness in start_harness(tmp_path, default_max_concurrent_jobs=5, default_daily_credits=20,
                                       **on_store(database_target)):
        # One after another: sent at once, the three reservations race, and any one of them
        # may be the one refused.
        first = await harness.command("imagine", prompt="four foxes", n=4)      # 8 credits
        await harness.acknowledged(first)
        second = await harness.command("imagine", prompt="four more foxes", n=4)  # 16 held now
        await harness.acknowledged(second)
        third = await harness.command("imagine", prompt="and again", n=4)        # would be 24 > 20
        text = await harness.private_refusal(third)
        assert re.fullmatch(r"Not enough credits: this needs 8 and you have 4 left today\. "
                            r"Your allowance refills <t:\d+:R>\.", text)
        for interaction in (first, second):
            await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 4)
        assert len(harness.evolink_creates()) == 2


async def test_a_third_job_at_once_waits_in_line_for_the_members_own_jobs(harness):
    # Two of a member's jobs run at once (the default); a third is not refused: it waits in line,
    # says why, holds its credits, and starts when one of the two ends.
    first = await harness.command("imagine", prompt="one fox")
    second = await harness.command("imagine", prompt="two foxes")
    await harness.wait_until_generating(second)
    third = await harness.command("imagine", prompt="three foxes")
    waiting = await harness.wait_for_original(third, lambda m: "Waiting in line" in m.text)
    assert "#1 in line" in waiting.text
    assert "Waiting for your 2 running job(s) to finish" in waiting.text
    assert (await harness.balance()).held == 6_000  # all three hold their 2 credits
    assert len(harness.evolink_creates()) == 2
    for interaction in (first, second, third):
        await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1)
    assert len(harness.evolink_creates()) == 3
    balance = await harness.settled_balance()
    assert (balance.spent, balance.remaining) == (6_000, 34_000)


async def test_past_the_places_in_line_a_job_is_refused_naming_both_limits(tmp_path, database_target):
    async for harness in start_harness(tmp_path, max_waiting_jobs_per_member=1, **on_store(database_target)):
        harness.evolink.image_seconds = 3600  # none of them may end while the fourth is asked
        for prompt in ("one fox", "two foxes", "three foxes"):
            sent = await harness.command("imagine", prompt=prompt)
            # Answered before the next is sent: commands are handled concurrently, and which of
            # two racing ones gets the last place in line is not what this test is about.
            await harness.discord.wait_for(lambda fake, sent=sent: fake.interaction_responses[sent].callback_type)
        fourth = await harness.command("imagine", prompt="four foxes")
        assert await harness.private_refusal(fourth) == (
            "You already have 3 jobs running or waiting in line here, the most this server allows: "
            "2 at once and 1 more waiting. Wait for one to finish.")
        assert (await harness.balance()).held == 6_000  # the refused fourth holds nothing


async def test_a_refused_prompt_is_explained_and_refunded(harness):
    harness.evolink.fail_tasks_matching("forbidden", "content_policy_violation", "unsafe content")
    interaction = await harness.command("imagine", prompt="something forbidden", n=3)

    final = await harness.wait_for_original(interaction, lambda m: "Failed" in m.text)
    assert "refused by the safety filter" in final.text
    assert "6 credits given back" in final.text and final.attachments == []
    balance = await harness.bot.services.ledger.balance(7000, USER_ID)
    assert (balance.spent, balance.held, balance.remaining) == (0, 0, 40_000)


async def test_polls_survive_rate_limits_and_server_errors(harness):
    # The first polls are refused (429 with Retry-After, then a 503): the job still completes.
    harness.evolink.fail_next("/v1/tasks/", 429, "rate_limit_exceeded", retry_after="2")
    harness.evolink.fail_next("/v1/tasks/", 503, 500, "upstream busy")
    interaction = await harness.command("imagine", prompt="a patient fox")
    final = await harness.wait_for_original(interaction, lambda m: len(m.attachments) == 1)
    assert "**✅ Done**" in final.text
    polls = [r for r in harness.evolink.requests if r.path.startswith("/v1/tasks/")]
    assert len(polls) >= 3


async def test_commands_in_dms_explain_that_credits_are_per_server(harness):
    for command in ("imagine", "credits"):
        options = {"prompt": "a fox"} if command == "imagine" else {}
        interaction = await harness.command(command, guild_id=None, **options)
        assert "credits are counted per server" in await harness.private_refusal(interaction)
    assert harness.evolink_creates() == []
