"""Result videos: checks that a download really is an MP4, and re-encoding one to fit Discord's
upload limit.

Everything heavy runs in an ffmpeg child process (never a shell, never in the event loop), and a
video is only ever handled as a file on disk: Python never holds its bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bot.i18n import ENGLISH, Message

# Aim below the limit: the MP4 container, the audio track and the encoder's small overshoot all
# have to fit in what is left.
TARGET_FRACTION = 0.91
AUDIO_BPS = 96_000
# Below this much video bitrate even 360p is a smeared mess: better to post a link.
MIN_VIDEO_BPS = 150_000
# Second try when the first encode still came out too big.
RETRY_BITRATE_FACTOR = 0.75

# (minimum video bitrate, height cap): the first rung whose bitrate we can afford wins.
# None keeps the source height. H.264 at these rates looks decent for Wan's smooth footage.
SCALE_LADDER: tuple[tuple[int, int | None], ...] = (
    (2_500_000, None),
    (1_200_000, 720),
    (600_000, 480),
    (0, 360),
)

PROBE_TIMEOUT = 30.0
# ffmpeg's header dump is small; the cap only guards against absurd metadata.
PROBE_HEAD_BYTES = 256 * 1024
# Enough stderr to find the last error line without keeping a runaway log in memory.
STDERR_TAIL_BYTES = 4 * 1024
READ_CHUNK = 64 * 1024
# Two cores: leave the event loop some room.
THREADS = "2"


@dataclass(frozen=True)
class VideoFile:
    path: Path
    size: int  # bytes
    duration: float | None  # seconds
    width: int | None
    height: int | None
    extension: str = "mp4"


class VideoFitError(Exception):
    """A video could not be read, or could not be made to fit. str() is a short plain reason in
    English; `localized(locale)` says it in the member's language (it ends up in the sentence
    that explains why a link is posted instead of the file)."""

    def __init__(self, reason: str | Message) -> None:
        self.reason = reason
        super().__init__(reason.render(ENGLISH) if isinstance(reason, Message) else reason)

    def localized(self, locale: str | None) -> str:
        return self.reason.render(locale) if isinstance(self.reason, Message) else self.reason


def find_ffmpeg(configured: str | None = "ffmpeg") -> str | None:
    """An absolute path to the configured ffmpeg (a name on PATH or a path), or None if there is
    no such executable. Logs nothing: the caller decides how loud a missing ffmpeg is."""
    if not configured:
        return None
    # shutil.which checks a path with a directory part directly, and searches PATH otherwise.
    found = shutil.which(os.path.expanduser(configured))
    return os.path.abspath(found) if found else None


def looks_like_mp4(path: Path) -> bool:
    """True when the file starts with an ISO-BMFF 'ftyp' box, as every MP4 does. Reads 8 bytes."""
    try:
        with path.open("rb") as file:
            head = file.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == b"ftyp"


# --- running ffmpeg ---------------------------------------------------------------------------


async def _run_ffmpeg(args: list[str], *, keep_head: int = 0) -> tuple[int, str, str]:
    """Run ffmpeg with `args`; returns (exit code, first `keep_head` bytes of stderr, last line of
    stderr). stderr is read in chunks so a chatty run costs no memory. If we are cancelled (for
    instance by a timeout) the process is killed, not left running."""
    try:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise VideoFitError(Message("video.ffmpeg_not_started", error=type(exc).__name__)) from exc
    head = bytearray()
    tail = b""
    try:
        assert process.stderr is not None
        while chunk := await process.stderr.read(READ_CHUNK):
            if len(head) < keep_head:
                head += chunk[: keep_head - len(head)]
            tail = (tail + chunk)[-STDERR_TAIL_BYTES:]
        returncode = await process.wait()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    lines = tail.decode("utf-8", "replace").splitlines()
    last_line = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return returncode, head.decode("utf-8", "replace"), last_line


def _ffmpeg_path_arg(path: Path) -> str:
    # The explicit file: protocol stops ffmpeg reading a name like "concat:..." or "-x" as
    # something other than a local file.
    return "file:" + str(path.resolve())


def _plain_reason(line: str, *paths: Path) -> str:
    """ffmpeg's error line, cut short and without our temporary paths in it."""
    for path in paths:
        for text in (_ffmpeg_path_arg(path), str(path.resolve()), str(path)):
            line = line.replace(text, path.name)
    return line[:200] or "no error message"


