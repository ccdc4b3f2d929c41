"""Input pictures for /animate: read the real format from the bytes, check them against EvoLink's
image-to-video rules, and repair what can be repaired.

EvoLink takes jpeg/png/bmp/webp of at most 10 MB, each side within 360..2000 px, and no
transparency. File names and content types given by uploaders are never trusted: Pillow reads
the bytes. A picture that already follows the rules is used as it is (EvoLink fetches it from
Discord); anything else is either repaired into a new file in the work folder, with one plain
sentence per repair for the member, or refused with an UnusableImage naming the rule and value.
Both are catalogue messages (bot/i18n.py), so the member reads them in their language.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from PIL import ExifTags, Image, ImageOps

from bot.errors import UserFacingError
from bot.i18n import ENGLISH, Message
from bot.media import megabytes

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP"})  # Pillow format names
MAX_INPUT_BYTES = 10 * 1024 * 1024
MIN_SIDE = 360
MAX_SIDE = 2000

# Checked from the header before any pixel is decoded. Far above anything a repair needs (a
# 40-megapixel photo scales down to 2000 px fine) yet refuses decompression bombs outright.
MAX_INPUT_PIXELS = 40_000_000

# Falling qualities for a JPEG that must fit MAX_INPUT_BYTES. A 2000x2000 picture of pure noise
# is about 3.3 MB at 92, so the later steps exist only as a safety net.
JPEG_QUALITIES = (92, 85, 75, 60, 45)

# EPS is "decoded" by running Ghostscript on the member's file: never do that for a stranger.
_UNSAFE_FORMATS = frozenset({"EPS"})

_CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "WEBP": "webp"}
_WHITE = (255, 255, 255)
_ORIENTATION = ExifTags.Base.Orientation
_NAME_LIMIT = 40


class UnusableImage(UserFacingError):
    """The picture cannot be used and cannot be repaired. str() names the rule and the value, e.g.
    'image 300x500: each side must be at least 360 px'; the attributes keep the English words."""

    def __init__(self, subject: Message, value: str, rule: Message) -> None:
        super().__init__("input_image.unusable", subject=subject, value=value, rule=rule)
        self.subject = subject.render(ENGLISH)
        self.value = value
        self.rule = rule.render(ENGLISH)


ATTACHMENT = Message("input_image.subject_attachment")
IMAGE = Message("input_image.subject_image")


@dataclass(frozen=True)
class PreparedImage:
    path: Path              # the file to send (the source itself when nothing changed)
    format: str             # Pillow format name of `path`
    width: int
    height: int
    size: int               # bytes of `path`
    notes: tuple[Message, ...]  # one plain sentence per repair, for the member

    @property
    def changes(self) -> tuple[str, ...]:
        """The repairs in English."""
        return self.changes_in(ENGLISH)

    def changes_in(self, locale: str) -> tuple[str, ...]:
        """The repairs in the member's language."""
        return tuple(note.render(locale) for note in self.notes)

    @property
    def repaired(self) -> bool:
        """True when `path` is a new file that must be uploaded. Every repair, even one the member
        would not notice, adds a sentence, so this is exactly "there were changes"."""
        return bool(self.notes)

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self.format]

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.format]


def prepare_input_image(source: Path, work_dir: Path, *, display_name: str = "image") -> PreparedImage:
    """Check `source` against EvoLink's input rules; return it as it is, or a repaired copy
    written inside `work_dir`. Raises UnusableImage when it can be neither.

    Blocking (Pillow decodes the whole picture): call it in a thread.
    """
    name = _short_name(display_name)
    source_size = source.stat().st_size
    with _open_decoded(source, name) as (image, several_frames):
        return _prepare(image, several_frames, source, source_size, work_dir)


# --- Reading ---------------------------------------------------------------------------------


