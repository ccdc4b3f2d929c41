"""/animate and the "Animate image" menu end to end: any picture becomes a video in the channel,
whatever its format and whatever the size of the result."""

from __future__ import annotations

import io
import re
import time

import pytest
from PIL import Image

from bot.media.video import looks_like_mp4
from tests.fakes.discord import (
    DISCORD_EPOCH_MS,
    modal_submit_payload,
    payload_text,
)
from tests.integration.conftest import CHANNEL_ID, GUILD_ID, USER_ID, on_store, start_harness
from tests.media_samples import ffmpeg_for_tests, make_video, png

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def big_video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("video") / "big.mp4", seconds=5, width=1280, height=720,
                      megabytes=30)


async def _harness(tmp_path, video, **settings):
    # Video jobs take 120 s of clock time: run the shared clock 40x so each test takes seconds.
    settings.setdefault("default_daily_credits", 100)
    settings.setdefault("ffmpeg_path", ffmpeg_for_tests())
    async for harness in start_harness(tmp_path, speed=40, **settings):
        harness.evolink.video_result = video
        yield harness


@pytest.fixture
async def harness(tmp_path, small_video, database_target):
    async for running in _harness(tmp_path, small_video, **on_store(database_target)):
        yield running


def _delivered_video(message) -> bytes:
    [attachment] = message.attachments
    assert attachment.filename.endswith(".mp4")
    return attachment.data


async def test_animate_delivers_an_mp4_and_charges_the_estimate(harness, small_video, tmp_path):
    picture = harness.discord.make_attachment("cat.png", png(1280, 720))
    interaction = await harness.command("animate", image=picture, prompt="the cat blinks", duration=5)

    final = await harness.wait_for_original(interaction, lambda m: bool(m.attachments), timeout=30)
    data = _delivered_video(final)
    assert data == small_video.read_bytes()  # under the limit: posted as produced
    saved = tmp_path / "got.mp4"
    saved.write_bytes(data)
    assert looks_like_mp4(saved)
    assert "**✅ Done**" in final.text and "5 s · 720p video\nCredits\n25.5 credits charged" in final.text

    [create] = harness.evolink_creates()
    assert create.json == {"model": "wan2.5-image-to-video", "prompt": "the cat blinks",
                           "image_urls": [picture["url"]], "duration": 5, "quality": "720p",
                           "prompt_extend": True}
    progress = [payload_text(json) for _, json in final.edits if json and "embeds" in json]
    assert any("**🎨 Generating**" in text and "5 s · 720p video\nCredits\n25.5 credits reserved" in text
               for text in progress)
    balance = await harness.settled_balance()  # the settle is written just after the delivery
    assert (balance.spent, balance.held) == (25_500, 0)


async def test_a_picture_that_needs_repair_is_fixed_uploaded_and_explained(harness):
    transparent = png(4000, 3000, mode="RGBA", color=(10, 200, 10, 0))
    picture = harness.discord.make_attachment("big.png", transparent)
    interaction = await harness.command("animate", image=picture, prompt="leaves fall", quality="480p")

    final = await harness.wait_for_original(interaction, lambda m: bool(m.attachments), timeout=30)
    edits = " ".join(payload_text(json) for _, json in final.edits if json and "embeds" in json)
    assert "your image was 4000x3000; sent as 2000x1500" in edits
    assert "filled with white" in edits
    [upload] = [r for r in harness.evolink.requests if r.path == "/api/v1/files/upload/stream"]
    [create] = harness.evolink_creates()
    [image_url] = create.json["image_urls"]
    assert image_url.startswith(harness.evolink.base_url + "/uploads/")
    [stored] = harness.evolink.uploads.values()
    with Image.open(io.BytesIO(stored.data)) as sent:
        assert sent.size == (2000, 1500) and "A" not in sent.getbands()


async def test_a_picture_that_cannot_be_used_is_refused_with_no_call_and_no_charge(harness):
    cases = {
        "tiny.png": (png(300, 500), "image 300x500: each side must be at least 360 px"),
        "notes.png": (b"this is just text, not a picture", "notes.png"),
    }
    for name, (data, expected) in cases.items():
        interaction = await harness.command(
            "animate", image=harness.discord.make_attachment(name, data), prompt="move")
        # Known only once the picture is read, after the public "thinking…": still a private reply.
        assert expected in await harness.private_refusal_after_deferral(interaction)
    assert harness.evolink_creates() == [] and harness.evolink.uploads == {}
    rows = await harness.bot.services.db.fetchall("SELECT * FROM ledger")
    assert rows == []


async def test_bad_options_are_refused_before_anything_happens(harness):
    picture = harness.discord.make_attachment("cat.png", png(800, 800))
    for options, expected in [
        (dict(duration=7), "duration 7: a video lasts 5 or 10 seconds"),
        (dict(quality="4k"), "quality '4k': choose 480p, 720p or 1080p"),
        (dict(prompt="x" * 1001), "prompt of 1,001 characters: at most 1,000 characters are allowed"),
    ]:
        interaction = await harness.command("animate", image=picture, **{"prompt": "go", **options})
        reply = await harness.wait_for_original(interaction, lambda m: bool(m.text))
        assert reply.ephemeral and expected in reply.text
    assert harness.evolink_creates() == []


