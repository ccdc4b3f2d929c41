"""/edit, the Edit button and the "Edit image" menu end to end: a picture changed by a prompt, or
two fused, through the real bot, the fake Discord and the fake EvoLink (which fetches each picture
from the fake Discord and checks it as EvoLink does)."""

from __future__ import annotations

import csv
import io
import os
import re

from PIL import Image

from tests.fakes.discord import modal_submit_payload, payload_text
from tests.integration.conftest import (
    CHANNEL_ID,
    GUILD_ID,
    MANAGE_SERVER,
    USER_ID,
    fields,
    integer,
    start_harness,
    text,
)
from tests.integration.test_moderation import MOD_ID, as_mod
from tests.integration.test_result_buttons import click, form_inputs, opened_form, submit
from tests.media_samples import png

OTHER_MEMBER = 6006


def picture_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def mean_colour(data: bytes) -> tuple[float, ...]:
    with Image.open(io.BytesIO(data)) as image:
        pixels = image.convert("RGB").resize((1, 1), Image.Resampling.BOX)
        return pixels.getpixel((0, 0))


async def finished(harness, interaction: int, images: int, timeout: float = 30):
    # Done: the results, with the buttons under them (in whatever language the reply is in).
    return await harness.wait_for_original(
        interaction, lambda m: len(m.attachments) == images and bool(m.custom_ids()), timeout=timeout)


async def job_row(harness, job_id: int):
    return await harness.bot.services.store.get(job_id)


async def test_edit_changes_one_picture_into_new_images_and_charges_each(harness):
    picture = harness.discord.make_attachment("fox.png", png(1024, 768, color=(220, 40, 20)))
    interaction = await harness.command("edit", image=picture, prompt="the same fox at night", n=2)

    final = await finished(harness, interaction, images=2)
    [create] = harness.evolink_creates()
    assert create.json == {"model": "wan2.5-image-to-image", "prompt": "the same fox at night",
                           "image_urls": [picture["url"]], "n": 2, "prompt_extend": True}
    # The results follow the picture: its shape, and its colour under the fake's tint.
    for attachment in final.attachments:
        assert picture_size(attachment.data) == (1024, 768)
        red, green, _ = mean_colour(attachment.data)
        assert red > green + 60
    [embed] = final.embeds
    assert fields(embed)["Options"] == "edit of 1 picture · 2 images"
    assert fields(embed)["Credits"] == "4 credits charged"
    assert final.custom_ids() == [f"wan:job:1:{action}" for action in
                                  ("reroll", "remix", "edit", "animate", "details", "delete")]
    job = await job_row(harness, 1)
    assert (job.kind, job.request["image_sizes"]) == ("edit", [[1024, 768]])
    assert (await harness.settled_balance()).spent == 4_000


async def test_edit_fuses_two_pictures(tmp_path):
    async for harness in start_harness(tmp_path):
        first = harness.discord.make_attachment("mug.png", png(800, 800, color=(240, 240, 240)))
        second = harness.discord.make_attachment("logo.jpg", _jpeg(600, 400))
        interaction = await harness.command("edit", image=first, image2=second, prompt="put the logo on the mug")

        final = await finished(harness, interaction, images=1)
        [create] = harness.evolink_creates()
        assert create.json["image_urls"] == [first["url"], second["url"]] and create.json["n"] == 1
        assert fields(final.embeds[0])["Options"] == "fusion of 2 pictures · 1 image"

        details = await click(harness, final.id, "wan:job:1:details")
        shown = (await harness.wait_for_original(details, lambda m: bool(m.embeds))).text
        assert "Fusion of two pictures (800x800, 600x400) · 1 image(s) · prompt extension: on" in shown