@contextmanager
def _open_decoded(source: Path, name: str) -> Iterator[tuple[Image.Image, bool]]:
    """Open the picture, refuse bombs from the header, then decode its first frame fully (a
    truncated file only fails while decoding). Yields it and whether the file holds more frames
    (animation, pages); closes the file afterwards."""
    try:
        # Pillow warns (or raises, past twice its limit) about bombs inside open(); turning the
        # warning into an error here only affects this block. catch_warnings is not thread-safe
        # in 3.11, which is why MAX_INPUT_PIXELS below is the real guard and this is a spare.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source, formats=_readable_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        log.info("Refused input %s as a decompression bomb: %s", name, exc)
        raise UnusableImage(ATTACHMENT, name, _too_many_pixels_rule()) from exc
    except Exception as exc:  # Pillow raises many types for data it cannot identify
        log.info("Input %s is not an image Pillow can identify: %r", name, exc)
        raise UnusableImage(ATTACHMENT, name, _UNREADABLE) from exc
    with image:
        _refuse_bomb(image)
        try:
            # Asked before load(): finding out seeks to the second frame and back, which would
            # throw away a decoded first frame.
            several_frames = bool(getattr(image, "is_animated", False))
            image.load()  # the first frame only; relies on LOAD_TRUNCATED_IMAGES being False
        except Exception as exc:  # truncated or corrupt data: OSError, SyntaxError, ValueError...
            log.info("Input %s could not be decoded: %r", name, exc)
            raise UnusableImage(ATTACHMENT, name, _UNREADABLE) from exc
        yield image, several_frames


_UNREADABLE = Message("input_image.rule_unreadable")


def _readable_formats() -> list[str]:
    Image.init()
    return [name for name in Image.ID if name not in _UNSAFE_FORMATS]


def _too_many_pixels_rule(megapixels: float | None = None) -> Message:
    limit = MAX_INPUT_PIXELS // 1_000_000
    if megapixels is None:
        return Message("input_image.rule_too_many_pixels", limit=limit)
    return Message("input_image.rule_too_many_pixels_at", megapixels=f"{megapixels:.1f}", limit=limit)


def _refuse_bomb(image: Image.Image) -> None:
    width, height = image.size
    if width * height > MAX_INPUT_PIXELS:
        raise UnusableImage(IMAGE, f"{width}x{height}", _too_many_pixels_rule(width * height / 1e6))


def _short_name(display_name: str) -> str:
    """The attachment's name for messages: no control characters, at most ~40 characters, and
    the extension kept since it is what the member recognises."""
    name = re.sub(r"[\x00-\x1f\x7f]", "", display_name).strip() or "image"
    if len(name) <= _NAME_LIMIT:
        return name
    stem, dot, suffix = name.rpartition(".")
    tail = f".{suffix}" if dot and stem and len(suffix) <= 10 else ""
    return name[: _NAME_LIMIT - len(tail) - 1] + "…" + tail


# --- Checking and repairing ------------------------------------------------------------------