async def test_an_oversized_video_is_re_encoded_under_the_servers_limit(tmp_path, big_video):
    assert big_video.stat().st_size > 25 * MiB
    async for harness in _harness(tmp_path, big_video):
        picture = harness.discord.make_attachment("cat.png", png(1280, 720))
        interaction = await harness.command("animate", image=picture, prompt="waves")
        final = await harness.wait_for_original(interaction, lambda m: bool(m.attachments), timeout=90)
        data = _delivered_video(final)
        assert len(data) <= 10 * MiB  # the fake's default server limit (no boosts)
        (tmp_path / "fitted.mp4").write_bytes(data)
        from bot.media.video import probe_video
        fitted = await probe_video(ffmpeg_for_tests(), tmp_path / "fitted.mp4")
        assert fitted.duration is not None and abs(fitted.duration - 5) < 0.5


async def test_without_ffmpeg_an_oversized_video_arrives_as_a_link_with_its_expiry(tmp_path, big_video):
    async for harness in _harness(tmp_path, big_video, ffmpeg_path="/nonexistent/ffmpeg"):
        picture = harness.discord.make_attachment("cat.png", png(1280, 720))
        interaction = await harness.command("animate", image=picture, prompt="waves")
        final = await harness.wait_for_original(interaction, lambda m: "Done" in m.text, timeout=30)
        assert final.attachments == []
        [task_id] = harness.evolink.tasks
        assert f"<{harness.evolink.base_url}/results/{task_id}/0>" in final.text
        assert "over this server's upload limit of 10.0 MB" in final.text
        assert "ffmpeg is not installed" in final.text
        assert re.search(r"before the link expires <t:\d+:R>", final.text)


async def test_a_413_from_discord_falls_back_instead_of_crashing(harness):
    # Discord refuses uploads (a proxy, or a smaller limit than announced). The limit here already
    # is Discord's base limit, so after one refusal the member gets the result as a link.
    too_large = {"code": 40005, "message": "Request entity too large"}
    harness.discord.fail_next("PATCH", r"/messages/(@original|\d+)$", 413, too_large, times=2,
                              only_uploads=True)
    picture = harness.discord.make_attachment("cat.png", png(800, 800))
    interaction = await harness.command("animate", image=picture, prompt="turns around")
    final = await harness.wait_for_original(interaction, lambda m: "Done" in m.text, timeout=30)
    assert final.attachments == [] and "Discord refused the video" in final.text


async def test_a_job_whose_token_is_nearly_expired_delivers_through_the_bot_token(harness):
    fourteen_minutes_ago = int((time.time() - 14 * 60) * 1000)
    old_id = (fourteen_minutes_ago - DISCORD_EPOCH_MS) << 22
    picture = harness.discord.make_attachment("cat.png", png(800, 800))
    interaction = await harness.command("animate", image=picture, prompt="a slow zoom",
                                        interaction_id=old_id)

    final = await harness.wait_for_original(interaction, lambda m: bool(m.attachments), timeout=30)
    assert "Done" in final.text
    token = harness.record(interaction).token
    token_edits = [r for r in harness.discord.requests if token in r.path and r.method == "PATCH"]
    assert token_edits == []  # with a minute left, a two-minute job never leans on the token
    bot_edits = harness.discord.requests_to("PATCH", rf"^/channels/{CHANNEL_ID}/messages/{final.id}$")
    assert bot_edits and bot_edits[-1].files


async def test_the_animate_image_menu_asks_in_a_modal_and_delivers(harness):
    # A picture someone posted in the channel.
    posted = harness.discord.messages[
        (await _post_picture(harness, "sunset.jpg", png(1024, 768)))
    ]
    opened = await harness.command_payload(harness.menu_payload("Animate image", posted))
    await harness.discord.wait_for(lambda fake: harness.record(opened).callback_type == 9)
    modal = harness.record(opened).callback_data
    [prompt_id, duration_id, quality_id] = [label["component"]["custom_id"] for label in modal["components"]]

    submit = modal_submit_payload(
        harness.discord, custom_id=modal["custom_id"], guild_id=GUILD_ID, channel_id=CHANNEL_ID,
        user_id=USER_ID, components=[
            {"type": 18, "component": {"type": 4, "custom_id": prompt_id, "value": "the sun sets"}},
            {"type": 18, "component": {"type": 3, "custom_id": duration_id, "values": ["10"]}},
            {"type": 18, "component": {"type": 3, "custom_id": quality_id, "values": ["480p"]}},
        ])
    submitted = await harness.discord.send_interaction(submit)
    final = await harness.wait_for_original(submitted, lambda m: bool(m.attachments), timeout=30)
    assert "10 s · 480p video\nCredits\n25.5 credits charged" in final.text
    [create] = harness.evolink_creates()
    posted_url = harness.discord.message_payload(posted)["attachments"][0]["url"]
    assert create.json["image_urls"] == [posted_url]  # usable as is: EvoLink fetches it directly
    assert (create.json["duration"], create.json["quality"]) == (10, "480p")


async def test_the_menu_on_a_message_without_a_picture_says_so(harness):
    message_id = await _post_text(harness, "just words")
    message = harness.discord.messages[message_id]
    interaction = await harness.command_payload(harness.menu_payload("Animate image", message))
    reply = await harness.wait_for_original(interaction, lambda m: bool(m.text))
    assert reply.ephemeral and "no picture to animate" in reply.text


async def _post_picture(harness, name: str, data: bytes) -> int:
    return await harness.post_as_member(content="look", files={name: data})


async def _post_text(harness, text: str) -> int:
    return await harness.post_as_member(content=text)
