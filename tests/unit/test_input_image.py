"""Input pictures for /animate: real files made with Pillow, checked and repaired for real."""

from __future__ import annotations

import os
import resource
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageCms, ImageFile, ImageStat, features

from bot.errors import UserFacingError
from bot.media import megabytes
from bot.media.input_image import (
    MAX_INPUT_BYTES,
    PreparedImage,
    UnusableImage,
    prepare_input_image,
)
from bot.media.picture_rules import PICTURE_TO_EDIT, VIDEO_FIRST_FRAME
from tests.media_samples import avif, deep_grey, float_grey, heic, photo, png16_rgb

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
UNREADABLE = "this is not a readable image, or the file is damaged"
TOO_MANY_PIXELS = "it is larger than the 40 megapixels this bot will open"
ACCEPTED = ("Pictures the bot takes: JPEG, PNG, WebP and BMP as they are; GIF, TIFF, HEIC/HEIF, AVIF "
            "and most other picture formats are converted.")


def save(folder: Path, name: str, image: Image.Image, fmt: str, **options) -> Path:
    path = folder / name
    image.save(path, fmt, **options)
    return path


def prepare(path: Path) -> PreparedImage:
    return prepare_input_image(path, path.parent / "work", VIDEO_FIRST_FRAME, display_name=path.name)


def refusal(path: Path) -> str:
    """The refusal's first line (the rule and the value); every refusal lists the formats after it."""
    with pytest.raises(UnusableImage) as caught:
        prepare(path)
    problem, accepted = str(caught.value).split("\n")
    assert accepted == ACCEPTED
    return problem


