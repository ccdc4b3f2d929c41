"""/defaults as moderators and members meet it: a channel's defaults fill the options a member
leaves out of /imagine and /animate (what EvoLink is asked for, what is charged), a member's own
option wins, other channels are untouched, and every refusal is private and changes nothing."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from tests.fakes.discord import slash_command_payload
from tests.integration.conftest import (
    CHANNEL_ID,
    GUILD_ID,
    LOG_CHANNEL_ID,
    MANAGE_SERVER,
    OTHER_CHANNEL_ID,
    OTHER_GUILD_ID,
    USER_ID,
    boolean,
    channel,
    integer,
    start_harness,
    text,
)
from tests.media_samples import ffmpeg_for_tests, make_video

MOD_ID = 6006


async def as_mod(harness, *options, sub: str) -> int:
    return await harness.slash("defaults", *options, sub=sub, user_id=MOD_ID, permissions=MANAGE_SERVER)


async def private_reply(harness, interaction: int) -> str:
    """The answer to a /defaults command: always a private first answer."""
    reply = await harness.wait_for_original(interaction, lambda m: bool(m.text))
    assert harness.record(interaction).callback_type == 4 and reply.ephemeral, "a /defaults reply is private"
    return reply.text


async def send(harness, name: str, *, sub: str | None = None, channel_id: int = CHANNEL_ID,
               locale: str = "en-US", user_id: int = USER_ID, permissions: int = 0, **options: object) -> int:
    """A command in any channel of the test server, in any locale (Harness.slash sends from one
    channel, in English)."""
    types = {str: 3, int: 4, bool: 5}
    payload = slash_command_payload(
        harness.discord, name=name, subcommand=sub, guild_id=GUILD_ID, channel_id=channel_id,
        user_id=user_id, locale=locale, permissions=permissions,
        options=[{"name": key, "type": types[type(value)], "value": value} for key, value in options.items()],
    )
    return await harness.discord.send_interaction(payload)


async def finished_images(harness, interaction: int, count: int):
    return await harness.wait_for_original(interaction, lambda m: len(m.attachments) == count)


async def audit_rows(harness) -> list:
    return await harness.bot.services.db.fetchall(
        "SELECT action, actor_id, details FROM audit_log WHERE action LIKE 'defaults-%' ORDER BY id")


async def test_a_brainstorming_channel_makes_four_images_unless_the_member_says_otherwise(harness):
    changed = await as_mod(harness, integer("n", 4), sub="set")
    assert await private_reply(harness, changed) == (
        f"Defaults changed in <#{CHANNEL_ID}>: n **4**. A member's own options still win.")

    # A member leaves n out: EvoLink is asked for 4 images, and 4 are charged (2 credits each).
    brainstorm = await harness.command("imagine", prompt="ideas for a logo")
    await finished_images(harness, brainstorm, 4)
    [create] = harness.evolink_creates()
    assert create.json == {"model": "wan2.5-text-to-image", "prompt": "ideas for a logo",
                           "size": "1280x1280", "n": 4, "prompt_extend": True}
    balance = await harness.settled_balance()
    assert (balance.spent, balance.held) == (8_000, 0)

    # The member's own n wins.
    single = await harness.command("imagine", prompt="just one logo", n=1)
    await finished_images(harness, single, 1)
    assert harness.evolink_creates()[-1].json["n"] == 1

    # Another channel of the same server keeps the built-in default.
    elsewhere = await send(harness, "imagine", channel_id=LOG_CHANNEL_ID, prompt="a logo elsewhere")
    await finished_images(harness, elsewhere, 1)
    assert harness.evolink_creates()[-1].json["n"] == 1

    balance = await harness.settled_balance()
    assert (balance.spent, balance.held, balance.remaining) == (12_000, 0, 28_000)
    [(action, actor, details)] = await audit_rows(harness)
    assert (action, actor) == ("defaults-set", MOD_ID)
    assert f'"channel_id": {CHANNEL_ID}' in details and '"n": 4' in details


async def test_every_image_default_applies_and_a_typed_option_still_wins(harness):
    await private_reply(harness, await as_mod(
        harness, text("size", "Widescreen 16:9"), integer("n", 2), boolean("prompt_extend", False),
        sub="set"))

    defaulted = await harness.command("imagine", prompt="a wide valley")
    final = await finished_images(harness, defaulted, 2)
    for attachment in final.attachments:
        with Image.open(io.BytesIO(attachment.data)) as image:
            assert image.size == (1664, 936)
    assert harness.evolink_creates()[-1].json == {
        "model": "wan2.5-text-to-image", "prompt": "a wide valley", "size": "1664x936", "n": 2,
        "prompt_extend": False}

    typed = await harness.command("imagine", prompt="a tall tower", size="936x1664", prompt_extend=True)
    await finished_images(harness, typed, 2)
    assert harness.evolink_creates()[-1].json == {
        "model": "wan2.5-text-to-image", "prompt": "a tall tower", "size": "936x1664", "n": 2,
        "prompt_extend": True}


async def test_a_member_cannot_change_defaults_and_nothing_changes(harness):
    attempts = [
        ("set", [integer("n", 4)]),
        ("set", [text("size", "1024x1024"), channel("channel", LOG_CHANNEL_ID)]),
        ("clear", []),
    ]
    for sub, options in attempts:
        refused = await harness.slash("defaults", *options, sub=sub, user_id=USER_ID, permissions=0)
        assert await private_reply(harness, refused) == (
            "Only moderators can do this: it needs the Manage Server permission.")
    for channel_id in (CHANNEL_ID, LOG_CHANNEL_ID):
        assert (await harness.bot.services.channel_defaults.get(GUILD_ID, channel_id)).options_set == ()
    assert await audit_rows(harness) == []

    imagine = await harness.command("imagine", prompt="a fox")
    await finished_images(harness, imagine, 1)
    assert harness.evolink_creates()[-1].json["n"] == 1


async def test_bad_values_are_refused_privately_with_the_rule_and_nothing_is_stored(harness):
    cases = [
        ([text("size", "3000x100")], "size 3000x100: the aspect ratio must be between 1:4 and 4:1"),
        ([text("size", "767x768")], "size 767x768: the image must have between 768x768"),
        # Discord's client would stop these; a crafted interaction carries anything.
        ([integer("n", 5)], "n 5: the number of images must be between 1 and 4"),
        ([integer("duration", 7)], "duration 7: a video lasts 5 or 10 seconds"),
        ([integer("n", 3), text("quality", "4k")], "quality '4k': choose 480p, 720p or 1080p"),
        ([], "Choose at least one default to set: size, n, prompt_extend, duration, quality."),
        # Another server's channel: discord.py finds no such channel here and refuses the option.
        ([integer("n", 3), channel("channel", OTHER_CHANNEL_ID, guild_id=OTHER_GUILD_ID)], ""),
    ]
    for options, expected in cases:
        reply = await private_reply(harness, await as_mod(harness, *options, sub="set"))
        assert expected in reply, reply
    rows = await harness.bot.services.db.fetchall("SELECT * FROM channel_defaults")
    assert rows == [] and await audit_rows(harness) == []


async def test_clear_brings_back_the_built_in_defaults_one_or_all(harness):
    await private_reply(harness, await as_mod(harness, integer("n", 4), text("size", "1024x1024"), sub="set"))

    one = await private_reply(harness, await as_mod(harness, text("option", "n"), sub="clear"))
    assert one == f"Defaults cleared in <#{CHANNEL_ID}>. The built-in ones apply again: n 1."
    first = await harness.command("imagine", prompt="a fox")
    await finished_images(harness, first, 1)
    sent = harness.evolink_creates()[-1].json
    assert (sent["size"], sent["n"]) == ("1024x1024", 1)

    every = await private_reply(harness, await as_mod(harness, sub="clear"))
    assert every == f"Defaults cleared in <#{CHANNEL_ID}>. The built-in ones apply again: size 1280x1280."
    second = await harness.command("imagine", prompt="another fox")
    await finished_images(harness, second, 1)
    assert harness.evolink_creates()[-1].json["size"] == "1280x1280"

    # Nothing left to clear: said plainly, and no audit row for a change that did not happen.
    again = await private_reply(harness, await as_mod(harness, sub="clear"))
    assert again == f"<#{CHANNEL_ID}> has no defaults to clear: it already uses the built-in ones."
    assert [row["action"] for row in await audit_rows(harness)] == [
        "defaults-set", "defaults-clear", "defaults-clear"]


async def test_show_lists_the_channels_defaults_and_the_built_in_ones_to_anyone(harness):
    await private_reply(harness, await as_mod(harness, integer("n", 4), integer("duration", 10), sub="set"))
    await private_reply(harness, await as_mod(
        harness, text("quality", "1080p"), channel("channel", LOG_CHANNEL_ID), sub="set"))

    shown = await private_reply(harness, await harness.slash("defaults", sub="show", user_id=USER_ID))
    lines = shown.splitlines()
    assert lines[:4] == [
        f"**Defaults in <#{CHANNEL_ID}>** (a member's own options always win)",
        "**/imagine**: size 1280x1280 (built-in) · n **4** · prompt_extend on (built-in)",
        "**/edit**: n **4** · prompt_extend on (built-in)",
        "**/animate**: duration **10 seconds** · quality 720p (built-in) · prompt_extend on (built-in)",
    ]
    assert re.fullmatch(rf"-# Last changed by <@{MOD_ID}> <t:\d+:R>\. .*", lines[4])

    other = await private_reply(harness, await harness.slash(
        "defaults", channel("channel", LOG_CHANNEL_ID), sub="show", user_id=USER_ID))
    assert other.splitlines()[3] == (
        "**/animate**: duration 5 seconds (built-in) · quality **1080p** · prompt_extend on (built-in)")


async def test_a_chinese_member_reads_the_defaults_in_chinese(harness):
    await private_reply(harness, await as_mod(harness, integer("n", 4), sub="set"))
    shown = await private_reply(harness, await send(harness, "defaults", sub="show", locale="zh-CN"))
    assert shown.splitlines()[:4] == [
        f"**<#{CHANNEL_ID}> 的默认值**（成员自己填写的选项始终优先）",
        "**/imagine**：尺寸 1280x1280（内置） · 数量 **4** · 提示词扩写 开（内置）",
        "**/edit**：数量 **4** · 提示词扩写 开（内置）",
        "**/animate**：时长 5 秒（内置） · 画质 720p（内置） · 提示词扩写 开（内置）",
    ]


async def test_a_change_is_echoed_to_the_log_channel_in_the_servers_language(harness):
    await harness.slash("quota", channel("channel", LOG_CHANNEL_ID), sub="log-channel", user_id=MOD_ID,
                        permissions=MANAGE_SERVER)
    await harness.discord.wait_for(lambda fake: _log_posts(fake))
    # A moderator whose Discord is in Chinese: their reply is in Chinese, the log in the server's English.
    changed = await send(harness, "defaults", sub="set", locale="zh-CN", user_id=MOD_ID,
                         permissions=MANAGE_SERVER, n=4)
    assert await private_reply(harness, changed) == (
        f"已更改 <#{CHANNEL_ID}> 的默认值：数量 **4**。成员自己填写的选项仍然优先。")
    await harness.discord.wait_for(lambda fake: len(_log_posts(fake)) == 2)
    assert _log_posts(harness.discord)[-1] == (
        f"🛡️ <@{MOD_ID}>: Defaults changed in <#{CHANNEL_ID}>: n **4**. "
        "A member's own options still win.")


def _log_posts(fake) -> list[str]:
    return [m.content for m in fake.messages.values() if m.channel_id == LOG_CHANNEL_ID]


# -- /animate and the "Animate image" menu -----------------------------------------------------------

@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("video") / "small.mp4", seconds=5, width=640, height=360)


@pytest.fixture
async def video_harness(tmp_path, small_video):
    # Video jobs take 120 s of clock time: run the shared clock 40x so each test takes seconds.
    async for harness in start_harness(tmp_path, speed=40, default_daily_credits=100,
                                       ffmpeg_path=ffmpeg_for_tests()):
        harness.evolink.video_result = small_video
        yield harness


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_animate_uses_the_channels_duration_and_quality(video_harness):
    harness = video_harness
    await private_reply(harness, await as_mod(
        harness, integer("duration", 10), text("quality", "480p"), boolean("prompt_extend", False),
        sub="set"))
    picture = harness.discord.make_attachment("cat.png", png(1280, 720))

    defaulted = await harness.command("animate", image=picture, prompt="the cat blinks")
    await harness.wait_for_original(defaulted, lambda m: bool(m.attachments), timeout=30)
    [create] = harness.evolink_creates()
    assert create.json == {"model": "wan2.5-image-to-video", "prompt": "the cat blinks",
                           "image_urls": [picture["url"]], "duration": 10, "quality": "480p",
                           "prompt_extend": False}
    # 10 s x 5.1 credits x 0.5 for 480p.
    assert (await harness.settled_balance()).spent == 25_500

    typed = await harness.command("animate", image=picture, prompt="the cat yawns", duration=5,
                                  quality="720p")
    await harness.wait_for_original(typed, lambda m: bool(m.attachments), timeout=30)
    assert harness.evolink_creates()[-1].json["duration"] == 5
    assert harness.evolink_creates()[-1].json["quality"] == "720p"
    assert (await harness.settled_balance()).spent == 25_500 + 25_500


async def test_the_animate_menus_form_starts_on_the_channels_defaults_in_the_members_language(video_harness):
    harness = video_harness
    await private_reply(harness, await as_mod(harness, integer("duration", 10), text("quality", "1080p"),
                                              sub="set"))
    posted_id = await harness.post_as_member(content="look", files={"a.png": png(800, 800)})
    posted = harness.discord.messages[posted_id]

    for locale, title, labels, ten_seconds in [
        ("en-US", "Animate image", ["What should happen?", "Duration", "Quality"], "10 seconds"),
        ("zh-CN", "图片转视频", ["视频里会发生什么？", "时长", "画质"], "10 秒"),
    ]:
        menu = slash_command_payload(harness.discord, name="Animate image", guild_id=GUILD_ID,
                                     channel_id=CHANNEL_ID, user_id=USER_ID, locale=locale)
        menu["data"].pop("options", None)
        menu["data"].update(type=3, target_id=str(posted.id),
                            resolved={"messages": {str(posted.id): harness.discord.message_payload(posted)}})
        opened = await harness.discord.send_interaction(menu)
        await harness.discord.wait_for(lambda fake, opened=opened: harness.record(opened).callback_type == 9)
        modal = harness.record(opened).callback_data
        assert modal["title"] == title
        assert [label["label"] for label in modal["components"]] == labels
        _, duration, quality = (label["component"] for label in modal["components"])
        assert [(o["label"], o.get("default", False)) for o in duration["options"]][-1] == (ten_seconds, True)
        assert [o["value"] for o in quality["options"] if o.get("default")] == ["1080p"]