# --- probing --------------------------------------------------------------------------------

_DURATION = re.compile(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"Stream #\d+:\d+.*?: Video: (.*)")
_AUDIO_STREAM = re.compile(r"Stream #\d+:\d+.*?: Audio: ")
# "1280x720", but not the "0x31637661" of a codec tag (a width never starts with 0).
_DIMENSIONS = re.compile(r"(?<!\w)([1-9]\d{0,4})x([1-9]\d{0,4})(?!\w)")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")


@dataclass(frozen=True)
class _Probe:
    video: VideoFile
    has_audio: bool


def _parse_probe(path: Path, size: int, stderr: str) -> _Probe:
    duration = None
    if match := _DURATION.search(stderr):
        hours, minutes, seconds = match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    width = height = None
    # The first real video stream (cover art shows up as an "attached pic" video stream).
    video_lines = [
        match.group(1)
        for match in map(_VIDEO_STREAM.search, stderr.splitlines())
        if match and "attached pic" not in match.group(1)
    ]
    if video_lines and (match := _DIMENSIONS.search(video_lines[0])):
        width, height = int(match.group(1)), int(match.group(2))
        # A phone-style rotation flag: ffmpeg turns the picture upright on encode, so report the
        # upright size (that is what the scale ladder must work with).
        rotation = _ROTATION.search(stderr)
        if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
            width, height = height, width
    return _Probe(
        video=VideoFile(path=path, size=size, duration=duration, width=width, height=height),
        has_audio=_AUDIO_STREAM.search(stderr) is not None,
    )


async def _probe(ffmpeg: str, path: Path) -> _Probe:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise VideoFitError(Message("video.file_missing")) from exc
    args = [ffmpeg, "-hide_banner", "-nostdin", "-i", _ffmpeg_path_arg(path)]
    try:
        # ffmpeg exits 1 here ("At least one output file must be specified"); we only want the
        # description of the input it prints first.
        async with asyncio.timeout(PROBE_TIMEOUT):
            _, stderr, last_line = await _run_ffmpeg(args, keep_head=PROBE_HEAD_BYTES)
    except TimeoutError as exc:
        raise VideoFitError(Message("video.probe_too_slow")) from exc
    if "Input #0" not in stderr:
        raise VideoFitError(Message("video.unreadable", detail=_plain_reason(last_line, path)))
    if not _VIDEO_STREAM.search(stderr):
        raise VideoFitError(Message("video.no_video_stream"))
    return _parse_probe(path, size, stderr)


async def probe_video(ffmpeg: str, path: Path) -> VideoFile:
    """Duration, size and dimensions from ffmpeg's own description of the file (no ffprobe
    needed); fields are None when ffmpeg does not say. Raises VideoFitError if it is unreadable."""
    return (await _probe(ffmpeg, path)).video


# --- fitting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    video_bps: int
    ladder_index: int  # rung of SCALE_LADDER in use; the retry moves one rung down


def _plan_encode(max_bytes: int, duration: float, has_audio: bool) -> _Plan:
    """Pick the video bitrate that fills about TARGET_FRACTION of max_bytes, and the scale rung it
    can afford. Raises VideoFitError when the bitrate would be too low to be worth watching."""
    total_bps = max_bytes * 8 * TARGET_FRACTION / duration
    video_bps = int(total_bps - (AUDIO_BPS if has_audio else 0))
    if video_bps < MIN_VIDEO_BPS:
        limit = _megabytes(max_bytes)
        raise VideoFitError(Message("video.not_watchable", seconds=f"{duration:.0f}", limit=limit))
    index = next(i for i, (min_bps, _) in enumerate(SCALE_LADDER) if video_bps >= min_bps)
    return _Plan(video_bps=video_bps, ladder_index=index)


def _target_height(source_height: int | None, ladder_index: int) -> str:
    """The scale filter's height: never upscale, always even (yuv420p needs even dimensions)."""
    cap = SCALE_LADDER[ladder_index][1]
    if source_height is None:
        # Unknown source height: let ffmpeg work it out per frame.
        limit = "ih" if cap is None else f"min(ih\\,{cap})"
        return f"trunc({limit}/2)*2"
    height = source_height if cap is None else min(source_height, cap)
    return str(max(2, height - height % 2))


