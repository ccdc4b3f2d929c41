"""Option parsing and validation for generation requests: pure functions, no I/O.

Discord's client enforces option limits, but discord.py does not, and a crafted interaction can
carry anything: every rule the API has is checked again here, before anything is charged.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from bot.errors import UserFacingError
from bot.i18n import ENGLISH, CommandName, Message
from bot.units import to_milli

if TYPE_CHECKING:
    import discord

PROMPT_MAX_CHARS = 2000
VIDEO_PROMPT_MAX_CHARS = 1000
VIDEO_DURATIONS = (5, 10)
VIDEO_QUALITIES = ("480p", "720p", "1080p")
DEFAULT_VIDEO_QUALITY = "720p"
IMAGE_COUNT_RANGE = (1, 4)
DEFAULT_SIZE = "1280x1280"
MIN_PIXELS = 768 * 768
MAX_PIXELS = 1440 * 1440
MAX_ASPECT = 4  # width/height and height/width at most 4


class InvalidRequest(UserFacingError):
    """An option breaks a rule. The message names the option, the value and the rule.

    `rule` (and `value`, when it is words rather than the member's own text) is a Message, so the
    reply is in the member's language; the attributes keep the English text, for logs.
    """

    def __init__(self, option: str, value: object, rule: Message | str) -> None:
        self.option = option
        self.value = value.render(ENGLISH) if isinstance(value, Message) else value
        self.rule = rule.render(ENGLISH) if isinstance(rule, Message) else rule
        super().__init__("requests.invalid", option=CommandName(option), value=value, rule=rule)


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    width: int
    height: int
    n: int
    prompt_extend: bool

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRequest:
        return cls(**data)


@dataclass(frozen=True)
class VideoOptions:
    """What /animate asks for, before the input image is known."""

    prompt: str
    duration: int
    quality: str
    prompt_extend: bool


@dataclass(frozen=True)
class VideoRequest:
    """A complete image-to-video request: the options plus the URL EvoLink will fetch the first
    frame from (our upload on EvoLink's file host, or the Discord attachment itself)."""

    prompt: str
    duration: int
    quality: str
    prompt_extend: bool
    image_url: str
    image_width: int
    image_height: int
    input_notes: tuple[str, ...] = ()  # what was repaired in the picture, shown with the job

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoRequest:
        return cls(**{**data, "input_notes": tuple(data.get("input_notes", ()))})


@dataclass(frozen=True)
class EditOptions:
    """What /edit asks for, before its pictures are known."""

    prompt: str
    n: int
    prompt_extend: bool


@dataclass(frozen=True)
class EditRequest:
    """A complete image-to-image request: the options plus the URLs EvoLink will fetch the
    pictures from (our uploads on EvoLink's file host, or the Discord attachments themselves).
    Its output follows the first picture's shape, so it has no size of its own."""

    prompt: str
    n: int
    prompt_extend: bool
    image_urls: tuple[str, ...]
    image_sizes: tuple[tuple[int, int], ...]  # width and height of each picture, as sent
    input_notes: tuple[str, ...] = ()  # what was repaired in the pictures, shown with the job

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EditRequest:
        # Stored as JSON, whose lists come back as lists.
        return cls(**{**data, "image_urls": tuple(data["image_urls"]),
                      "image_sizes": tuple((int(w), int(h)) for w, h in data["image_sizes"]),
                      "input_notes": tuple(data.get("input_notes", ()))})


GenerationRequest = ImageRequest | VideoRequest | EditRequest


@dataclass(frozen=True)
class SizePreset:
    label: str
    width: int
    height: int

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


# Each preset obeys the API's rules (checked by a unit test); the first is the default.
SIZE_PRESETS: tuple[SizePreset, ...] = (
    SizePreset("Square 1:1", 1280, 1280),
    SizePreset("Square 1:1, small", 1024, 1024),
    SizePreset("Portrait 3:4", 1104, 1472),
    SizePreset("Landscape 4:3", 1472, 1104),
    SizePreset("Portrait 2:3", 1056, 1584),
    SizePreset("Landscape 3:2", 1584, 1056),
    SizePreset("Widescreen 16:9", 1664, 936),
    SizePreset("Vertical 9:16", 936, 1664),
    SizePreset("Cinematic 21:9", 1904, 816),
    SizePreset("Banner 4:1", 2880, 720),
)

_SIZE_PATTERN = re.compile(r"^\s*(\d{1,5})\s*[x×*]\s*(\d{1,5})\s*$", re.IGNORECASE)


def parse_size(text: str) -> tuple[int, int]:
    """'1280x1280' (also 1280*1280, 1280×1280, or a preset's label) -> (width, height), checked."""
    for preset in SIZE_PRESETS:
        if text.strip().casefold() == preset.label.casefold():
            return preset.width, preset.height
    match = _SIZE_PATTERN.match(text)
    if not match:
        raise InvalidRequest("size", _shown(text), Message("requests.size_format"))
    width, height = int(match[1]), int(match[2])
    size = f"{width}x{height}"
    if width == 0 or height == 0:
        raise InvalidRequest("size", size, Message("requests.size_positive"))
    if width > MAX_ASPECT * height or height > MAX_ASPECT * width:
        raise InvalidRequest("size", size, Message("requests.size_aspect"))
    pixels = width * height
    if not MIN_PIXELS <= pixels <= MAX_PIXELS:
        raise InvalidRequest("size", size, Message(
            "requests.size_pixels", min=f"{MIN_PIXELS:,}", max=f"{MAX_PIXELS:,}", pixels=f"{pixels:,}"))
    return width, height


def parse_prompt(text: str | None, *, max_chars: int = PROMPT_MAX_CHARS) -> str:
    prompt = (text or "").strip()
    if not prompt:
        raise InvalidRequest("prompt", Message("requests.value_empty"), Message("requests.prompt_empty"))
    if len(prompt) > max_chars:
        raise InvalidRequest("prompt", Message("requests.value_length", count=f"{len(prompt):,}"),
                             Message("requests.prompt_too_long", max=f"{max_chars:,}"))
    return prompt


def parse_image_count(n: int | None) -> int:
    if n is None:
        return 1
    low, high = IMAGE_COUNT_RANGE
    if not low <= n <= high:
        raise InvalidRequest("n", n, Message("requests.image_count", low=low, high=high))
    return n


def parse_image_request(
    prompt: str | None, size: str | None = None, n: int | None = None, prompt_extend: bool | None = None
) -> ImageRequest:
    """The options of /imagine -> an ImageRequest the API will accept, or InvalidRequest."""
    width, height = parse_size(size if size and size.strip() else DEFAULT_SIZE)
    return ImageRequest(
        prompt=parse_prompt(prompt),
        width=width,
        height=height,
        n=parse_image_count(n),
        prompt_extend=True if prompt_extend is None else prompt_extend,
    )


def parse_edit_options(prompt: str | None, n: int | str | None = None,
                       prompt_extend: bool | None = None) -> EditOptions:
    """The options of /edit (or its form, where n arrives as text) -> EditOptions."""
    if isinstance(n, str):
        text = n.strip()
        if text and not text.isdigit():
            raise InvalidRequest("n", _shown(n), Message("requests.image_count", low=IMAGE_COUNT_RANGE[0],
                                                            high=IMAGE_COUNT_RANGE[1]))
        n = int(text) if text else None
    return EditOptions(
        prompt=parse_prompt(prompt),
        n=parse_image_count(n),
        prompt_extend=True if prompt_extend is None else prompt_extend,
    )


def parse_video_options(
    prompt: str | None,
    duration: int | str | None = None,
    quality: str | None = None,
    prompt_extend: bool | None = None,
) -> VideoOptions:
    """The options of /animate (or its modal, where duration arrives as text) -> VideoOptions."""
    return VideoOptions(
        prompt=parse_prompt(prompt, max_chars=VIDEO_PROMPT_MAX_CHARS),
        duration=parse_duration(duration),
        quality=parse_quality(quality),
        prompt_extend=True if prompt_extend is None else prompt_extend,
    )


def parse_duration(value: int | str | None) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return VIDEO_DURATIONS[0]
    text = str(value).strip().lower().removesuffix("s").removesuffix(" seconds").strip()
    if not text.isdigit() or int(text) not in VIDEO_DURATIONS:
        raise InvalidRequest("duration", _shown(str(value)) if isinstance(value, str) else value,
                             Message("requests.duration"))
    return int(text)


def parse_quality(value: str | None) -> str:
    if value is None or not value.strip():
        return DEFAULT_VIDEO_QUALITY
    quality = value.strip().lower()
    if quality.isdigit():
        quality += "p"
    if quality not in VIDEO_QUALITIES:
        raise InvalidRequest("quality", _shown(value), Message("requests.quality"))
    return quality


MAX_CREDIT_AMOUNT = 1_000_000


def parse_credit_amount(value: float | int | str, *, option: str = "amount",
                        allow_negative: bool = False) -> int:
    """A number of credits typed by a moderator -> milli-credits, checked (Discord's min/max
    hints are not enforced for crafted interactions)."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(option, _shown(str(value)), Message("requests.credits_number")) from None
    if not amount.is_finite():
        raise InvalidRequest(option, value, Message("requests.credits_number"))
    low = -MAX_CREDIT_AMOUNT if allow_negative else 0
    if not low <= amount <= MAX_CREDIT_AMOUNT:
        raise InvalidRequest(option, value, Message("requests.credits_range", low=f"{low:,}",
                                                    high=f"{MAX_CREDIT_AMOUNT:,}"))
    if amount != amount.quantize(Decimal("0.001")):
        raise InvalidRequest(option, value, Message("requests.credits_decimals"))
    return to_milli(amount)


def preset_label(preset: SizePreset, locale: discord.Locale | str | None = ENGLISH) -> str:
    """A preset's label in the member's language ('Square 1:1' is '方形 1:1')."""
    slug = re.sub(r"[^a-z0-9]+", "_", preset.label.lower()).strip("_")
    return Message(f"requests.size_presets.{slug}").render(locale)


def size_suggestions(typed: str, limit: int = 25, *,
                     locale: discord.Locale | str | None = ENGLISH) -> list[tuple[str, str]]:
    """Autocomplete for the size option: (label, value) pairs in the member's language, the typed
    size first when it parses."""
    typed = typed.strip()
    suggestions: list[tuple[str, str]] = []
    if _SIZE_PATTERN.match(typed):
        try:
            width, height = parse_size(typed)
            custom = Message("requests.size_custom", size=f"{width}x{height}")
            suggestions.append((custom.render(locale), f"{width}x{height}"))
        except InvalidRequest as problem:
            # Shown as a choice so the member sees the rule while typing; picking it explains again.
            suggestions.append((problem.localized(locale)[:100], typed[:100]))
    needle = typed.casefold()
    for preset in SIZE_PRESETS:
        label = f"{preset_label(preset, locale)} ({preset.size})"
        # The English label matches too: it is what parse_size accepts typed out.
        if needle in label.casefold() or needle in preset.label.casefold():
            suggestions.append((label, preset.size))
    return suggestions[:limit]


def _shown(text: str, limit: int = 40) -> str:
    """A user's value, quoted and shortened, for an error message."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
