"""A picture's pixels, a band of rows at a time: high bit depth mapped to 8 bits by the picture's
own range, colours converted, and the whole scaled down, without ever holding a converted
full-size copy (a picture may have 40 megapixels)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

from PIL import Image, ImageMath

from bot.i18n import Message
from bot.media.picture_rules import IMAGE, UnusableImage

# Scaling works on bands of about this many source pixels: each band is converted (to RGBA,
# say, 4 bytes a pixel) and scaled on its own, so a few such bands are all the extra memory.
# Smaller bands save little more (the scaled result and its writing remain) and repeat more of
# the rows the filter reads on both sides of each band.
BAND_PIXELS = 1_000_000
LANCZOS_SUPPORT = 3.0  # source pixels each side of a sample, per unit of scale (Pillow's filter)


# --- High bit depth --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tones:
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


def tone_mapping(image: Image.Image, stored_bits: int | None) -> Tones | None:
    """The tone mapping a deep picture needs, or None for an 8-bit one. Uses the real extremes
    rather than percentiles: nothing is clipped, so highlights meant to be the brightest part
    stay distinct, and an outlier can only make the picture flatter, never wrong."""
    if image.mode in ("RGB", "RGBA") and stored_bits == 16:
        lows, highs = zip(*image.getextrema()[:3], strict=True)
        low, high = min(lows), max(highs)
        if high - low in (0, 255):  # already spans the range, or one colour: leave it
            return None
        return Tones(low, high, 0, Message("input_image.note_deep_colour"))
    if not (image.mode in ("I", "F") or image.mode.startswith("I;")):
        return None
    low, high = grey_extremes(image)
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
    return Tones(low, high, flat, note)


def grey_extremes(image: Image.Image) -> tuple[float, float]:
    """The lowest and highest value, a band at a time (getextrema() does not take every 16-bit
    mode, and a float copy of the whole picture would be 4 bytes a pixel). Refuses a float
    picture holding infinities or NaN, which have no place on a scale."""
    low, high = math.inf, -math.inf
    rows = band_rows(image.width)
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


class Bands:
    """Turns a band of the decoded picture into one that scales well and that PNG and JPEG
    writers take: L or RGB, RGBA while transparency remains to be dealt with, and 1 or P only
    when no scaling follows (Pillow would quietly scale those with NEAREST). Remembers the
    lowest alpha seen, at full size, before scaling could smooth a lone see-through pixel away."""

    def __init__(self, tones: Tones | None, *, keep_small_modes: bool) -> None:
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


def band_rows(width: int) -> int:
    return max(1, BAND_PIXELS // max(1, width))


def scaled(image: Image.Image, size: tuple[int, int], bands: Bands) -> Image.Image:
    """`image` converted by `bands` and scaled to `size` with LANCZOS. Works on bands of rows,
    each cut with the margin the filter reaches into, so the result is the one a whole-picture
    resize would give (but for rounding between Pillow's two passes, which it may run in the
    other order on a band) without ever holding a converted full-size copy."""
    if image.size == size:
        return bands.convert(image)  # at most 2000x2000: small enough to convert whole
    width, height = image.size
    row_scale = height / size[1]
    margin = math.ceil(LANCZOS_SUPPORT * max(row_scale, 1.0)) + 2
    rows_out = max(1, math.floor(band_rows(width) / row_scale))
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
