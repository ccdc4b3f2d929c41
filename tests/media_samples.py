"""Real sample pictures and videos for tests, made with Pillow and a real ffmpeg (no fakes: a fake
MP4 proves nothing)."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from PIL import Image

AUDIO_BPS = 128_000


def png(width: int, height: int, mode: str = "RGB", color=(200, 120, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def ffmpeg_for_tests() -> str:
    """The system ffmpeg, else the one bundled by the imageio-ffmpeg wheel. Raises rather than
    letting tests skip: a missing ffmpeg must be noticed, not silently untested."""
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError:
        raise RuntimeError(
            "The video tests need ffmpeg. Install it with your package manager "
            "(e.g. `apt-get install ffmpeg`) or `pip install imageio-ffmpeg`."
        ) from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def make_video(
    path: Path,
    *,
    seconds: float = 5,
    width: int = 1280,
    height: int = 720,
    megabytes: float | None = None,
    audio: bool = False,
    fps: int = 24,
) -> Path:
    """Write a real, playable H.264 MP4 (testsrc2 pattern) to `path` and return it.

    With `megabytes` (10**6 bytes) the file comes out about that size (within ~10%): heavy
    per-frame noise makes the picture incompressible, so a constant high bitrate is really spent.
    Uses -preset ultrafast so even 30 MB takes a second or two on 2 cores.
    """
    args = [
        ffmpeg_for_tests(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
    ]  # fmt: skip
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-t", str(seconds), "-map", "0:v"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "2"]
    if megabytes is not None:
        video_bps = int(megabytes * 8_000_000 / seconds) - (AUDIO_BPS if audio else 0)
        # Half a second of buffer keeps the average on target; noise makes every bit needed.
        args += ["-vf", "noise=alls=60:allf=t+u"]
        args += ["-b:v", str(video_bps), "-maxrate", str(video_bps), "-bufsize", str(video_bps // 2)]
    if audio:
        args += ["-map", "1:a", "-c:a", "aac", "-b:a", str(AUDIO_BPS)]
    args += ["-movflags", "+faststart", str(path)]
    result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make the sample video: {result.stderr.strip()[-500:]}")
    return path


# --- Pictures in the formats members really post --------------------------------------------


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int, height: int) -> Image.Image:
    """An RGB picture whose pixels differ (a gradient each way) with a red square at the stored
    top-left corner, so lost, moved or turned pixels show."""
    across = Image.linear_gradient("L").rotate(90).resize((width, height))
    down = Image.linear_gradient("L").resize((width, height))
    picture = Image.merge("RGB", (across, down, Image.new("L", (width, height), 90)))
    side = min(width, height) // 4
    picture.paste((255, 0, 0), (0, 0, side, side))
    return picture


def heic(image: Image.Image, *, orientation: int = 1, quality: int = 90) -> bytes:
    """A real HEIC, encoded by libheif through pillow-heif. With an EXIF orientation it is written
    as an iPhone writes it: the turn recorded in the container (irot/imir) and in the EXIF."""
    import pillow_heif

    pillow_heif.register_heif_opener()  # for saving; options left as they are
    image = image.copy()
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.info["exif"] = exif.tobytes()
    return encoded(image, "HEIF", quality=quality)


def avif(image: Image.Image, *, orientation: int = 1, quality: int = 90) -> bytes:
    """A real AVIF, encoded by libavif through Pillow's own plugin."""
    options: dict = {"quality": quality}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif
    return encoded(image, "AVIF", **options)


def deep_grey(width: int, height: int, high: int = 4095, mode: str = "I;16") -> Image.Image:
    """A 16-bit (or 32-bit "I") grey picture whose values climb from 0 at the left to `high` at
    the right, as a 12-bit camera or scanner writes them into a 16-bit file."""
    row = [round(x * high / (width - 1)) for x in range(width)]
    wide = Image.new("I", (width, height))
    wide.putdata(row * height)
    return wide if mode == "I" else wide.convert(mode)


def float_grey(width: int, height: int, high: float = 0.2) -> Image.Image:
    """A 32-bit float picture climbing from 0.0 to `high` left to right (HDR and scientific
    tools write such TIFFs)."""
    row = [x * high / (width - 1) for x in range(width)]
    image = Image.new("F", (width, height))
    image.putdata(row * height)
    return image


def tiff(image: Image.Image, **options) -> bytes:
    return encoded(image, "TIFF", **options)


def png16_rgb(width: int, height: int, high: int = 4095) -> bytes:
    """A 16-bit-a-sample RGB PNG, written by hand (Pillow writes none): red climbs from 0 to
    `high` left to right, green from 0 to `high` top to bottom, blue stays at `high` / 2."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    reds = [round(x * high / (width - 1)) for x in range(width)]
    rows = []
    for y in range(height):
        green = round(y * high / (height - 1))
        rows.append(b"\0" + b"".join(struct.pack(">HHH", red, green, high // 2) for red in reds))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))
