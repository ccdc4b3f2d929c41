"""Result images: checks that a downloaded result really is an image, and shrinking one to fit."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bot.media.downloads import DownloadError

log = logging.getLogger(__name__)

# Far above any Wan output (at most about 2.1 megapixels); refuses decompression bombs outright.
MAX_IMAGE_PIXELS = 40_000_000


@dataclass(frozen=True)
class ImageFile:
    path: Path
    format: str  # Pillow's name: PNG, JPEG, WEBP...
    width: int
    height: int
    size: int    # bytes

    @property
    def extension(self) -> str:
        return {"JPEG": "jpg"}.get(self.format, self.format.lower())


def inspect_image(path: Path) -> ImageFile:
    """Read the real format and size from the bytes (never the name or a content type), and check
    the file is a whole, sane image. Blocking: call it in a thread."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DownloadError(f"image of {width}x{height} is too large to be genuine")
            image_format = image.format or "unknown"
            # verify() checks the structure and checksums without decoding every pixel.
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DownloadError(f"result is not a valid image ({type(exc).__name__})") from exc
    return ImageFile(path, image_format, width, height, path.stat().st_size)


def shrink_to_fit(source: Path, max_bytes: int) -> ImageFile:
    """Re-encode an image that is over an upload limit as JPEG, lowering quality and then size
    until it fits. Blocking: call it in a thread."""
    target = source.with_suffix(".fit.jpg")
    with Image.open(source) as original:
        picture = original.convert("RGB")
    for scale in (1.0, 0.85, 0.7, 0.5, 0.35):
        resized = picture if scale == 1.0 else picture.resize(
            (max(1, int(picture.width * scale)), max(1, int(picture.height * scale))),
            Image.Resampling.LANCZOS,
        )
        for quality in (92, 85, 75):
            resized.save(target, "JPEG", quality=quality, optimize=True)
            size = target.stat().st_size
            if size <= max_bytes:
                log.info("Re-encoded %s as JPEG %dx%d q%d (%d bytes) to fit %d",
                         source.name, resized.width, resized.height, quality, size, max_bytes)
                return ImageFile(target, "JPEG", resized.width, resized.height, size)
    raise DownloadError(f"image cannot be made smaller than {max_bytes} bytes")