def gradient(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A picture whose pixels differ, so that lost or moved pixels would show."""
    grey = Image.linear_gradient("L").resize((width, height))
    if mode == "L":
        return grey
    return Image.merge("RGB", (grey, grey.transpose(Image.Transpose.ROTATE_90).resize((width, height)),
                               Image.new("L", (width, height), 90))).convert(mode)


def opened(prepared: PreparedImage) -> Image.Image:
    image = Image.open(prepared.path)
    image.load()
    return image


def assert_new_file(prepared: PreparedImage, fmt: str) -> Image.Image:
    """The repaired file exists in the work folder, is what it claims, and follows the rules."""
    assert prepared.repaired
    assert prepared.path.parent.name == "work"
    assert prepared.format == fmt
    assert prepared.size == prepared.path.stat().st_size <= MAX_INPUT_BYTES
    image = opened(prepared)
    assert image.format == fmt
    assert image.size == (prepared.width, prepared.height)
    assert 360 <= image.width <= 2000 and 360 <= image.height <= 2000
    assert image.mode in ("1", "L", "P", "RGB")
    assert "transparency" not in image.info
    return image


@pytest.fixture(scope="module")
def noise_png(tmp_path_factory) -> Path:
    """About 11.5 MB: random RGB noise barely compresses, so as PNG it is over the 10 MB rule."""
    folder = tmp_path_factory.mktemp("noise")
    noise = Image.frombytes("RGB", (2000, 2000), os.urandom(2000 * 2000 * 3))
    path = save(folder, "noise.png", noise, "PNG", compress_level=1)
    assert path.stat().st_size > MAX_INPUT_BYTES
    return path


# --- Used as they are ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "content_type", "extension"),
    [
        ("JPEG", "photo.jpg", "image/jpeg", "jpg"),
        ("PNG", "drawing.png", "image/png", "png"),
        ("BMP", "old.bmp", "image/bmp", "bmp"),
        ("WEBP", "web.webp", "image/webp", "webp"),
    ],
)
def test_accepted_formats_pass_unchanged(tmp_path, fmt, name, content_type, extension):
    source = save(tmp_path, name, gradient(640, 480), fmt)
    prepared = prepare(source)
    assert prepared == PreparedImage(source, fmt, 640, 480, source.stat().st_size, ())
    assert not prepared.repaired
    assert (prepared.content_type, prepared.extension) == (content_type, extension)
    assert not (tmp_path / "work").exists()


def test_the_real_format_comes_from_the_bytes_not_the_name(tmp_path):
    source = save(tmp_path, "photo.jpg", gradient(500, 500), "PNG")
    prepared = prepare(source)
    assert (prepared.path, prepared.format, prepared.extension) == (source, "PNG", "png")


def test_a_camera_jpeg_with_an_extra_picture_is_still_a_jpeg(tmp_path):
    # Pillow calls these MPO; the file is a JPEG and its second picture is not an animation.
    source = save(tmp_path, "camera.jpg", gradient(800, 600), "MPO",
                  save_all=True, append_images=[gradient(400, 300)])
    assert Image.open(source).format == "MPO"
    prepared = prepare(source)
    assert (prepared.path, prepared.format, prepared.changes) == (source, "JPEG", ())


@pytest.mark.parametrize("size", [(360, 360), (360, 2000), (2000, 360), (2000, 2000)])
def test_sides_within_360_to_2000_are_fine(tmp_path, size):
    source = save(tmp_path, "edge.png", Image.new("RGB", size, BLUE), "PNG")
    prepared = prepare(source)
    assert (prepared.path, prepared.width, prepared.height, prepared.repaired) == (source, *size, False)


def test_an_upright_exif_orientation_changes_nothing(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 1
    source = save(tmp_path, "upright.jpg", gradient(600, 400), "JPEG", exif=exif)
    assert prepare(source).path == source


# --- Refused ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(359, 800), (800, 359), (100, 100)])
def test_a_side_under_360_is_refused(tmp_path, size):
    source = save(tmp_path, "small.png", Image.new("RGB", size, RED), "PNG")
    width, height = size
    assert refusal(source) == f"image {width}x{height}: each side must be at least 360 px"


def test_too_narrow_to_scale_down_is_refused_with_the_numbers(tmp_path):
    source = save(tmp_path, "banner.png", Image.new("RGB", (4000, 500), RED), "PNG")
    assert refusal(source) == (
        "image 4000x500: scaled down to fit 2000 px its short side would be 250 px, under 360"
    )


def test_refusals_are_for_the_member(tmp_path):
    source = save(tmp_path, "small.png", Image.new("RGB", (300, 500), RED), "PNG")
    with pytest.raises(UserFacingError) as caught:
        prepare(source)
    error = caught.value
    assert isinstance(error, UnusableImage)
    assert (error.subject, error.value, error.rule) == ("image", "300x500", "each side must be at least 360 px")


def test_a_text_file_named_png_is_refused(tmp_path):
    source = tmp_path / "notes.png"
    source.write_text("shopping list: eggs, milk\n" * 20)
    assert refusal(source) == f"attachment notes.png: {UNREADABLE}"


def test_an_empty_file_is_refused(tmp_path):
    source = tmp_path / "empty.jpg"
    source.write_bytes(b"")
    assert refusal(source) == f"attachment empty.jpg: {UNREADABLE}"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_truncated_file_is_refused(tmp_path, fmt):
    # The header is intact, so it opens: only decoding every pixel finds the missing half.
    whole = save(tmp_path, "whole", Image.frombytes("RGB", (500, 500), os.urandom(500 * 500 * 3)), fmt)
    source = tmp_path / "cut.img"
    source.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert Image.open(source).size == (500, 500)
    assert refusal(source) == f"attachment cut.img: {UNREADABLE}"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_an_eps_file_is_never_handed_to_ghostscript(tmp_path):
    source = tmp_path / "poster.eps"
    source.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 400 400\nshowpage\n")
    with Image.open(source) as probe:
        assert probe.format == "EPS"  # Pillow alone would take it, and run gs to decode it
    assert refusal(source) == f"attachment poster.eps: {UNREADABLE}"


def test_a_long_file_name_is_shortened_in_the_message(tmp_path):
    source = tmp_path / ("a" * 120 + ".png")
    source.write_text("not a picture")
    message = refusal(source)
    name = message.removeprefix("attachment ").removesuffix(f": {UNREADABLE}")
    assert len(name) <= 40
    assert name.startswith("aaaa") and name.endswith("….png")


# --- Decompression bombs ---------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, width: int, height: int, *, pixel_data: bool = True) -> Path:
    """A valid 1-bit PNG of width x height, all black, a few kilobytes on disk, written by hand
    so that the test never holds the picture in memory. Without pixel data only the header is
    there: anything that decoded before checking the size would fail differently."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte, then the packed bits
    rows = [packer.compress(row) for _ in range(height)] if pixel_data else []
    data = b"".join(rows) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data)
                     + _chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(
    ("side", "message"),
    [
        # Under Pillow's own limit (89 Mpx): refused by ours, from the header, with the numbers.
        (8000, "image 8000x8000: at 64.0 megapixels it is larger than the 40 megapixels this bot will open"),
        # Over Pillow's warning limit: the warning becomes a refusal.
        (10000, f"attachment bomb.png: {TOO_MANY_PIXELS}"),
        # Over twice Pillow's limit: Pillow itself raises.
        (20000, f"attachment bomb.png: {TOO_MANY_PIXELS}"),
    ],
)
def test_decompression_bombs_are_refused_from_the_header(tmp_path, side, message):
    source = bomb_png(tmp_path / "bomb.png", side, side)
    assert source.stat().st_size < 100_000
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    assert refusal(source) == message
    assert time.perf_counter() - started < 0.5
    # Decoding would take a byte per pixel (64 to 400 MB); refusing from the header takes none.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 30 * 1024


