"""Real sample pictures and videos for tests, made with Pillow and a real ffmpeg (no fakes: a fake
MP4 proves nothing)."""

from __future__ import annotations

import io
import shutil
import subprocess
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
