"""EvoLink's rules for a video's first frame, and the refusal that names the rule a picture
breaks (in the member's language, with the formats the bot takes)."""

from __future__ import annotations

from bot.errors import UserFacingError
from bot.i18n import ENGLISH, Message

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP"})  # Pillow format names
MAX_INPUT_BYTES = 10 * 1024 * 1024
MIN_SIDE = 360
MAX_SIDE = 2000

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
