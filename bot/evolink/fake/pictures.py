"""The pictures the fake EvoLink serves as image results: real PNGs of the requested size, and for
an edit, the input picture visibly changed."""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageOps


@lru_cache(maxsize=32)
def render_png(width: int, height: int, seed: int = 0) -> bytes:
    """A real, non-blank PNG of exactly width x height: a 16x16 grid of colours forming a
    two-axis gradient (the blue channel varies with `seed` so images of one task differ).

    Built as a 16x16 palette image scaled up with nearest-neighbour: large flat areas in
    palette mode encode in milliseconds even at 1440x1440. No alpha channel, so it is also a
    valid video input image.
    """
    tile = Image.new("P", (16, 16))
    tile.putdata(range(256))
    palette: list[int] = []
    for i in range(256):
        x, y = i % 16, i // 16
        palette += [x * 17, y * 17, (96 + seed * 53) % 256]
    tile.putpalette(palette)
    image = tile.resize((width, height), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def render_edit(source: bytes, width: int, height: int, seed: int = 0) -> bytes:
    """An "edited" picture: the input at width x height, posterised and tinted (a different tint
    for each result of a task), so a person trying the demo sees their own picture come back
    changed. No alpha channel."""
    with Image.open(io.BytesIO(source)) as image:
        picture = ImageOps.posterize(image.convert("RGB").resize((width, height)), 3)
    tint = Image.new("RGB", (width, height), ((200 + seed * 70) % 256, (90 + seed * 40) % 256, 160))
    out = io.BytesIO()
    Image.blend(picture, tint, 0.3).save(out, "PNG", compress_level=1)
    return out.getvalue()