def test_a_bomb_is_refused_before_any_decoding(tmp_path):
    source = bomb_png(tmp_path / "bomb.png", 8000, 8000, pixel_data=False)
    assert refusal(source).startswith("image 8000x8000: at 64.0 megapixels")


def test_bomb_checks_leave_pillow_settings_alone(tmp_path):
    limit = Image.MAX_IMAGE_PIXELS
    refusal(bomb_png(tmp_path / "bomb.png", 10000, 10000))
    assert Image.MAX_IMAGE_PIXELS == limit
    with pytest.warns(Image.DecompressionBombWarning):
        Image.open(tmp_path / "bomb.png").close()  # still a warning, not an error, elsewhere


# --- Repaired --------------------------------------------------------------------------------


def test_a_side_over_2000_is_scaled_down_keeping_the_ratio(tmp_path):
    source = save(tmp_path, "wide.png", gradient(2001, 1000), "PNG")
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG")
    assert image.width == 2000
    assert abs(image.height - 1000 * 2000 / 2001) <= 0.5
    assert prepared.changes == (f"your image was 2001x1000; sent as 2000x{image.height}",)


def test_a_big_jpeg_is_scaled_down_and_stays_a_jpeg(tmp_path):
    source = save(tmp_path, "big.jpg", gradient(3000, 4000), "JPEG", quality=90)
    prepared = prepare(source)
    image = assert_new_file(prepared, "JPEG")
    assert image.size == (1500, 2000)
    assert prepared.changes == ("your image was 3000x4000; sent as 1500x2000",)
    assert (prepared.content_type, prepared.extension) == ("image/jpeg", "jpg")


def test_transparent_areas_are_filled_with_white(tmp_path):
    picture = Image.new("RGBA", (400, 400), (*RED, 255))
    picture.putpixel((0, 0), (0, 0, 0, 0))
    picture.putpixel((1, 0), (0, 0, 0, 128))
    source = save(tmp_path, "sticker.png", picture, "PNG")
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG").convert("RGB")
    assert image.getpixel((0, 0)) == WHITE
    assert image.getpixel((1, 0)) == pytest.approx((127, 127, 127), abs=1)  # blended, not cut
    assert image.getpixel((200, 200)) == RED
    assert prepared.changes == ("your image had transparent areas; they were filled with white",)


def test_a_fully_opaque_alpha_channel_is_dropped(tmp_path):
    picture = gradient(500, 400, "RGBA")
    source = save(tmp_path, "opaque.png", picture, "PNG")
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG")
    assert image.mode == "RGB"
    assert image.tobytes() == picture.convert("RGB").tobytes()
    assert prepared.changes == (
        "your image had a transparency channel with nothing transparent; it was removed",
    )


def test_a_webp_with_transparency_becomes_a_png(tmp_path):
    picture = Image.new("RGBA", (400, 400), (*BLUE, 255))
    picture.paste((0, 0, 0, 0), (0, 0, 100, 100))
    source = save(tmp_path, "clip.webp", picture, "WEBP", lossless=True)
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG")
    assert image.convert("RGB").getpixel((10, 10)) == WHITE
    assert prepared.changes == (
        "your image had transparent areas; they were filled with white",
        "your WEBP was converted to PNG",
    )


def test_a_palette_png_with_a_transparent_index_is_flattened(tmp_path):
    picture = Image.new("P", (400, 400), 1)
    picture.putpalette([*GREEN, *RED] + [0] * 762)
    picture.paste(0, (0, 0, 50, 50))  # index 0 is the transparent one
    source = save(tmp_path, "palette.png", picture, "PNG", transparency=0)
    assert Image.open(source).info["transparency"] == 0
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG").convert("RGB")
    assert image.getpixel((10, 10)) == WHITE
    assert image.getpixel((200, 200)) == RED
    assert prepared.changes == ("your image had transparent areas; they were filled with white",)


def test_a_palette_png_whose_transparent_index_is_unused_loses_it(tmp_path):
    picture = Image.new("P", (400, 400), 1)
    picture.putpalette([*GREEN, *RED] + [0] * 762)
    source = save(tmp_path, "palette.png", picture, "PNG", transparency=0)
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG").convert("RGB")
    assert image.getpixel((10, 10)) == RED
    assert len(prepared.changes) == 1


