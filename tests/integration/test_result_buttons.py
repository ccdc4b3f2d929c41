"""The buttons under a result, clicked through discord.py's real dispatch after the bot object was
re-created: each click is a component interaction whose message carries the component."""

from __future__ import annotations

from tests.fakes.discord import component_payload, modal_submit_payload
from tests.integration.conftest import CHANNEL_ID, GUILD_ID, USER_ID, start_harness
from tests.media_samples import png

OTHER_MEMBER = 6006
MANAGE_MESSAGES = 1 << 13
EPHEMERAL = 1 << 6


async def finished_job(harness, **options) -> int:
    """Run /imagine to the end; the id of its result message."""
    interaction = await harness.command("imagine", **options)
    message = await harness.wait_for_original(interaction, lambda m: "Done" in m.text and m.attachments,
                                              timeout=30)
    await harness.settled_balance()
    return message.id


async def click(harness, message_id: int, custom_id: str, *, user_id: int = USER_ID, permissions: int = 0,
                locale: str = "en-US") -> int:
    return await harness.discord.send_interaction(component_payload(
        harness.discord, custom_id=custom_id, message_id=message_id, user_id=user_id,
        permissions=permissions, locale=locale))


async def submit(harness, custom_id: str, values: dict[str, str | list[str]], *, message_id: int,
                 user_id: int = USER_ID) -> int:
    """Submit a form as Discord sends it: each input inside a label component."""
    components = [
        {"type": 18, "component": ({"type": 3, "custom_id": key, "values": value} if isinstance(value, list)
                                   else {"type": 4, "custom_id": key, "value": value})}
        for key, value in values.items()
    ]
    return await harness.discord.send_interaction(modal_submit_payload(
        harness.discord, custom_id=custom_id, components=components, message_id=message_id,
        channel_id=CHANNEL_ID, user_id=user_id))


async def opened_form(harness, interaction: int) -> dict:
    await harness.discord.wait_for(lambda fake: harness.record(interaction).acknowledged)
    record = harness.record(interaction)
    assert record.callback_type == 9, "a form opens at once"
    return record.callback_data


def form_inputs(form: dict) -> dict[str, dict]:
    return {label["component"]["custom_id"]: label["component"] for label in form["components"]}


async def job_row(harness, job_id: int):
    return await harness.bot.services.store.get(job_id)


async def test_reroll_after_a_restart_runs_the_same_options_again_for_whoever_clicks(harness):
    result = await finished_job(harness, prompt="a red fox", size="1024x1024", n=2)
    await harness.restart()

    reroll = await click(harness, result, "wan:job:1:reroll", user_id=OTHER_MEMBER)

    again = await harness.wait_for_original(reroll, lambda m: len(m.attachments) == 2, timeout=30)
    assert harness.record(reroll).callback_type == 5 and not again.ephemeral
    first, second = harness.evolink_creates()
    assert first.json == second.json
    job = await job_row(harness, 2)
    assert (job.parent_job_id, job.user_id, job.request["prompt"]) == (1, OTHER_MEMBER, "a red fox")
    # Charged as usual, to the member who clicked.
    assert (await harness.settled_balance(OTHER_MEMBER)).spent == 4_000
    assert "wan:job:2:reroll" in again.custom_ids()


async def test_remix_opens_a_filled_in_form_and_runs_what_was_changed(harness):
    result = await finished_job(harness, prompt="a red fox", size="1024x1024", n=2)
    await harness.restart()

    form = await opened_form(harness, await click(harness, result, "wan:job:1:remix"))
    inputs = form_inputs(form)
    assert inputs["prompt"]["value"] == "a red fox" and inputs["size"]["value"] == "1024x1024"
    assert [o["value"] for o in inputs["n"]["options"] if o.get("default")] == ["2"]

    # A restart between opening the form and sending it changes nothing: the form is stateless.
    await harness.restart()
    remix = await submit(harness, form["custom_id"], {"prompt": "a blue fox", "size": "1280x720x", "n": ["1"]},
                         message_id=result)
    assert "size '1280x720x'" in await harness.private_refusal(remix)
    remix = await submit(harness, form["custom_id"], {"prompt": "a blue fox", "size": "1472x1104", "n": ["1"]},
                         message_id=result)

    await harness.wait_for_original(remix, lambda m: len(m.attachments) == 1, timeout=30)
    _, create = harness.evolink_creates()
    assert (create.json["prompt"], create.json["size"], create.json["n"]) == ("a blue fox", "1472x1104", 1)
    assert (await job_row(harness, 2)).parent_job_id == 1


async def test_animate_picks_one_of_several_images_and_runs_the_animate_flow(harness):
    result = await finished_job(harness, prompt="a red fox", n=2)
    await harness.restart()

    form = await opened_form(harness, await click(harness, result, "wan:job:1:animate"))
    assert [o["label"] for o in form_inputs(form)["image"]["options"]] == ["Image 1", "Image 2"]
    animate = await submit(harness, form["custom_id"],
                           {"image": ["1"], "prompt": "the fox runs", "duration": ["5"], "quality": ["480p"]},
                           message_id=result)

    video = await harness.wait_for_original(animate, lambda m: "Done" in m.text and m.attachments, timeout=60)
    assert video.attachments[0].filename.endswith(".mp4")
    _, create = harness.evolink_creates()
    assert create.json["model"] == "wan2.5-image-to-video" and create.json["prompt"] == "the fox runs"
    assert create.json["image_urls"][0].endswith("/wan-1-2.png")  # the second image, as chosen
    job = await job_row(harness, 2)
    assert (job.kind, job.parent_job_id, job.request["quality"]) == ("video", 1, "480p")