async def test_the_edit_button_after_a_restart_edits_or_fuses_the_results(tmp_path):
    async for harness in start_harness(tmp_path):
        made = await harness.command("imagine", prompt="a red fox", size="1280x720", n=2)
        result = (await finished(harness, made, images=2)).id
        await harness.restart()

        form = await opened_form(harness, await click(harness, result, "wan:job:1:edit", user_id=OTHER_MEMBER))
        inputs = form_inputs(form)
        assert set(inputs) == {"prompt", "image", "fuse", "n"}
        assert [o["label"] for o in inputs["image"]["options"]] == ["Image 1", "Image 2"]
        assert [o["label"] for o in inputs["fuse"]["options"]] == ["No, edit this one alone", "Image 1", "Image 2"]
        assert [o["value"] for o in inputs["n"]["options"] if o.get("default")] == ["1"]

        await harness.restart()  # the form is stateless: a restart before sending changes nothing
        edit = await submit(harness, form["custom_id"],
                            {"prompt": "both foxes in one picture", "image": ["1"], "fuse": ["0"], "n": ["2"]},
                            message_id=result, user_id=OTHER_MEMBER)

        await finished(harness, edit, images=2)
        _, create = harness.evolink_creates()
        assert create.json["model"] == "wan2.5-image-to-image" and create.json["n"] == 2
        second, first = create.json["image_urls"]  # the chosen image first, then the one to fuse
        assert second.endswith("/wan-1-2.png") and first.endswith("/wan-1-1.png")
        job = await job_row(harness, 2)
        assert (job.kind, job.parent_job_id, job.user_id) == ("edit", 1, OTHER_MEMBER)
        assert (await harness.settled_balance(OTHER_MEMBER)).spent == 4_000  # whoever clicks pays


async def test_the_edit_image_menu_edits_a_plain_upload_or_fuses_two(tmp_path):
    async for harness in start_harness(tmp_path):
        posted = await harness.post_as_member(content="my cat", files={"cat.webp": _webp(900, 1200)})
        message = harness.discord.messages[posted]
        opened = await harness.command_payload(harness.menu_payload("Edit image", message))
        modal = await opened_form(harness, opened)
        labels = [label["component"] for label in modal["components"]]
        assert len(labels) == 2, "one picture: what to change and how many, nothing to choose"
        prompt_id, count_id = (component["custom_id"] for component in labels)
        sent = await harness.discord.send_interaction(modal_submit_payload(
            harness.discord, custom_id=modal["custom_id"], guild_id=GUILD_ID, channel_id=CHANNEL_ID,
            user_id=USER_ID, components=[
                {"type": 18, "component": {"type": 4, "custom_id": prompt_id, "value": "the cat wears a hat"}},
                {"type": 18, "component": {"type": 3, "custom_id": count_id, "values": ["1"]}},
            ]))

        final = await finished(harness, sent, images=1)
        [create] = harness.evolink_creates()
        [attachment] = harness.discord.message_payload(message)["attachments"]
        assert create.json["image_urls"] == [attachment["url"]]
        assert picture_size(final.attachments[0].data) == (900, 1200)

        # A message with two pictures: the form asks which one, and whether to fuse it with the other.
        posted = await harness.post_as_member(content="mug and logo", files={
            "mug.png": png(800, 800), "logo.jpg": _jpeg(600, 400)})
        message = harness.discord.messages[posted]
        modal = await opened_form(harness, await harness.command_payload(harness.menu_payload("Edit image", message)))
        components = [label["component"] for label in modal["components"]]
        assert [[o["label"] for o in c.get("options", [])] for c in components] == [
            [], ["Image 1", "Image 2"], ["No, edit this one alone", "Image 1", "Image 2"], ["1", "2", "3", "4"]]
        prompt_id, image_id, fuse_id, count_id = (component["custom_id"] for component in components)
        sent = await harness.discord.send_interaction(modal_submit_payload(
            harness.discord, custom_id=modal["custom_id"], guild_id=GUILD_ID, channel_id=CHANNEL_ID,
            user_id=USER_ID, components=[
                {"type": 18, "component": {"type": 4, "custom_id": prompt_id, "value": "the logo on the mug"}},
                {"type": 18, "component": {"type": 3, "custom_id": image_id, "values": ["0"]}},
                {"type": 18, "component": {"type": 3, "custom_id": fuse_id, "values": ["1"]}},
                {"type": 18, "component": {"type": 3, "custom_id": count_id, "values": ["1"]}},
            ]))
        final = await finished(harness, sent, images=1)
        _, fused = harness.evolink_creates()
        assert fused.json["image_urls"] == [a["url"] for a in harness.discord.message_payload(message)["attachments"]]
        assert picture_size(final.attachments[0].data) == (800, 800)


