"""Writing a repaired picture the way EvoLink takes it: PNG, or JPEG for photos and for what would
not fit 10 MB otherwise, with one plain sentence when the size was why."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bot.i18n import ENGLISH, Message
from bot.media import megabytes
from bot.media.picture_rules import IMAGE, MAX_INPUT_BYTES, UnusableImage

log = logging.getLogger(__name__)

# Falling qualities for a JPEG that must fit MAX_INPUT_BYTES. A 2000x2000 picture of pure noise
# is about 3.3 MB at 92, so the later steps exist only as a safety net.
JPEG_QUALITIES = (92, 85, 75, 60, 45)

# Photos in a lossy format become JPEG when they must be rewritten: a lossless PNG of them would
# be several times larger for nothing. Everything else becomes PNG.
PHOTO_FORMATS = frozenset({"JPEG", "HEIF", "AVIF"})

_CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "WEBP": "webp"}


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


@dataclass(frozen=True)
class Output:
    stem: Path             # the new file's path without its extension
    source_format: str
    source_size: int
    untouched: bool        # same pixels as the source: here only for its format or its size
    icc_profile: bytes | None


def write_picture(picture: Image.Image, changes: list[Message], output: Output) -> PreparedImage:
    """Encode the picture: photos (JPEG, HEIC, AVIF) become JPEG (a lossless copy of them would
    only bloat), anything else becomes PNG. When that is over MAX_INPUT_BYTES, fall back to JPEG
    at falling qualities."""
    png_size = None
    # An untouched PNG is here only for being too big, and the same pixels as PNG again would be
    # about as big: straight to JPEG then. An untouched BMP, say, may well fit as PNG.
    photo = output.source_format in PHOTO_FORMATS
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
    sizes = write_jpeg(picture, path, output.icc_profile)
    size = sizes[-1]
    if photo and output.source_format != "JPEG":
        changes.append(Message("input_image.note_converted_jpeg", format=output.source_format))
    shrunk = shrink_sentence(output, png_size, sizes)
    if shrunk:
        changes.append(shrunk)
    log.info("Input written as JPEG after %d tries: %d bytes (source %d bytes)",
             len(sizes), size, output.source_size)
    return PreparedImage(path, "JPEG", *picture.size, size, tuple(changes))


def write_jpeg(picture: Image.Image, path: Path, icc_profile: bytes | None) -> list[int]:
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


def shrink_sentence(output: Output, png_size: int | None, jpeg_sizes: list[int]) -> Message | None:
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


def matching_icc(icc_profile: bytes | None, source_mode: str, output_mode: str) -> bytes | None:
    """Keep the colour profile (phones shoot Display P3) only when the output is in the colour
    space it describes: a CMYK profile on RGB pixels would be worse than none."""
    family = {"1": "grey", "L": "grey", "LA": "grey", "La": "grey", "I": "grey", "I;16": "grey",
              "F": "grey", "RGB": "rgb", "RGBA": "rgb", "RGBa": "rgb", "RGBX": "rgb", "P": "rgb",
              "PA": "rgb"}
    source_family = family.get(source_mode, "grey" if source_mode.startswith("I;16") else None)
    if not icc_profile or source_family is None or source_family != family.get(output_mode):
        return None
    return icc_profile