def _encode_args(ffmpeg: str, source: Path, output: Path, probe: _Probe, plan: _Plan) -> list[str]:
    rate = f"{plan.video_bps // 1000}k"
    # A buffer of half a second of video keeps the one-pass average close to the target (a full
    # second let noisy clips overshoot by ~7%).
    buffer = f"{plan.video_bps // 2000}k"
    args = [
        ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
        "-threads", THREADS, "-i", _ffmpeg_path_arg(source),
        "-map", "0:v:0",
        "-vf", f"scale=-2:{_target_height(probe.video.height, plan.ladder_index)}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-b:v", rate, "-maxrate", rate, "-bufsize", buffer,
        "-threads", THREADS,
    ]  # fmt: skip
    if probe.has_audio:
        args += ["-map", "0:a:0", "-c:a", "aac", "-b:a", f"{AUDIO_BPS // 1000}k", "-ac", "2"]
    else:
        args += ["-an"]
    # faststart: the index goes first so Discord can play it before it has all the bytes.
    args += ["-sn", "-dn", "-map_metadata", "-1", "-movflags", "+faststart"]
    args += ["-f", "mp4", _ffmpeg_path_arg(output)]
    return args


async def _encode_once(ffmpeg: str, source: Path, probe: _Probe, plan: _Plan, work_dir: Path) -> Path:
    """One encode into a fresh file in work_dir; the file is removed if ffmpeg fails or we are
    cancelled (timeout)."""
    fd, name = tempfile.mkstemp(prefix="fit-", suffix=".mp4", dir=work_dir)
    os.close(fd)
    output = Path(name)
    try:
        returncode, _, last_line = await _run_ffmpeg(_encode_args(ffmpeg, source, output, probe, plan))
        if returncode != 0:
            detail = _plain_reason(last_line, source, output)
            raise VideoFitError(Message("video.ffmpeg_failed", detail=detail))
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    return output


async def fit_video(
    ffmpeg: str,
    source: Path,
    max_bytes: int,
    *,
    work_dir: Path,
    duration_hint: float | None = None,
    timeout: float = 300,
) -> VideoFile:
    """`source` itself when it is an MP4 that already fits; otherwise an H.264/AAC MP4 in work_dir
    re-encoded to fit under max_bytes. Raises VideoFitError (a short plain reason) when that cannot
    be done; the caller then posts a link instead. `timeout` covers the whole job."""
    try:
        async with asyncio.timeout(timeout):
            return await _fit(ffmpeg, source, max_bytes, work_dir, duration_hint)
    except TimeoutError as exc:
        raise VideoFitError(Message("video.too_slow", seconds=f"{timeout:g}")) from exc


async def _fit(
    ffmpeg: str, source: Path, max_bytes: int, work_dir: Path, duration_hint: float | None
) -> VideoFile:
    probe = await _probe(ffmpeg, source)
    # A small file in another container is still re-encoded: what we return is always an MP4.
    if probe.video.size <= max_bytes and looks_like_mp4(source):
        return probe.video
    duration = probe.video.duration or duration_hint
    if not duration or duration <= 0:
        raise VideoFitError(Message("video.length_unknown"))

    plan = _plan_encode(max_bytes, duration, probe.has_audio)
    retry = _Plan(
        video_bps=int(plan.video_bps * RETRY_BITRATE_FACTOR),
        ladder_index=min(plan.ladder_index + 1, len(SCALE_LADDER) - 1),
    )
    for attempt in (plan, retry):
        output = await _encode_once(ffmpeg, source, probe, attempt, work_dir)
        try:
            # One-pass rate control can overshoot a little: trust the real size, not the plan.
            if output.stat().st_size <= max_bytes:
                return await probe_video(ffmpeg, output)
        except BaseException:
            output.unlink(missing_ok=True)
            raise
        output.unlink(missing_ok=True)
    raise VideoFitError(Message("video.cannot_shrink", limit=_megabytes(max_bytes)))


def _megabytes(size: int) -> str:
    # Discord's "10 MB" is 10 MiB.
    return f"{size / 2**20:.1f} MB"
