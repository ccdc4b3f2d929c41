"""Input pictures for /animate and /edit: read the real format from the bytes, check them against
the model's rules (picture_rules.py), and repair what can be repaired.

EvoLink takes jpeg/png/bmp/webp of at most 10 MB, each side within the model's range (360..2000
px for a video's first frame, 384..5000 px for a picture to edit), and no transparency. File names and content types given by uploaders are never trusted: Pillow reads
the bytes. A picture that already follows the rules is used as it is (EvoLink fetches it from
Discord); anything else is either repaired into a new file in the work folder, with one plain
sentence per repair for the member, or refused with an UnusableImage naming the rule and value
(and the formats the bot takes). Both are catalogue messages (bot/i18n.py), so the member reads
them in their language.

Memory: a picture may hold up to 40 megapixels, so the decoded picture is the only full-size copy
ever held. Everything else (colour conversion, 16-bit tones, transparency) happens on bands of
rows while scaling down (picture_pixels.py), or on the scaled-down result; JPEGs are decoded at a
reduced scale straight away when they must shrink anyway. The rules and the refusal are in
picture_rules.py, the writing of the repaired file in picture_files.py.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pillow_heif
from PIL import ExifTags, Image

from bot.i18n import Message
from bot.media.picture_files import Output, PreparedImage, matching_icc, write_picture
from bot.media.picture_pixels import Bands, scaled, tone_mapping
from bot.media.picture_rules import (
    ACCEPTED_FORMATS,
    ATTACHMENT,
    IMAGE,
    MAX_INPUT_BYTES,
    MAX_INPUT_PIXELS,
    PictureRules,
    UnusableImage,
)

log = logging.getLogger(__name__)

# iPhone photos (HEIC) read through the pillow-heif plugin; registered once, here, where input
# pictures are read. The bot never uses a HEIF file's thumbnails, depth maps or auxiliary images:
# not parsing them leaves less of a stranger's file to trust. AVIF is Pillow's own plugin.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


# EPS is "decoded" by running Ghostscript on the member's file: never do that for a stranger.
_UNSAFE_FORMATS = frozenset({"EPS"})

_WHITE = (255, 255, 255)
_ORIENTATION = ExifTags.Base.Orientation
_NAME_LIMIT = 40

# How to undo each EXIF orientation (the same table as PIL.ImageOps.exif_transpose, applied here
# to the scaled-down picture rather than to the full-size one).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIDEWAYS = frozenset({5, 6, 7, 8})  # orientations that swap width and height


def prepare_input_image(source: Path, work_dir: Path, rules: PictureRules, *,
                        display_name: str = "image") -> PreparedImage:
    """Check `source` against the model's `rules`; return it as it is, or a repaired copy
    written inside `work_dir`. Raises UnusableImage when it can be neither.

    Blocking (Pillow decodes the whole picture): call it in a thread.
    """
    name = _short_name(display_name)
    source_size = source.stat().st_size
    with _open_decoded(source, name, rules.max_side) as decoded:
        return _prepare(decoded, source, source_size, work_dir, rules)


# --- Reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decoded:
    image: Image.Image
    several_frames: bool        # an animation or several pages: only the first is decoded
    stored_size: tuple[int, int]  # from the header; `image` may be smaller (see _decode_smaller)
    stored_bits: int | None     # bits a sample in the file, when the layout says (see _stored_bits)


@contextmanager
def _open_decoded(source: Path, name: str, max_side: int) -> Iterator[_Decoded]:
    """Open the picture, refuse bombs from the header, then decode its first frame fully (a
    truncated file only fails while decoding). Yields it with what the header said; closes the
    file afterwards."""
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
        stored_size = image.size
        try:
            # Asked before load(): finding out seeks to the second frame and back, which would
            # throw away a decoded first frame.
            several_frames = bool(getattr(image, "is_animated", False))
            stored_bits = _stored_bits(image)
            _decode_smaller(image, max_side)
            image.load()  # the first frame only; relies on LOAD_TRUNCATED_IMAGES being False
        except Exception as exc:  # truncated or corrupt data: OSError, SyntaxError, ValueError...
            log.info("Input %s could not be decoded: %r", name, exc)
            raise UnusableImage(ATTACHMENT, name, _UNREADABLE) from exc
        yield _Decoded(image, several_frames, stored_size, stored_bits)


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


def _decode_smaller(image: Image.Image, max_side: int) -> None:
    """A JPEG that must shrink anyway can be decoded at 1/2, 1/4 or 1/8 of its size (libjpeg
    scales while decoding, never below what is asked): a 40 MP photo then takes a quarter of the
    memory. Other formats ignore the request. The scale is the same for both sides, so the size
    asked is right whatever the EXIF orientation."""
    width, height = image.size
    if max(width, height) <= max_side:
        return
    scale = max_side / max(width, height)
    image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))


def _stored_bits(image: Image.Image) -> int | None:
    """Bits a sample as the file stores them, read from how the data is laid out ("RGB;16B",
    "I;12", ...) before decoding, since the mode does not tell: Pillow has no 16-bit colour mode
    (it keeps the high byte of each sample) and reads 12-bit or signed 16-bit greys into wider
    modes. None when the layout names no width (8 bits, or a format that does not say)."""
    for tile in getattr(image, "tile", None) or ():
        args = tile.args
        rawmode = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
        if isinstance(rawmode, str) and (found := _DEEP_LAYOUT.fullmatch(rawmode)):
            return int(found.group(1) or found.group(2))
    return None


# Greys of 12, 16 or 32 bits ("I;16B", "I;12", "I;16S"...), and 16-bit colour with its byte order
# ("RGB;16B", "RGBA;16L"); not "RGB;16" or "BGR;16", which are 5-6-5 packed 8-bit colour.
_DEEP_LAYOUT = re.compile(r"I;(\d+)[A-Z]*|RGB[AX]?;(16)[BLN]")


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


def _prepare(decoded: _Decoded, source: Path, source_size: int, work_dir: Path,
             rules: PictureRules) -> PreparedImage:
    image = decoded.image
    # Some phone cameras write a JPEG with a second picture appended (MPO): it is a valid JPEG,
    # and its extra frame is a preview or depth map, not an animation.
    source_format = "JPEG" if image.format == "MPO" else (image.format or "unknown")
    orientation = _orientation(image)  # after load(): a PNG may keep its EXIF after the pixels
    stored_width, stored_height = decoded.stored_size
    sideways = orientation in _SIDEWAYS
    width, height = (stored_height, stored_width) if sideways else (stored_width, stored_height)
    target = _fitted_size(width, height, rules)

    tones = tone_mapping(image, decoded.stored_bits)
    several_frames = decoded.several_frames and source_format != "JPEG"
    untouched = not (several_frames or orientation != 1 or tones is not None or image.has_transparency_data)
    if untouched and target == (width, height) and source_format in ACCEPTED_FORMATS \
            and source_size <= MAX_INPUT_BYTES:
        return PreparedImage(source, source_format, width, height, source_size, ())

    changes: list[Message] = []
    if several_frames:
        changes.append(Message("input_image.note_several_frames", format=source_format))
    if orientation != 1:
        changes.append(Message("input_image.note_rotated"))
    if tones is not None:
        changes.append(tones.note)

    bands = Bands(tones, keep_small_modes=target == (width, height))
    stored_target = (target[1], target[0]) if sideways else target
    picture = scaled(image, stored_target, bands)
    if orientation != 1:
        picture = picture.transpose(_UPRIGHT[orientation])
    picture = _without_alpha(picture, bands.lowest_alpha, changes)
    if target != (width, height):
        changes.append(Message("input_image.note_resized", before=f"{width}x{height}",
                               after=f"{target[0]}x{target[1]}"))

    output = Output(
        stem=work_dir / f"input-{uuid4().hex}",
        source_format=source_format,
        source_size=source_size,
        untouched=untouched and target == (width, height),
        icc_profile=matching_icc(image.info.get("icc_profile"), image.mode, picture.mode),
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    return write_picture(picture, changes, output)


def _orientation(image: Image.Image) -> int:
    """Phones store pictures sideways and record the turn in EXIF, which EvoLink may ignore.
    (HEIC records it in the container instead, and pillow-heif already applies it: it sets the
    EXIF orientation of what it decodes to 1, so such a photo is never turned twice.)"""
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # damaged camera data is no reason to refuse the picture itself
        log.info("Ignoring unreadable EXIF in an input image", exc_info=True)
        return 1
    return orientation if orientation in _UPRIGHT else 1


def _fitted_size(width: int, height: int, rules: PictureRules) -> tuple[int, int]:
    """The size to send: unchanged when within the limits, else scaled down so the long side is
    the model's largest. Refuses pictures too small, or too narrow to survive the scaling."""
    low, high = rules.min_side, rules.max_side
    if min(width, height) < low:
        raise UnusableImage(IMAGE, f"{width}x{height}", Message("input_image.rule_min_side", min=low))
    if max(width, height) <= high:
        return width, height
    scale = high / max(width, height)
    short = max(1, round(min(width, height) * scale))
    if short < low:
        raise UnusableImage(IMAGE, f"{width}x{height}", Message(
            "input_image.rule_too_narrow", max=high, short=short, min=low))
    return (high, short) if width >= height else (short, high)


def _without_alpha(picture: Image.Image, lowest_alpha: int | None, changes: list[Message]) -> Image.Image:
    """EvoLink refuses any picture with an alpha channel, even one where nothing is see-through:
    fill transparent areas with white, or just drop a channel that is fully opaque. Done on the
    scaled-down picture: scaling premultiplies by alpha, so the result is the same as flattening
    first."""
    if picture.mode != "RGBA" or lowest_alpha is None:
        return picture
    if lowest_alpha == 255:
        changes.append(Message("input_image.note_opaque_alpha"))
        return picture.convert("RGB")
    changes.append(Message("input_image.note_transparent"))
    flat = Image.new("RGB", picture.size, _WHITE)
    flat.paste(picture, mask=picture.getchannel("A"))  # blends half-transparent edges into the white too
    return flat


__all__ = ["ACCEPTED_FORMATS", "MAX_INPUT_BYTES", "MAX_INPUT_PIXELS", "PictureRules", "PreparedImage",
           "UnusableImage", "prepare_input_image"]
