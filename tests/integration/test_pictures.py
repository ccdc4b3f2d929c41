"""The pictures members really post, through the real bot, the fake Discord and the fake EvoLink:
an iPhone HEIC, a 16-bit scan and an AVIF are converted, uploaded and explained; a file that is
no picture is refused privately with the formats the bot takes, and nothing is charged."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageStat

from tests.fakes.discord import payload_text
from tests.integration.conftest import on_store, start_harness
from tests.media_samples import avif, deep_grey, ffmpeg_for_tests, heic, photo, tiff

# Nothing here depends on the store: once, on SQLite (see tests/conftest.py).
pytestmark = pytest.mark.store_independent

RED = (255, 0, 0)
ACCEPTED = ("Pictures the bot takes: JPEG, PNG, WebP and BMP as they are; GIF, TIFF, HEIC/HEIF, AVIF "
            "and most other picture formats are converted.")


@pytest.fixture
async def harness(tmp_path, small_video, database_target):
    # Video jobs take 120 s of clock time: run the shared clock 40x so each test takes seconds.
    async for running in start_harness(tmp_path, speed=40, default_daily_credits=100,
                                       ffmpeg_path=ffmpeg_for_tests(), **on_store(database_target)):
        running.evolink.video_result = small_video
        yield running


def progress_text(message) -> str:
    """Everything the job's message said along the way (the notes show while it runs)."""
    return " ".join(payload_text(json) for _, json in message.edits if json and "embeds" in json)


def the_uploaded_picture(harness) -> Image.Image:
    """The one picture the bot uploaded to EvoLink, decoded, after checking that the job asked
    EvoLink to animate exactly that upload."""
    [(file_id, stored)] = harness.evolink.uploads.items()
    [create] = harness.evolink_creates()
    assert create.json["image_urls"] == [f"{harness.evolink.base_url}/uploads/{file_id}"]
    picture = Image.open(io.BytesIO(stored.data))
    picture.load()
    assert stored.content_type == Image.MIME[picture.format]
    return picture


async def test_an_iphone_heic_is_converted_uploaded_and_explained(harness):
    # Taken sideways, as an iPhone records it: 1600x1200 stored, a quarter turn in the container.
    data = heic(photo(1600, 1200), orientation=6)
    picture = harness.discord.make_attachment("IMG_4321.HEIC", data, content_type="image/heic")
    interaction = await harness.command("animate", image=picture, prompt="the cat blinks")

    final = await harness.wait_for_original(interaction, lambda m: bool(m.attachments), timeout=30)
    assert "your HEIF was converted to JPEG" in progress_text(final)
    sent = the_uploaded_picture(harness)
    assert (sent.format, sent.mode, sent.size) == ("JPEG", "RGB", (1200, 1600))  # upright
    assert sent.getpixel((1150, 50)) == pytest.approx(RED, abs=16)  # the stored top-left corner
    low, high = sent.convert("L").getextrema()
    assert low < 40 and high > 200  # a photo, not a black frame
    balance = await harness.settled_balance()
    assert (balance.spent, balance.held) == (25_500, 0)


async def test_a_16_bit_scan_is_sent_with_its_full_contrast(harness):
    # A 12-bit scanner's values (0..4095) in a 16-bit TIFF: scaled as if they filled 16 bits,
    # the frame EvoLink animates would be almost black.
    data = tiff(deep_grey(1200, 900, high=4095))
    picture = harness.discord.make_attachment("scan.tif", data)
    interaction = await harness.command("animate", image=picture, prompt="slow zoom", quality="480p")

    final = await harness.wait_for_original(interaction, lambda m: bool(m.attachments), timeout=30)
    notes = progress_text(final)
    assert "your image had 16-bit values from 0 to 4095; they were spread over the full 8-bit range" in notes
    assert "your TIFF was converted to PNG" in notes
    sent = the_uploaded_picture(harness)
    assert (sent.format, sent.mode, sent.size) == ("PNG", "L", (1200, 900))
    assert sent.getextrema() == (0, 255)
    assert 110 < ImageStat.Stat(sent).mean[0] < 145  # the gradient, neither black nor white


async def test_the_animate_image_menu_converts_an_avif_in_the_channel(harness):
    posted_id = await harness.post_as_member(content="look", files={"sunset.avif": avif(photo(1024, 768))})
    posted = harness.discord.messages[posted_id]
    submitted = await harness.animate_with_menu(posted, "the sun sets")

    final = await harness.wait_for_original(submitted, lambda m: bool(m.attachments), timeout=30)
    assert "your AVIF was converted to JPEG" in progress_text(final)
    sent = the_uploaded_picture(harness)
    assert (sent.format, sent.size) == ("JPEG", (1024, 768))
    assert sent.getpixel((50, 50)) == pytest.approx(RED, abs=16)


async def test_a_file_that_is_no_picture_is_refused_privately_with_the_formats_and_nothing_charged(harness):
    fake_photo = harness.discord.make_attachment("holiday.heic", b"ftypheic, or so it claims" * 40)
    interaction = await harness.command("animate", image=fake_photo, prompt="waves")
    # Known only after the public "thinking…": the placeholder goes, the refusal is private.
    reply = await harness.private_refusal_after_deferral(interaction)
    assert f"attachment holiday.heic: this is not a readable image, or the file is damaged\n{ACCEPTED}" in reply
    shown = _showing(harness.discord, "holiday.heic", include_deleted=True)
    assert shown and all(message.ephemeral for message in shown), "the refusal was public"
    assert harness.evolink_creates() == [] and harness.evolink.uploads == {}
    assert await harness.bot.services.db.fetchall("SELECT * FROM ledger") == []
    balance = await harness.balance()
    assert (balance.spent, balance.held) == (0, 0)


def _showing(fake, words: str, *, include_deleted: bool = False) -> list:
    """The finished messages (not a "thinking…" placeholder) whose text contains `words`."""
    return [message for message in fake.messages.values()
            if words in message.text and not message.loading and (include_deleted or not message.deleted)]