def test_a_gif_is_converted_to_png(tmp_path):
    source = save(tmp_path, "still.gif", Image.new("RGB", (400, 400), RED), "GIF")
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG")
    assert image.convert("RGB").getpixel((5, 5)) == RED
    assert prepared.changes == ("your GIF was converted to PNG",)


def test_a_tiff_is_converted_to_png(tmp_path):
    picture = gradient(600, 400)
    source = save(tmp_path, "scan.tiff", picture, "TIFF")
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG")
    assert image.tobytes() == picture.tobytes()
    assert prepared.changes == ("your TIFF was converted to PNG",)


def test_a_cmyk_tiff_becomes_rgb(tmp_path):
    source = save(tmp_path, "print.tif", Image.new("CMYK", (400, 400), (0, 255, 255, 0)), "TIFF")
    image = assert_new_file(prepare(source), "PNG")
    assert image.mode == "RGB" and image.getpixel((5, 5)) == RED


def test_a_16_bit_grey_tiff_is_scaled_to_8_bits_not_clipped(tmp_path):
    wide = gradient(400, 400, "L").convert("I").point(lambda value: value * 257).convert("I;16")
    source = save(tmp_path, "deep.tif", wide, "TIFF")
    image = assert_new_file(prepare(source), "PNG")
    assert image.mode == "L"
    assert image.getextrema() == (0, 255)
    assert 100 < ImageStat.Stat(image).mean[0] < 155  # a gradient, not all white


@pytest.mark.parametrize(("fmt", "name", "options"), [
    ("GIF", "moving.gif", {}),
    ("WEBP", "moving.webp", {"lossless": True}),
    ("PNG", "moving.png", {}),  # APNG
])
def test_an_animation_keeps_its_first_frame(tmp_path, fmt, name, options):
    frames = [Image.new("RGB", (400, 400), colour) for colour in (RED, GREEN, BLUE)]
    source = save(tmp_path, name, frames[0], fmt, save_all=True, append_images=frames[1:],
                  duration=100, loop=0, **options)
    assert Image.open(source).n_frames == 3
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG")
    assert image.convert("RGB").getpixel((200, 200)) == RED
    assert prepared.changes[0] == f"your {fmt} has several frames; only the first was used"
    assert prepared.changes[1:] == (() if fmt == "PNG" else (f"your {fmt} was converted to PNG",))