async def test_an_edit_of_an_edit_then_animate_each_remember_their_parent(tmp_path, small_video):
    async for harness in start_harness(tmp_path, speed=40, default_daily_credits=100):
        harness.evolink.video_result = small_video
        picture = harness.discord.make_attachment("fox.png", png(1024, 1024))
        first = await finished(harness, await harness.command("edit", image=picture, prompt="at night"), 1)

        form = await opened_form(harness, await click(harness, first.id, "wan:job:1:edit"))
        second_edit = await submit(harness, form["custom_id"], {"prompt": "and snowing", "n": ["1"]},
                                   message_id=first.id)
        second = await finished(harness, second_edit, 1)
        assert fields(second.embeds[0])["Options"] == "edit of 1 picture · 1 image"

        form = await opened_form(harness, await click(harness, second.id, "wan:job:2:animate"))
        animate = await submit(harness, form["custom_id"], {"prompt": "snow falls", "duration": ["5"],
                                                            "quality": ["480p"]}, message_id=second.id)
        video = await harness.wait_for_original(animate, lambda m: "Done" in m.text and m.attachments, timeout=60)
        assert video.attachments[0].filename.endswith(".mp4")

        creates = harness.evolink_creates()
        assert [c.json["model"] for c in creates] == [
            "wan2.5-image-to-image", "wan2.5-image-to-image", "wan2.5-image-to-video"]
        assert creates[1].json["image_urls"][0].endswith("/wan-1-1.png")
        assert creates[2].json["image_urls"][0].endswith("/wan-2-1.png")
        assert [(await job_row(harness, k)).parent_job_id for k in (1, 2, 3)] == [None, 1, 2]
        details = await click(harness, video.id, "wan:job:3:details")
        assert "Started from\njob 2" in (await harness.wait_for_original(details, lambda m: bool(m.embeds))).text


async def test_reroll_and_remix_of_an_edit_reuse_its_pictures_while_they_live(tmp_path):
    async for harness in start_harness(tmp_path):
        picture = harness.discord.make_attachment("fox.png", png(1024, 1024))
        first = await finished(harness, await harness.command("edit", image=picture, prompt="at night", n=2), 2)

        reroll = await click(harness, first.id, "wan:job:1:reroll")
        await finished(harness, reroll, 2)
        form = await opened_form(harness, await click(harness, first.id, "wan:job:1:remix"))
        assert set(form_inputs(form)) == {"prompt", "n"}, "an edit has no size of its own"
        remix = await submit(harness, form["custom_id"], {"prompt": "at dawn", "n": ["1"]}, message_id=first.id)
        await finished(harness, remix, 1)
        first_create, again, remixed = harness.evolink_creates()
        assert again.json == first_create.json
        assert remixed.json == {**first_create.json, "prompt": "at dawn", "n": 1}

        spent = (await harness.settled_balance()).spent
        async with harness.bot.services.db.transaction() as tx:  # a day later, its links are gone
            await tx.execute("UPDATE jobs SET created_at = created_at - :ms WHERE id = 1", {"ms": 25 * 3600 * 1000})
        for action in ("reroll", "remix"):
            late = await click(harness, first.id, f"wan:job:1:{action}")
            text = await harness.private_refusal(late)
            assert text.startswith("The pictures job 1 edited are gone") and "Nothing was charged" in text
        assert (await harness.balance()).spent == spent and len(harness.evolink_creates()) == 3


async def test_bad_pictures_are_refused_with_nothing_charged_or_repaired_and_said(tmp_path):
    async for harness in start_harness(tmp_path, default_daily_credits=100):
        refused = {
            "tiny.png": (png(380, 600), "image 380x600: each side must be at least 384 px"),
            "notes.png": (b"this is just text, not a picture", "attachment notes.png: this is not a readable image"),
        }
        for name, (data, expected) in refused.items():
            interaction = await harness.command("edit", image=harness.discord.make_attachment(name, data),
                                                prompt="make it blue")
            assert expected in await harness.private_refusal_after_deferral(interaction)
        # A second picture is checked as carefully as the first.
        good = harness.discord.make_attachment("good.png", png(800, 800))
        interaction = await harness.command("edit", image=good, prompt="fuse", image2=harness.discord.make_attachment(
            "tiny.png", png(200, 900)))
        assert "image 200x900: each side must be at least 384 px" in await harness.private_refusal_after_deferral(
            interaction)
        assert harness.evolink_creates() == [] and harness.evolink.uploads == {}
        assert await harness.bot.services.db.fetchall("SELECT * FROM ledger") == []

        # Transparent, too large in pixels, and over EvoLink's 10 MB: repaired, uploaded, said.
        repaired = {
            "glass.png": png(1000, 800, mode="RGBA", color=(10, 200, 10, 0)),
            "wide.png": png(6000, 1500),
            "noise.png": _noise_png(2400, 2400),
        }
        notes = []
        for name, data in repaired.items():
            interaction = await harness.command("edit", image=harness.discord.make_attachment(name, data),
                                                prompt="make it blue")
            final = await finished(harness, interaction, 1, timeout=60)
            notes.append(" ".join(payload_text(json) for _, json in final.edits if json and "embeds" in json))
        assert "your image had transparent areas; they were filled with white" in notes[0]
        assert "your image was 6000x1500; sent as 5000x1250" in notes[1]
        assert re.search(r"your image was 1[67]\.\d MB; sent as a \d\.\d MB JPEG", notes[2])
        uploads = list(harness.evolink.uploads.values())
        assert len(uploads) == 3 and all(len(u.data) <= 10 * 1024 * 1024 for u in uploads)
        creates = harness.evolink_creates()
        assert all(c.json["image_urls"][0].startswith(harness.evolink.base_url + "/uploads/") for c in creates)


