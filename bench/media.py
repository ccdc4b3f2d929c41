"""The video files the fake EvoLink serves during a benchmark."""

from __future__ import annotations

import struct
from pathlib import Path

from tests.media_samples import make_video

MB = 1_000_000


def small_video(folder: Path) -> Path:
    """A real 5 s 640x360 H.264 clip (a few hundred KB): what most video results look like once
    shrunk, posted as it is."""
    return make_video(folder / "small.mp4", seconds=5, width=640, height=360)


def padded_video(folder: Path, megabytes: int) -> Path:
    """A `megabytes` MB MP4: a real 5 s clip followed by a `free` box of zeros (a box players
    skip). The bot must download, store and check every byte and have ffmpeg re-encode it for
    Discord, as with any result over the upload limit; the padding keeps ffmpeg's share to
    seconds on two cores, so the figure is about the bot's own memory."""
    clip = make_video(folder / "clip.mp4", seconds=5, width=1280, height=720)
    path = folder / f"video-{megabytes}mb.mp4"
    padding = megabytes * MB - clip.stat().st_size
    with path.open("wb") as out:
        out.write(clip.read_bytes())
        out.write(struct.pack(">I4s", padding, b"free"))
        chunk = bytes(MB)
        left = padding - 8
        while left > 0:
            out.write(chunk[:min(MB, left)])
            left -= MB
    return path