def test_an_exif_rotated_photo_is_turned_upright(tmp_path):
    # Stored 400 wide and 600 high with orientation 6: shown turned a quarter clockwise, so
    # 600x400 with the stored top-left corner at the top right.
    stored = Image.new("RGB", (400, 600), BLUE)
    stored.paste(RED, (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    source = save(tmp_path, "phone.jpg", stored, "JPEG", exif=exif, quality=95)
    prepared = prepare(source)
    image = assert_new_file(prepared, "JPEG")
    assert image.size == (600, 400)
    assert image.getpixel((550, 50)) == pytest.approx(RED, abs=8)
    assert image.getpixel((50, 50)) == pytest.approx(BLUE, abs=8)
    assert image.getexif().get(0x0112, 1) == 1  # viewers must not turn it a second time
    assert prepared.changes == ("your image was stored rotated; it was turned upright",)


def test_a_repaired_photo_keeps_its_colour_profile_when_the_colours_still_match(tmp_path):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 8
    rgb = save(tmp_path, "rgb.jpg", gradient(400, 600), "JPEG", exif=exif, icc_profile=profile)
    cmyk = save(tmp_path, "cmyk.jpg", Image.new("CMYK", (400, 600)), "JPEG", exif=exif,
                icc_profile=profile)  # wrong kind of profile for RGB output: must be dropped
    assert opened(prepare(rgb)).info.get("icc_profile") == profile
    assert "icc_profile" not in opened(prepare(cmyk)).info


def test_several_repairs_are_all_reported_in_order(tmp_path):
    frames = [Image.new("RGBA", (3000, 1500), (*RED, 0)), Image.new("RGBA", (3000, 1500), (*BLUE, 255))]
    source = save(tmp_path, "party.gif", frames[0], "GIF", save_all=True, append_images=frames[1:])
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG")
    assert image.size == (2000, 1000)
    assert image.convert("RGB").getpixel((10, 10)) == WHITE
    assert prepared.changes == (
        "your GIF has several frames; only the first was used",
        "your image had transparent areas; they were filled with white",
        "your image was 3000x1500; sent as 2000x1000",
        "your GIF was converted to PNG",
    )


# --- Over 10 MB ------------------------------------------------------------------------------


def test_a_png_over_10_mb_is_sent_as_a_smaller_jpeg(noise_png):
    prepared = prepare(noise_png)
    image = assert_new_file(prepared, "JPEG")
    assert image.size == (2000, 2000)
    source_size = noise_png.stat().st_size
    assert prepared.changes == (
        f"your image was {megabytes(source_size)}; sent as a {megabytes(prepared.size)} JPEG",
    )
    assert prepared.changes[0].startswith("your image was 11.")


def test_a_repaired_picture_too_big_as_png_becomes_a_jpeg(noise_png, tmp_path):
    # A lossy WEBP that needs turning: small as it is, but its pixels are too many for a PNG.
    exif = Image.Exif()
    exif[0x0112] = 3  # upside down
    with Image.open(noise_png) as noise:
        source = save(tmp_path, "noise.webp", noise, "WEBP", quality=90, method=0, exif=exif)
    assert source.stat().st_size <= MAX_INPUT_BYTES
    prepared = prepare(source)
    assert_new_file(prepared, "JPEG")
    turned, shrunk = prepared.changes
    assert turned == "your image was stored rotated; it was turned upright"
    assert shrunk.startswith("as a PNG your image came to 11.")
    assert shrunk.endswith(f" MB, over the 10.0 MB limit; sent as a {megabytes(prepared.size)} JPEG")


def test_a_bmp_over_10_mb_fits_as_a_lossless_png(tmp_path):
    picture = gradient(2000, 2000)
    source = save(tmp_path, "huge.bmp", picture, "BMP")
    assert source.stat().st_size > MAX_INPUT_BYTES
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG")
    assert image.tobytes() == picture.tobytes()
    assert prepared.changes == ("your BMP was converted to PNG",)


# --- Big pictures: scaled down before anything else ------------------------------------------


def test_a_big_transparent_png_is_scaled_then_flattened_with_clean_edges(tmp_path):
    # Left half fully transparent (and black underneath, which must not bleed into the edge),
    # right half opaque red, with a half-transparent red column in the middle of the red.
    picture = Image.new("RGBA", (6000, 4000), (0, 0, 0, 0))
    picture.paste((*RED, 255), (3000, 0, 6000, 4000))
    picture.paste((*RED, 128), (4400, 0, 4600, 4000))
    source = save(tmp_path, "sticker.png", picture, "PNG", compress_level=1)
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG")
    assert (image.mode, image.size) == ("RGB", (2000, 1333))
    assert image.getpixel((400, 700)) == WHITE
    assert image.getpixel((1300, 700)) == RED
    assert image.getpixel((1500, 700)) == pytest.approx((255, 127, 127), abs=1)  # blended, not cut
    # Across the edge the colours go from white to red without a dark fringe: red stays full and
    # green falls from 255 to 0 (give or take the filter's ripple of a level or two).
    edge = [image.getpixel((x, 700)) for x in range(990, 1011)]
    assert all(red == 255 and green == blue for red, green, blue in edge)
    greens = [green for _, green, _ in edge]
    assert (greens[0], greens[-1]) == (255, 0)
    assert all(after <= before + 2 for before, after in zip(greens, greens[1:], strict=False))
    assert prepared.changes == (
        "your image had transparent areas; they were filled with white",
        "your image was 6000x4000; sent as 2000x1333",
    )


def test_a_big_picture_scaled_by_bands_matches_a_whole_resize(tmp_path):
    picture = gradient(4200, 3000)
    source = save(tmp_path, "scan.bmp", picture, "BMP")
    image = assert_new_file(prepare(source), "PNG")
    whole = picture.resize(image.size, Image.Resampling.LANCZOS)
    assert max(high for _, high in ImageChops.difference(image, whole).getextrema()) <= 1


def test_a_picture_with_alpha_that_is_all_opaque_loses_it_after_scaling(tmp_path):
    source = save(tmp_path, "opaque.png", gradient(4000, 3000, "RGBA"), "PNG", compress_level=1)
    prepared = prepare(source)
    assert assert_new_file(prepared, "PNG").size == (2000, 1500)
    assert prepared.changes == (
        "your image had a transparency channel with nothing transparent; it was removed",
        "your image was 4000x3000; sent as 2000x1500",
    )


def test_a_lone_see_through_pixel_still_counts_as_transparency(tmp_path):
    # Scaling would smooth it away; the check looks at the full-size picture.
    picture = Image.new("RGBA", (4000, 3000), (*BLUE, 255))
    picture.putpixel((1234, 567), (*BLUE, 0))
    prepared = prepare(save(tmp_path, "dot.png", picture, "PNG"))
    assert prepared.changes[0] == "your image had transparent areas; they were filled with white"


def test_a_big_sideways_jpeg_is_decoded_smaller_scaled_and_turned(tmp_path):
    # 4000 wide and 6000 high as stored, orientation 6: upright it is 6000x4000 with the stored
    # top-left corner (red) at the top right.
    exif = Image.Exif()
    exif[0x0112] = 6
    source = save(tmp_path, "phone.jpg", photo(4000, 6000), "JPEG", exif=exif, quality=92)
    prepared = prepare(source)
    image = assert_new_file(prepared, "JPEG")
    assert image.size == (2000, 1333)
    assert image.getpixel((1900, 100)) == pytest.approx(RED, abs=12)
    assert image.getpixel((100, 100)) != pytest.approx(RED, abs=60)
    assert prepared.changes == (
        "your image was stored rotated; it was turned upright",
        "your image was 6000x4000; sent as 2000x1333",
    )


# --- 16-bit and float pictures ---------------------------------------------------------------


def assert_full_contrast_gradient(image: Image.Image) -> None:
    """Black at the left, white at the right, climbing steadily: neither black nor washed out."""
    assert image.mode == "L"
    assert image.getextrema() == (0, 255)
    row = [image.getpixel((x, image.height // 2)) for x in range(0, image.width, max(1, image.width // 20))]
    assert row == sorted(row)
    assert 110 < ImageStat.Stat(image).mean[0] < 145


@pytest.mark.parametrize(("name", "fmt", "mode"), [
    ("scan.tif", "TIFF", "I;16"),      # little-endian 16-bit TIFF
    ("scan-mac.tif", "TIFF", "I;16B"),  # big-endian 16-bit TIFF
    ("scan.png", "PNG", "I;16"),       # 16-bit greyscale PNG
])
def test_a_12_bit_scan_in_a_16_bit_file_keeps_its_full_contrast(tmp_path, name, fmt, mode):
    source = save(tmp_path, name, deep_grey(600, 400, high=4095, mode=mode), fmt)
    with Image.open(source) as check:
        assert check.mode == mode
    prepared = prepare(source)
    assert_full_contrast_gradient(assert_new_file(prepared, "PNG"))
    assert prepared.changes[0] == (
        "your image had 16-bit values from 0 to 4095; they were spread over the full 8-bit range "
        "so it is not too dark or too pale"
    )


def test_a_32_bit_integer_tiff_keeps_its_full_contrast(tmp_path):
    source = save(tmp_path, "counts.tif", deep_grey(500, 400, high=1_000_000, mode="I"), "TIFF")
    prepared = prepare(source)
    assert_full_contrast_gradient(assert_new_file(prepared, "PNG"))
    assert prepared.changes[0].startswith("your image had 32-bit values from 0 to 1000000;")


def test_a_float_tiff_of_0_to_0_2_keeps_its_full_contrast(tmp_path):
    source = save(tmp_path, "hdr.tif", float_grey(500, 400, high=0.2), "TIFF")
    with Image.open(source) as check:
        assert check.mode == "F"
    prepared = prepare(source)
    assert_full_contrast_gradient(assert_new_file(prepared, "PNG"))
    assert prepared.changes == (
        "your image had floating-point values from 0 to 0.2; they were spread over the full 8-bit "
        "range so it is not too dark or too pale",
        "your TIFF was converted to PNG",
    )


def test_a_big_16_bit_tiff_is_mapped_by_the_range_of_the_whole_picture(tmp_path):
    # Scaled a band at a time: every band must use the whole picture's range, not its own.
    wide = deep_grey(3000, 2400, high=4095)
    wide.paste(0, (0, 0, 3000, 1200))  # the top half black: a band there has no range of its own
    source = save(tmp_path, "big.tif", wide, "TIFF")
    image = assert_new_file(prepare(source), "PNG")
    assert image.size == (2000, 1600)
    assert image.crop((0, 0, 2000, 790)).getextrema() == (0, 0)
    bottom = image.crop((0, 810, 2000, 1600))
    assert bottom.getextrema()[0] <= 1 and bottom.getextrema()[1] >= 254
    assert abs(image.getpixel((1000, 1200)) - 128) <= 3


def test_a_flat_16_bit_picture_stays_flat(tmp_path):
    source = save(tmp_path, "flat.png", Image.new("I;16", (400, 400), 65535), "PNG")
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG")
    assert image.getextrema() == (255, 255)
    assert prepared.changes == ("your image had 16-bit values, all 65535; it was converted to 8 bits",)


def test_a_flat_float_picture_stays_flat(tmp_path):
    source = save(tmp_path, "flat.tif", Image.new("F", (400, 400), 0.5), "TIFF")
    image = assert_new_file(prepare(source), "PNG")
    assert image.getextrema() == (128, 128)


@pytest.mark.parametrize("where", [(0, 0), (200, 150)])
def test_a_float_picture_with_nan_is_refused(tmp_path, where):
    picture = float_grey(400, 400)
    picture.putpixel(where, float("nan"))
    source = save(tmp_path, "nan.tif", picture, "TIFF")
    assert refusal(source) == (
        "image 400x400: some of its values are infinite or not a number, so it has no brightness "
        "range to show"
    )


def test_a_16_bit_colour_png_of_a_narrow_range_is_not_black(tmp_path):
    source = tmp_path / "deep.png"
    source.write_bytes(png16_rgb(600, 400, high=4095))
    with Image.open(source) as check:
        check.load()
        assert check.getextrema()[0] == (0, 15)  # Pillow keeps the high byte: nearly black
    prepared = prepare(source)
    image = assert_new_file(prepared, "PNG")
    assert image.mode == "RGB"
    (red_low, red_high), (green_low, green_high), _ = image.getextrema()
    assert (red_low, red_high, green_low, green_high) == (0, 255, 0, 255)
    assert image.getpixel((599, 200))[0] > image.getpixel((300, 200))[0] > image.getpixel((0, 200))[0]
    assert prepared.changes == (
        "your image had 16-bit colours using only part of their range; they were spread over the "
        "full 8-bit range",
    )


def test_a_16_bit_colour_png_using_its_whole_range_is_left_alone(tmp_path):
    source = tmp_path / "full.png"
    source.write_bytes(png16_rgb(600, 400, high=65535))
    prepared = prepare(source)
    assert (prepared.path, prepared.repaired) == (source, False)


def test_a_16_bit_bmp_is_not_taken_for_deep_colour(tmp_path):
    # 5-6-5 packed colour, 16 bits a pixel: read as ordinary 8-bit colour, nothing to spread,
    # even though its colours span only part of the range.
    width, height = 400, 400
    pixels = b"".join(struct.pack("<H", ((x // 40) << 11) | ((y // 20) << 5) | 8)
                      for y in range(height) for x in range(width))
    masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 16, 3, len(pixels), 2835, 2835, 0, 0)
    offset = 14 + len(info) + len(masks)
    source = tmp_path / "old.bmp"
    source.write_bytes(b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + masks
                       + pixels)
    with Image.open(source) as check:
        check.load()
        assert (check.format, check.mode) == ("BMP", "RGB")
        assert check.getextrema()[0][1] < 100  # a narrow range, which a 16-bit reading would spread
    prepared = prepare(source)
    assert (prepared.path, prepared.repaired) == (source, False)


# --- HEIC/HEIF and AVIF ----------------------------------------------------------------------


def test_an_iphone_heic_is_converted_to_jpeg(tmp_path):
    source = tmp_path / "IMG_0001.HEIC"
    source.write_bytes(heic(photo(800, 600)))
    prepared = prepare(source)
    image = assert_new_file(prepared, "JPEG")
    assert image.size == (800, 600)
    assert image.getpixel((50, 50)) == pytest.approx(RED, abs=12)
    assert prepared.changes == ("your HEIF was converted to JPEG",)


def test_a_big_heic_is_scaled_down(tmp_path):
    source = tmp_path / "IMG_0002.heic"
    source.write_bytes(heic(photo(2400, 1800)))
    prepared = prepare(source)
    assert assert_new_file(prepared, "JPEG").size == (2000, 1500)
    assert prepared.changes == ("your image was 2400x1800; sent as 2000x1500",
                                "your HEIF was converted to JPEG")


def test_a_heic_taken_sideways_comes_out_upright_once(tmp_path):
    # As an iPhone writes it: stored 400 wide and 600 high, the quarter turn recorded in the
    # container and in the EXIF. pillow-heif applies the container's turn and resets the EXIF,
    # so the photo is upright (600x400, the stored top-left red corner at the top right) and is
    # not turned a second time.
    source = tmp_path / "sideways.heic"
    source.write_bytes(heic(photo(400, 600), orientation=6))
    prepared = prepare(source)
    image = assert_new_file(prepared, "JPEG")
    assert image.size == (600, 400)
    assert image.getpixel((570, 30)) == pytest.approx(RED, abs=16)
    assert image.getpixel((30, 30)) != pytest.approx(RED, abs=60)
    assert prepared.changes == ("your HEIF was converted to JPEG",)


def test_an_avif_is_converted_to_jpeg(tmp_path):
    assert features.check("avif")
    source = tmp_path / "web.avif"
    source.write_bytes(avif(photo(800, 600)))
    prepared = prepare(source)
    image = assert_new_file(prepared, "JPEG")
    assert image.getpixel((50, 50)) == pytest.approx(RED, abs=12)
    assert prepared.changes == ("your AVIF was converted to JPEG",)


def test_an_avif_with_an_exif_turn_is_turned_upright(tmp_path):
    source = tmp_path / "sideways.avif"
    source.write_bytes(avif(photo(400, 600), orientation=6))
    prepared = prepare(source)
    image = assert_new_file(prepared, "JPEG")
    assert image.size == (600, 400)
    assert image.getpixel((570, 30)) == pytest.approx(RED, abs=16)
    assert prepared.changes == ("your image was stored rotated; it was turned upright",
                                "your AVIF was converted to JPEG")


@pytest.mark.parametrize(("name", "make"), [("clip.heic", heic), ("clip.avif", avif)])
def test_a_transparent_heic_or_avif_is_flattened(tmp_path, name, make):
    picture = Image.new("RGBA", (400, 400), (*BLUE, 255))
    picture.paste((0, 0, 0, 0), (0, 0, 200, 400))
    source = tmp_path / name
    source.write_bytes(make(picture))
    prepared = prepare(source)
    image = assert_new_file(prepared, "JPEG")
    assert image.getpixel((50, 200)) == pytest.approx(WHITE, abs=8)
    assert image.getpixel((350, 200)) == pytest.approx(BLUE, abs=12)
    assert prepared.changes[0] == "your image had transparent areas; they were filled with white"


def test_a_damaged_heic_is_refused_as_unreadable(tmp_path):
    whole = heic(photo(800, 600))
    source = tmp_path / "cut.heic"
    source.write_bytes(whole[: len(whole) // 2])
    assert refusal(source) == f"attachment cut.heic: {UNREADABLE}"


# --- The formats, in every refusal -----------------------------------------------------------


def test_every_refusal_lists_the_formats_in_the_members_language(tmp_path):
    source = save(tmp_path, "small.png", Image.new("RGB", (300, 500), RED), "PNG")
    with pytest.raises(UnusableImage) as caught:
        prepare(source)
    english = caught.value.localized("en-US")
    chinese = caught.value.localized("zh-CN")
    assert english == f"image 300x500: each side must be at least 360 px\n{ACCEPTED}"
    assert chinese.startswith("图片 300x500：每条边至少需要 360 像素\n")
    assert "HEIC/HEIF" in chinese and "AVIF" in chinese and "JPEG" in chinese


# -- the editing model's rules (384..5000 px) --------------------------------------------------


def test_a_picture_to_edit_keeps_sizes_a_video_frame_could_not_and_refuses_what_the_video_takes(tmp_path):
    big = save(tmp_path, "big.jpg", Image.new("RGB", (4000, 3000), RED), "JPEG")
    edited = prepare_input_image(big, tmp_path / "work", PICTURE_TO_EDIT, display_name="big.jpg")
    assert (edited.path, edited.width, edited.height, edited.changes) == (big, 4000, 3000, ())
    assert (prepare(big).width, prepare(big).height) == (2000, 1500)  # a video frame is scaled down

    small = save(tmp_path, "small.png", Image.new("RGB", (370, 500), GREEN), "PNG")
    assert prepare(small).path == small  # 370 px is enough for a video's first frame
    with pytest.raises(UnusableImage) as caught:
        prepare_input_image(small, tmp_path / "work", PICTURE_TO_EDIT, display_name="small.png")
    assert str(caught.value).splitlines()[0] == "image 370x500: each side must be at least 384 px"


def test_a_picture_to_edit_past_5000_px_is_scaled_to_5000(tmp_path):
    huge = save(tmp_path, "wide.png", Image.new("RGB", (6000, 1500), BLUE), "PNG")
    edited = prepare_input_image(huge, tmp_path / "work", PICTURE_TO_EDIT, display_name="wide.png")
    assert (edited.width, edited.height) == (5000, 1250)
    with Image.open(edited.path) as written:
        assert written.size == (5000, 1250)
