"""Input pictures for /animate: read the real format from the bytes, check them against EvoLink's
image-to-video rules, and repair what can be repaired.

EvoLink takes jpeg/png/bmp/webp of at most 10 MB, each side within 360..2000 px, and no
transparency. File names and content types given by uploaders are never trusted: Pillow reads
the bytes. A picture that already follows the rules is used as it is (EvoLink fetches it from
Discord); anything else is either repaired into a new file in the work folder, with one plain
sentence per repair for the member, or refused with an UnusableImage naming the rule and value
(and the formats the bot takes). Both are catalogue messages (bot/i18n.py), so the member reads
them in their language.

Memory: a picture may hold up to 40 megapixels, so the decoded picture is the only full-size copy
ever held. Everything else (colour conversion, 16-bit tones, transparency) happens on bands of
rows while scaling down, or on the scaled-down result; JPEGs are decoded at a reduced scale
straight away when they must shrink anyway.
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
from typing import cast
from uuid import uuid4

import pillow_heif
from PIL import ExifTags, Image, ImageMath

from bot.errors import UserFacingError
from bot.i18n import ENGLISH, Message
from bot.media import megabytes

log = logging.getLogger(__name__)

# iPhone photos (HEIC) read through the pillow-heif plugin; registered once, here, where input
# pictures are read. The bot never uses a HEIF file's thumbnails, depth maps or auxiliary images:
# not parsing them leaves less of a stranger's file to trust. AVIF is Pillow's own plugin.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

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

# Photos in a lossy format become JPEG when they must be rewritten: a lossless PNG of them would
# be several times larger for nothing. Everything else becomes PNG.
_PHOTO_FORMATS = frozenset({"JPEG", "HEIF", "AVIF"})

_CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "WEBP": "webp"}
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

# Scaling works on bands of about this many source pixels: each band is converted (to RGBA,
# say, 4 bytes a pixel) and scaled on its own, so a few such bands are all the extra memory.
# Smaller bands save little more (the scaled result and its writing remain) and repeat more of
# the rows the filter reads on both sides of each band.
_BAND_PIXELS = 1_000_000
_LANCZOS_SUPPORT = 3.0  # source pixels each side of a sample, per unit of scale (Pillow's filter)

_GREY_DEEP_MODES = ("I", "F")  # and every "I;16..." mode: one channel of more than 8 bits


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
    with _open_decoded(source, name) as decoded:
        return _prepare(decoded, source, source_size, work_dir)


# --- Reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decoded:
    image: Image.Image
    several_frames: bool        # an animation or several pages: only the first is decoded
    stored_size: tuple[int, int]  # from the header; `image` may be smaller (see _decode_smaller)
    stored_bits: int | None     # bits a sample in the file, when the layout says (see _stored_bits)


@contextmanager
def _open_decoded(source: Path, name: str) -> Iterator[_Decoded]:
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
            _decode_smaller(image)
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


def _decode_smaller(image: Image.Image) -> None:
    """A JPEG that must shrink anyway can be decoded at 1/2, 1/4 or 1/8 of its size (libjpeg
    scales while decoding, never below what is asked): a 40 MP photo then takes a quarter of the
    memory. Other formats ignore the request. The scale is the same for both sides, so the size
    asked is right whatever the EXIF orientation."""
    width, height = image.size
    if max(width, height) <= MAX_SIDE:
        return
    scale = MAX_SIDE / max(width, height)
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


def _prepare(decoded: _Decoded, source: Path, source_size: int, work_dir: Path) -> PreparedImage:
    image = decoded.image
    # Some phone cameras write a JPEG with a second picture appended (MPO): it is a valid JPEG,
    # and its extra frame is a preview or depth map, not an animation.
    source_format = "JPEG" if image.format == "MPO" else (image.format or "unknown")
    orientation = _orientation(image)  # after load(): a PNG may keep its EXIF after the pixels
    stored_width, stored_height = decoded.stored_size
    sideways = orientation in _SIDEWAYS
    width, height = (stored_height, stored_width) if sideways else (stored_width, stored_height)
    target = _fitted_size(width, height)

    tones = _tones(image, decoded.stored_bits)
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

    bands = _Bands(tones, keep_small_modes=target == (width, height))
    stored_target = (target[1], target[0]) if sideways else target
    picture = _scaled(image, stored_target, bands)
    if orientation != 1:
        picture = picture.transpose(_UPRIGHT[orientation])
    picture = _without_alpha(picture, bands.lowest_alpha, changes)
    if target != (width, height):
        changes.append(Message("input_image.note_resized", before=f"{width}x{height}",
                               after=f"{target[0]}x{target[1]}"))

    output = _Output(
        stem=work_dir / f"input-{uuid4().hex}",
        source_format=source_format,
        source_size=source_size,
        untouched=untouched and target == (width, height),
        icc_profile=_matching_icc(image.info.get("icc_profile"), image.mode, picture.mode),
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    return _write(picture, changes, output)


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


# --- High bit depth --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tones:
    """How a picture of more than 8 bits a sample becomes an 8-bit one: its own lowest value
    becomes 0 and its highest 255, so a 12-bit scan (0..4095 in a 16-bit file) or a float
    picture of 0.0..0.2 keeps its full contrast instead of coming out black."""

    low: float
    high: float
    flat_grey: int  # what a picture of one single value becomes: there is no range to spread
    note: Message

    def to_eight_bit(self, band: Image.Image) -> Image.Image:
        if band.mode in ("RGB", "RGBA"):  # 16-bit colour, already cut to 8 bits by Pillow
            scale = 255 / (self.high - self.low)
            lut = [min(255, max(0, round((value - self.low) * scale))) for value in range(256)]
            return band.point(lut * 3 + (list(range(256)) if band.mode == "RGBA" else []))
        if self.high <= self.low:
            return Image.new("L", band.size, self.flat_grey)
        scale = 255 / (self.high - self.low)
        # + 0.5: converting F to L truncates (and clips to 0..255); this makes it round.
        offset = 0.5 - self.low * scale
        return band.convert("F").point(lambda value: value * scale + offset).convert("L")


def _tones(image: Image.Image, stored_bits: int | None) -> _Tones | None:
    """The tone mapping a deep picture needs, or None for an 8-bit one. Uses the real extremes
    rather than percentiles: nothing is clipped, so highlights meant to be the brightest part
    stay distinct, and an outlier can only make the picture flatter, never wrong."""
    if image.mode in ("RGB", "RGBA") and stored_bits == 16:
        lows, highs = zip(*image.getextrema()[:3], strict=True)
        low, high = min(lows), max(highs)
        if high - low in (0, 255):  # already spans the range, or one colour: leave it
            return None
        return _Tones(low, high, 0, Message("input_image.note_deep_colour"))
    if not (image.mode in ("I", "F") or image.mode.startswith("I;")):
        return None
    low, high = _grey_extremes(image)
    if image.mode == "F":
        depth = Message("input_image.depth_float")
        shown_low, shown_high = f"{low:.4g}", f"{high:.4g}"
        # One value: as its format means it, 0.0..1.0 black to white.
        flat = round(min(1.0, max(0.0, low)) * 255)
    else:
        bits = stored_bits or (32 if image.mode == "I" else 16)
        depth = Message("input_image.depth_bits", bits=bits)
        shown_low, shown_high = f"{int(low)}", f"{int(high)}"
        flat = round(min(1.0, max(0.0, low / (2**bits - 1))) * 255)
    if high > low:
        note = Message("input_image.note_deep", depth=depth, low=shown_low, high=shown_high)
    else:
        note = Message("input_image.note_deep_flat", depth=depth, value=shown_low)
    return _Tones(low, high, flat, note)


def _grey_extremes(image: Image.Image) -> tuple[float, float]:
    """The lowest and highest value, a band at a time (getextrema() does not take every 16-bit
    mode, and a float copy of the whole picture would be 4 bytes a pixel). Refuses a float
    picture holding infinities or NaN, which have no place on a scale."""
    low, high = math.inf, -math.inf
    rows = _band_rows(image.width)
    for top in range(0, image.height, rows):
        band = image.crop((0, top, image.width, min(top + rows, image.height))).convert("F")
        if image.mode == "F":
            # NaN slips through getextrema's comparisons; max(x, -1e30) turns it into -1e30,
            # which the check below then catches like an infinity.
            band = ImageMath.lambda_eval(lambda a: a["min"](a["max"](a["x"], -1e30), 1e30), x=band)
        band_low, band_high = cast(tuple[float, float], band.getextrema())  # one band: (low, high)
        low, high = min(low, band_low), max(high, band_high)
    if image.mode == "F" and (low <= -1e30 or high >= 1e30):
        raise UnusableImage(IMAGE, f"{image.width}x{image.height}", Message("input_image.rule_not_finite"))
    return low, high


# --- Scaling, a band of rows at a time --------------------------------------------------------


class _Bands:
    """Turns a band of the decoded picture into one that scales well and that PNG and JPEG
    writers take: L or RGB, RGBA while transparency remains to be dealt with, and 1 or P only
    when no scaling follows (Pillow would quietly scale those with NEAREST). Remembers the
    lowest alpha seen, at full size, before scaling could smooth a lone see-through pixel away."""

    def __init__(self, tones: _Tones | None, *, keep_small_modes: bool) -> None:
        self.tones = tones
        self.keep_small_modes = keep_small_modes
        self.lowest_alpha: int | None = None  # None: no transparency data

    def convert(self, band: Image.Image) -> Image.Image:
        if self.tones is not None:
            band = self.tones.to_eight_bit(band)
            if band.mode == "L":
                return band
        if band.has_transparency_data:
            if band.mode == "La":  # premultiplied grey: Pillow has no direct route to RGBA
                band = band.convert("LA")
            if band.mode != "RGBA":
                band = band.convert("RGBA")
            extremes = cast(tuple[tuple[int, int], ...], band.getextrema())  # RGBA: (low, high) per band
            low = extremes[3][0]
            self.lowest_alpha = low if self.lowest_alpha is None else min(self.lowest_alpha, low)
            return band
        if band.mode in ("L", "RGB") or (self.keep_small_modes and band.mode in ("1", "P")):
            return band
        return band.convert("L" if band.mode == "1" else "RGB")


def _band_rows(width: int) -> int:
    return max(1, _BAND_PIXELS // max(1, width))


def _scaled(image: Image.Image, size: tuple[int, int], bands: _Bands) -> Image.Image:
    """`image` converted by `bands` and scaled to `size` with LANCZOS. Works on bands of rows,
    each cut with the margin the filter reaches into, so the result is the one a whole-picture
    resize would give (but for rounding between Pillow's two passes, which it may run in the
    other order on a band) without ever holding a converted full-size copy."""
    if image.size == size:
        return bands.convert(image)  # at most 2000x2000: small enough to convert whole
    width, height = image.size
    row_scale = height / size[1]
    margin = math.ceil(_LANCZOS_SUPPORT * max(row_scale, 1.0)) + 2
    rows_out = max(1, math.floor(_band_rows(width) / row_scale))
    result: Image.Image | None = None
    for top in range(0, size[1], rows_out):
        bottom = min(top + rows_out, size[1])
        first, last = top * row_scale, bottom * row_scale  # the source rows these output rows cover
        cut_top = max(0, math.floor(first) - margin)
        cut_bottom = min(height, math.ceil(last) + margin)
        band = bands.convert(image.crop((0, cut_top, width, cut_bottom)))
        scaled = band.resize((size[0], bottom - top), Image.Resampling.LANCZOS,
                             box=(0, first - cut_top, width, last - cut_top))
        if result is None:
            result = Image.new(scaled.mode, size)
        result.paste(scaled, (0, top))
    assert result is not None
    return result


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


# --- Writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Output:
    stem: Path             # the new file's path without its extension
    source_format: str
    source_size: int
    untouched: bool        # same pixels as the source: here only for its format or its size
    icc_profile: bytes | None


def _write(picture: Image.Image, changes: list[Message], output: _Output) -> PreparedImage:
    """Encode the picture: photos (JPEG, HEIC, AVIF) become JPEG (a lossless copy of them would
    only bloat), anything else becomes PNG. When that is over MAX_INPUT_BYTES, fall back to JPEG
    at falling qualities."""
    png_size = None
    # An untouched PNG is here only for being too big, and the same pixels as PNG again would be
    # about as big: straight to JPEG then. An untouched BMP, say, may well fit as PNG.
    photo = output.source_format in _PHOTO_FORMATS
    if not photo and not (output.untouched and output.source_format == "PNG"):
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
    if photo and output.source_format != "JPEG":
        changes.append(Message("input_image.note_converted_jpeg", format=output.source_format))
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
    """Why the member gets a JPEG, when size was the reason; None when it was not (a photo that
    was repaired or converted and fitted at the first quality)."""
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