def _prepare(
    image: Image.Image, several_frames: bool, source: Path, source_size: int, work_dir: Path
) -> PreparedImage:
    # Some phone cameras write a JPEG with a second picture appended (MPO): it is a valid JPEG,
    # and its extra frame is a preview or depth map, not an animation.
    source_format = "JPEG" if image.format == "MPO" else (image.format or "unknown")
    source_mode = image.mode
    changes: list[Message] = []

    if several_frames and source_format != "JPEG":
        changes.append(Message("input_image.note_several_frames", format=source_format))
    picture = _upright(image, changes)
    target = _fitted_size(*picture.size)
    picture = _without_alpha(picture, changes)

    untouched = not changes and target == picture.size
    if untouched and source_format in ACCEPTED_FORMATS and source_size <= MAX_INPUT_BYTES:
        return PreparedImage(source, source_format, *picture.size, source_size, ())

    if target != picture.size:
        changes.append(Message("input_image.note_resized", before=f"{picture.width}x{picture.height}",
                               after=f"{target[0]}x{target[1]}"))
        picture = _scaled(picture, target)
    picture = _eight_bit(picture)
    output = _Output(
        stem=work_dir / f"input-{uuid4().hex}",
        source_format=source_format,
        source_size=source_size,
        untouched=untouched,
        icc_profile=_matching_icc(image.info.get("icc_profile"), source_mode, picture.mode),
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    return _write(picture, changes, output)


def _upright(image: Image.Image, changes: list[Message]) -> Image.Image:
    """Phones store pictures sideways and record the turn in EXIF, which EvoLink may ignore."""
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # damaged camera data is no reason to refuse the picture itself
        log.info("Ignoring unreadable EXIF in an input image", exc_info=True)
        return image
    if orientation not in range(2, 9):
        return image
    changes.append(Message("input_image.note_rotated"))
    return ImageOps.exif_transpose(image)


def _fitted_size(width: int, height: int) -> tuple[int, int]:
    """The size to send: unchanged when within the limits, else scaled down so the long side is
    MAX_SIDE. Refuses pictures too small, or too narrow to survive the scaling."""
    if min(width, height) < MIN_SIDE:
        raise UnusableImage(IMAGE, f"{width}x{height}", Message("input_image.rule_min_side", min=MIN_SIDE))
    if max(width, height) <= MAX_SIDE:
        return width, height
    scale = MAX_SIDE / max(width, height)
    short = max(1, round(min(width, height) * scale))
    if short < MIN_SIDE:
        raise UnusableImage(IMAGE, f"{width}x{height}", Message(
            "input_image.rule_too_narrow", max=MAX_SIDE, short=short, min=MIN_SIDE))
    return (MAX_SIDE, short) if width >= height else (short, MAX_SIDE)


def _without_alpha(image: Image.Image, changes: list[Message]) -> Image.Image:
    """EvoLink refuses any picture with an alpha channel, even one where nothing is see-through:
    fill transparent areas with white, or just drop a channel that is fully opaque."""
    if not image.has_transparency_data:
        return image
    if image.mode == "La":  # premultiplied grey: Pillow has no direct route to RGBA
        image = image.convert("LA")
    rgba = image.convert("RGBA")
    alpha = rgba.getchannel("A")
    if alpha.getextrema()[0] == 255:
        changes.append(Message("input_image.note_opaque_alpha"))
        return rgba.convert("RGB")
    changes.append(Message("input_image.note_transparent"))
    flat = Image.new("RGB", rgba.size, _WHITE)
    flat.paste(rgba, mask=alpha)  # blends half-transparent edges into the white too
    return flat


def _scaled(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    # Pillow quietly uses NEAREST for palette and 1-bit pictures; convert so LANCZOS applies.
    image = _eight_bit(image)
    if image.mode == "P":
        image = image.convert("RGB")
    elif image.mode == "1":
        image = image.convert("L")
    return image.resize(size, Image.Resampling.LANCZOS)


def _eight_bit(image: Image.Image) -> Image.Image:
    """A picture in a mode PNG and JPEG writers take everywhere: 1, L, P or RGB.

    16-bit and float greys are scaled rather than clipped (plain conversion turns most of a
    16-bit picture white); colour modes like CMYK or YCbCr become RGB.
    """
    if image.mode in ("1", "L", "P", "RGB"):
        return image
    if image.mode == "F" or image.mode.startswith("I"):
        wide = image if image.mode == "F" else image.convert("I")
        high = wide.getextrema()[1]
        if high > 255:
            wide = wide.point(lambda value: value * (255 / 65535))
        elif image.mode == "F" and high <= 1.0:
            wide = wide.point(lambda value: value * 255)
        return wide.convert("L")
    return image.convert("RGB")


# --- Writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Output:
    stem: Path             # the new file's path without its extension
    source_format: str
    source_size: int
    untouched: bool        # same pixels as the source: here only for its format or its size
    icc_profile: bytes | None


def _write(picture: Image.Image, changes: list[Message], output: _Output) -> PreparedImage:
    """Encode the picture: JPEG stays JPEG (a lossless copy of it would only bloat), anything else
    becomes PNG. When that is over MAX_INPUT_BYTES, fall back to JPEG at falling qualities."""
    png_size = None
    # An untouched PNG is here only for being too big, and the same pixels as PNG again would be
    # about as big: straight to JPEG then. An untouched BMP, say, may well fit as PNG.
    if output.source_format != "JPEG" and not (output.untouched and output.source_format == "PNG"):
        path = output.stem.with_suffix(".png")
        picture.save(path, "PNG", icc_profile=output.icc_profile)
        png_size = path.stat().st_size
        if png_size <= MAX_INPUT_BYTES:
            if output.source_format != "PNG":
                changes.append(Message("input_image.note_converted", format=output.source_format))
            return PreparedImage(path, "PNG", *picture.size, png_size, tuple(changes))
        path.unlink()

    path = output.stem.with_suffix(".jpg")
    sizes = _write_jpeg(picture, path, output.icc_profile)
    size = sizes[-1]
    shrunk = _shrink_sentence(output, png_size, sizes)
    if shrunk:
        changes.append(shrunk)
    log.info("Input written as JPEG after %d tries: %d bytes (source %d bytes)",
             len(sizes), size, output.source_size)
    return PreparedImage(path, "JPEG", *picture.size, size, tuple(changes))


def _write_jpeg(picture: Image.Image, path: Path, icc_profile: bytes | None) -> list[int]:
    """Save at falling qualities until the file fits; return the size of each try."""
    if picture.mode not in ("L", "RGB"):
        picture = picture.convert("L" if picture.mode == "1" else "RGB")
    sizes: list[int] = []
    for quality in JPEG_QUALITIES:
        picture.save(path, "JPEG", quality=quality, optimize=True, icc_profile=icc_profile)
        sizes.append(path.stat().st_size)
        if sizes[-1] <= MAX_INPUT_BYTES:
            return sizes
    path.unlink()
    raise UnusableImage(IMAGE, f"{picture.width}x{picture.height}",
                        Message("input_image.rule_jpeg_too_big", limit=megabytes(MAX_INPUT_BYTES)))


def _shrink_sentence(output: _Output, png_size: int | None, jpeg_sizes: list[int]) -> Message | None:
    """Why the member gets a JPEG, when size was the reason; None when it was not (a JPEG that
    was repaired and fitted at the first quality)."""
    sent = megabytes(jpeg_sizes[-1])
    if output.untouched and output.source_size > MAX_INPUT_BYTES:
        return Message("input_image.note_shrunk", before=megabytes(output.source_size), sent=sent)
    first = png_size if png_size is not None else jpeg_sizes[0]
    if first <= MAX_INPUT_BYTES:
        return None
    kind = "PNG" if png_size is not None else "JPEG"
    return Message("input_image.note_over_limit", format=kind, size=megabytes(first),
                   limit=megabytes(MAX_INPUT_BYTES), sent=sent)


def _matching_icc(icc_profile: bytes | None, source_mode: str, output_mode: str) -> bytes | None:
    """Keep the colour profile (phones shoot Display P3) only when the output is in the colour
    space it describes: a CMYK profile on RGB pixels would be worse than none."""
    family = {"1": "grey", "L": "grey", "LA": "grey", "La": "grey", "I": "grey", "I;16": "grey",
              "F": "grey", "RGB": "rgb", "RGBA": "rgb", "RGBa": "rgb", "RGBX": "rgb", "P": "rgb",
              "PA": "rgb"}
    source_family = family.get(source_mode, "grey" if source_mode.startswith("I;16") else None)
    if not icc_profile or source_family is None or source_family != family.get(output_mode):
        return None
    return icc_profile
