"""EvoLink's rules for an input picture (a video's first frame, a picture to edit), and the
refusal that names the rule a picture breaks (in the member's language, with the formats the bot
takes)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import UserFacingError
from bot.i18n import ENGLISH, Message

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP"})  # Pillow format names
MAX_INPUT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class PictureRules:
    """The sides one EvoLink model accepts of an input picture; the formats, the 10 MB and the
    ban on transparency are the same for every model. A picture larger than `max_side` is scaled
    down to it; one smaller than `min_side` is refused."""

    min_side: int
    max_side: int


VIDEO_FIRST_FRAME = PictureRules(min_side=360, max_side=2000)  # wan2.5-image-to-video
PICTURE_TO_EDIT = PictureRules(min_side=384, max_side=5000)    # wan2.5-image-to-image

# Checked from the header before any pixel is decoded. Far above anything a repair needs (a
# 40-megapixel photo scales down to 2000 px fine) yet refuses decompression bombs outright.
MAX_INPUT_PIXELS = 40_000_000


class UnusableImage(UserFacingError):
    """The picture cannot be used and cannot be repaired. str() names the rule and the value, e.g.
    'image 300x500: each side must be at least 360 px', then lists the formats the bot takes on
    a second line; the attributes keep the English words."""

    def __init__(self, subject: Message, value: str, rule: Message) -> None:
        super().__init__("input_image.unusable", subject=subject, value=value, rule=rule,
                         accepted=ACCEPTED_LIST)
        self.subject = subject.render(ENGLISH)
        self.value = value
        self.rule = rule.render(ENGLISH)


ATTACHMENT = Message("input_image.subject_attachment")
IMAGE = Message("input_image.subject_image")
ACCEPTED_LIST = Message("input_image.accepted_formats")