async def test_a_picture_over_the_download_limit_is_refused_before_it_is_read(tmp_path):
    async for harness in start_harness(tmp_path, max_input_image_bytes=1024 * 1024):
        big = harness.discord.make_attachment("big.png", _noise_png(800, 800))  # about 1.9 MB
        interaction = await harness.command("edit", image=big, prompt="make it blue")
        # Known from what Discord says of the attachment, once the command is acknowledged.
        text = await harness.private_refusal_after_deferral(interaction)
        assert "attachment big.png" in text and "the bot reads pictures of at most 1.0 MB" in text
        assert harness.evolink_creates() == [] and await harness.bot.services.db.fetchall("SELECT * FROM ledger") == []


async def test_a_chinese_member_reads_every_edit_reply_in_chinese(tmp_path):
    async for harness in start_harness(tmp_path):
        tiny = harness.discord.make_attachment("tiny.png", png(300, 300))
        refused = await harness.command("edit", image=tiny, prompt="换成夜晚", locale="zh-CN")
        assert (await harness.private_refusal_after_deferral(refused)).startswith(
            "图片 300x300：每条边至少需要 384 像素")

        picture = harness.discord.make_attachment("fox.png", png(1024, 1024))
        made = await harness.command("edit", image=picture, prompt="换成夜晚", n=2, locale="zh-CN")
        final = await finished(harness, made, 2)
        assert fields(final.embeds[0])["参数"] == "编辑 1 张图片 · 2 张图片"
        labels = [button["label"] for row in final.components for button in row["components"]]
        assert labels == ["重新生成", "修改重绘", "编辑", "生成视频", "详情", "删除"]

        form = await opened_form(harness, await click(harness, final.id, "wan:job:1:edit", locale="zh-CN"))
        assert form["title"] == "编辑任务 1 的图片"
        assert [o["label"] for o in form_inputs(form)["fuse"]["options"]] == ["不融合，只编辑这一张", "图片 1", "图片 2"]


def _jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 40, 220)).save(buffer, "JPEG")
    return buffer.getvalue()


def _webp(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 60, 200)).save(buffer, "WEBP")
    return buffer.getvalue()


def _noise_png(width: int, height: int) -> bytes:
    """Random pixels, stored without compression: as many bytes as pixels times three."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


async def test_edits_follow_the_servers_blocked_terms_defaults_and_usage(tmp_path):
    async for harness in start_harness(tmp_path, default_daily_credits=100):
        await as_mod(harness, "moderation", text("term", "forbidden"), sub="blocked-terms add")
        await as_mod(harness, "defaults", integer("n", 3), sub="set")
        picture = harness.discord.make_attachment("fox.png", png(1024, 1024))

        refused = await harness.command("edit", image=picture, prompt="a forbidden thing")
        assert (await harness.private_refusal(refused)).startswith(
            "Your prompt contains \"forbidden\", which this server does not allow.")
        assert harness.evolink_creates() == [], "refused before the picture is even fetched"

        edit = await harness.command("edit", image=picture, prompt="at night")  # n from the channel: 3
        await finished(harness, edit, 3)
        made = await harness.command("imagine", prompt="a fox")
        await finished(harness, made, 3)
        await harness.settled_balance()

        assert await as_mod(harness, "usage", sub="top") == (
            f"**Top spenders today**\n1. <@{USER_ID}> · 12 credits · 2 jobs (image: 1, edit: 1)")
        export = await harness.slash("usage", sub="export", user_id=MOD_ID, permissions=MANAGE_SERVER)
        reply = await harness.wait_for_original(export, lambda m: bool(m.attachments))
        rows = list(csv.DictReader(io.StringIO(reply.attachments[0].data.decode())))
        assert [(row["job_id"], row["job_kind"], row["kind"]) for row in rows if row["kind"] == "settle"] == [
            ("1", "edit", "settle"), ("2", "image", "settle")]