async def test_details_answers_privately_with_everything_about_the_job(harness):
    result = await finished_job(harness, prompt="a red fox in the snow, watercolour", n=2)
    await harness.restart()

    details = await click(harness, result, "wan:job:1:details", user_id=OTHER_MEMBER)

    reply = await harness.wait_for_original(details, lambda m: bool(m.embeds))
    assert reply.ephemeral and harness.record(details).callback_type == 4
    text = reply.text
    job = await job_row(harness, 1)
    assert "a red fox in the snow, watercolour" in text and job.task_id in text
    assert "Size 1280x1280 · 2 image(s) · prompt extension: on" in text and "4 credits charged" in text
    assert "Asked <t:" in text and "Sent to Wan <t:" in text and "Finished <t:" in text


async def test_delete_is_for_the_requester_or_a_moderator(harness):
    first = await finished_job(harness, prompt="a red fox")
    second = await finished_job(harness, prompt="a grey wolf")
    await harness.restart()

    refused = await click(harness, first, "wan:job:1:delete", user_id=OTHER_MEMBER)
    assert await harness.private_refusal(refused) == (
        f"Only the member who asked for this job (<@{USER_ID}>) or a moderator can delete it.")
    assert not harness.discord.messages[first].deleted and (await job_row(harness, 1)).removed_by is None

    mine = await click(harness, first, "wan:job:1:delete")
    assert await harness.reply_to(mine) == "Deleted the result of job 1."
    assert harness.discord.messages[first].deleted and (await job_row(harness, 1)).removed_by == USER_ID

    moderator = await click(harness, second, "wan:job:2:delete", user_id=OTHER_MEMBER, permissions=MANAGE_MESSAGES)
    assert await harness.reply_to(moderator) == "Deleted the result of job 2."
    assert harness.discord.messages[second].deleted


async def test_buttons_say_clearly_when_the_job_or_its_inputs_are_gone(harness):
    result = await finished_job(harness, prompt="a red fox")
    db = harness.bot.services.db
    async with db.transaction() as tx:  # as if the job belonged to another server's records
        await tx.execute("UPDATE jobs SET guild_id = :guild WHERE id = 1", {"guild": GUILD_ID + 1})

    gone = await click(harness, result, "wan:job:1:reroll")
    assert "Job 1 no longer exists in this server's records" in await harness.private_refusal(gone)
    assert len(harness.evolink_creates()) == 1, "nothing was sent, nothing charged"


async def test_a_video_too_old_to_reroll_is_refused_before_anything_is_charged(tmp_path, small_video):
    async for harness in start_harness(tmp_path, speed=40, default_daily_credits=100):
        harness.evolink.video_result = small_video
        await _refuses_an_old_video_reroll(harness)


async def _refuses_an_old_video_reroll(harness):
    picture = harness.discord.make_attachment("cat.png", png(1280, 720))
    interaction = await harness.command("animate", image=picture, prompt="the cat blinks")
    video = await harness.wait_for_original(interaction, lambda m: "Done" in m.text and m.attachments, timeout=60)
    assert "wan:job:1:animate" not in video.custom_ids(), "a video has nothing to animate"
    spent = (await harness.settled_balance()).spent
    async with harness.bot.services.db.transaction() as tx:
        await tx.execute("UPDATE jobs SET created_at = created_at - :ms WHERE id = 1", {"ms": 25 * 3600 * 1000})

    reroll = await click(harness, video.id, "wan:job:1:reroll")
    assert "The picture job 1 started from is gone" in await harness.private_refusal(reroll)
    assert (await harness.balance()).spent == spent and len(harness.evolink_creates()) == 1


async def test_buttons_speak_the_clicking_members_language(harness):
    result = await finished_job(harness, prompt="a red fox")

    refused = await click(harness, result, "wan:job:1:delete", user_id=OTHER_MEMBER, locale="zh-CN")
    assert await harness.private_refusal(refused) == f"只有发起此任务的成员（<@{USER_ID}>）或管理员可以删除它。"
    message = harness.discord.messages[result]
    labels = [button["label"] for row in message.components for button in row["components"]]
    assert labels == ["Reroll", "Remix", "Edit", "Animate", "Details", "Delete"]
    assert message.flags & EPHEMERAL == 0



async def test_a_click_while_the_bot_shuts_down_is_answered_and_starts_nothing(harness):
    result = await finished_job(harness, prompt="a red fox")
    harness.bot.shutting_down = True  # what close() sets first

    reroll = await click(harness, result, "wan:job:1:reroll")
    assert "The bot is restarting" in await harness.private_refusal(reroll)
    assert len(harness.evolink_creates()) == 1
