"""Video checks and fitting against a real ffmpeg on real files: nothing here is mocked."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from bot.media.video import (
    SCALE_LADDER,
    VideoFitError,
    _plan_encode,
    find_ffmpeg,
    fit_video,
    looks_like_mp4,
    probe_video,
)
from tests.media_samples import ffmpeg_for_tests, make_video

MIB = 2**20


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    return ffmpeg_for_tests()


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("samples")


# The expensive samples are made once per module.
@pytest.fixture(scope="module")
def small_video(samples) -> Path:
    return make_video(samples / "small.mp4", seconds=2, width=320, height=240)


@pytest.fixture(scope="module")
def big_720p(samples) -> Path:
    return make_video(samples / "big720.mp4", seconds=5, width=1280, height=720, megabytes=30)


@pytest.fixture(scope="module")
def big_1080p(samples) -> Path:
    return make_video(samples / "big1080.mp4", seconds=10, width=1920, height=1080, megabytes=8)


@pytest.fixture(scope="module")
def with_audio(samples) -> Path:
    return make_video(samples / "audio.mp4", seconds=3, width=640, height=360, megabytes=3, audio=True)


@pytest.fixture
def work_dir(tmp_path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def has_audio_stream(ffmpeg: str, path: Path) -> bool:
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True, check=False
    )
    return "Audio:" in result.stderr


# --- looks_like_mp4 ----------------------------------------------------------------------------


def test_looks_like_mp4_reads_the_bytes(small_video, tmp_path):
    png = tmp_path / "image.mp4"  # the name lies; the bytes decide
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    text = tmp_path / "text.mp4"
    text.write_text("not a video at all, just words")
    empty = tmp_path / "empty.mp4"
    empty.touch()

    assert looks_like_mp4(small_video)
    assert not looks_like_mp4(png)
    assert not looks_like_mp4(text)
    assert not looks_like_mp4(empty)
    assert not looks_like_mp4(tmp_path / "missing.mp4")


# --- find_ffmpeg -------------------------------------------------------------------------------


def test_find_ffmpeg(ffmpeg, tmp_path, monkeypatch):
    assert find_ffmpeg(str(tmp_path / "no-such-ffmpeg")) is None
    assert find_ffmpeg(str(tmp_path)) is None  # a directory is not an executable
    assert find_ffmpeg(None) is None

    # A bare name is looked up on PATH and comes back absolute.
    monkeypatch.setenv("PATH", os.path.dirname(ffmpeg))
    found = find_ffmpeg(os.path.basename(ffmpeg))
    assert found is not None and os.path.isabs(found)
    assert os.path.samefile(found, ffmpeg)
    assert find_ffmpeg(ffmpeg) == os.path.abspath(ffmpeg)


# --- probe_video -------------------------------------------------------------------------------


async def test_probe_reads_duration_and_size(ffmpeg, small_video, big_1080p):
    small = await probe_video(ffmpeg, small_video)
    assert small.path == small_video
    assert small.size == small_video.stat().st_size
    assert small.duration == pytest.approx(2, abs=0.2)
    assert (small.width, small.height) == (320, 240)
    assert small.extension == "mp4"

    big = await probe_video(ffmpeg, big_1080p)
    assert big.duration == pytest.approx(10, abs=0.2)
    assert (big.width, big.height) == (1920, 1080)


async def test_probe_rejects_a_file_that_is_not_a_video(ffmpeg, tmp_path):
    text = tmp_path / "result.mp4"
    text.write_text("<html>502 Bad Gateway</html>")
    with pytest.raises(VideoFitError) as caught:
        await probe_video(ffmpeg, text)
    assert str(tmp_path) not in str(caught.value)  # a plain reason, not our paths


# --- the bitrate plan (pure arithmetic) --------------------------------------------------------


def test_plan_picks_the_scale_rung_from_the_bitrate():
    heights = [height for _, height in SCALE_LADDER]
    # 10 MiB over 5 s: ~15 Mbit/s, keep the source size.
    assert heights[_plan_encode(10 * MIB, 5, has_audio=False).ladder_index] is None
    # 2 MiB over 10 s: ~1.5 Mbit/s, 720p at most.
    assert heights[_plan_encode(2 * MIB, 10, has_audio=False).ladder_index] == 720
    # 1 MiB over 10 s: ~0.8 Mbit/s, 480p at most; the audio's share comes off the video.
    plan = _plan_encode(1 * MIB, 10, has_audio=True)
    assert heights[plan.ladder_index] == 480
    assert plan.video_bps == pytest.approx(MIB * 8 * 0.91 / 10 - 96_000, abs=1)
    # 300 KB over 10 s: ~220 kbit/s, 360p.
    assert heights[_plan_encode(300_000, 10, has_audio=False).ladder_index] == 360


def test_plan_refuses_an_unwatchable_bitrate():
    with pytest.raises(VideoFitError, match="watchable"):
        _plan_encode(50_000, 10, has_audio=False)


# --- fit_video ---------------------------------------------------------------------------------


async def test_a_video_that_fits_comes_back_unchanged(ffmpeg, small_video, work_dir):
    fitted = await fit_video(ffmpeg, small_video, 10 * MIB, work_dir=work_dir)
    assert fitted.path == small_video
    assert fitted.size == small_video.stat().st_size
    assert fitted.duration == pytest.approx(2, abs=0.2)
    assert list(work_dir.iterdir()) == []


async def test_a_30mb_video_is_reencoded_under_10mib(ffmpeg, big_720p, work_dir):
    assert big_720p.stat().st_size > 25_000_000  # the sample really is over the limit

    fitted = await fit_video(ffmpeg, big_720p, 10 * MIB, work_dir=work_dir)

    assert fitted.path.parent == work_dir
    assert fitted.path.stat().st_size == fitted.size <= 10 * MIB
    assert fitted.size > 6 * MIB  # it used the room it had, not a needlessly tiny file
    assert looks_like_mp4(fitted.path)
    probed = await probe_video(ffmpeg, fitted.path)
    assert probed.duration == pytest.approx(5, abs=0.3)
    assert (probed.width, probed.height) == (1280, 720)  # ~15 Mbit/s is plenty for 720p
    assert not has_audio_stream(ffmpeg, fitted.path)
    assert list(work_dir.iterdir()) == [fitted.path]  # no leftovers from a first attempt


async def test_a_1080p_video_is_scaled_down_for_a_tight_limit(ffmpeg, big_1080p, work_dir):
    fitted = await fit_video(ffmpeg, big_1080p, 2 * MIB, work_dir=work_dir)

    assert fitted.size <= 2 * MIB
    assert fitted.height is not None and fitted.height < 1080
    assert fitted.height % 2 == 0 and fitted.width % 2 == 0
    assert fitted.width / fitted.height == pytest.approx(16 / 9, abs=0.02)
    assert fitted.duration == pytest.approx(10, abs=0.3)


async def test_the_audio_track_is_kept(ffmpeg, with_audio, work_dir):
    assert has_audio_stream(ffmpeg, with_audio)

    fitted = await fit_video(ffmpeg, with_audio, 1 * MIB, work_dir=work_dir)

    assert fitted.size <= 1 * MIB
    assert has_audio_stream(ffmpeg, fitted.path)
    assert fitted.duration == pytest.approx(3, abs=0.3)


async def test_an_impossible_target_is_refused(ffmpeg, big_1080p, work_dir):
    with pytest.raises(VideoFitError) as caught:
        await fit_video(ffmpeg, big_1080p, 50_000, work_dir=work_dir)
    assert "libx264" not in str(caught.value)  # a reason, never the command
    assert list(work_dir.iterdir()) == []


async def test_a_file_that_is_not_a_video_is_refused(ffmpeg, tmp_path, work_dir):
    text = tmp_path / "result.mp4"
    text.write_bytes(b"\x00\x01garbage" * 2_000)
    with pytest.raises(VideoFitError):
        await fit_video(ffmpeg, text, 10_000, work_dir=work_dir)
    assert list(work_dir.iterdir()) == []


async def test_an_unknown_duration_needs_a_hint(ffmpeg, tmp_path, work_dir):
    # A raw H.264 stream has no container, so ffmpeg cannot say how long it is. It is also not an
    # MP4, so it is re-encoded even though it is small: what comes back is always an MP4.
    mp4 = make_video(tmp_path / "short.mp4", seconds=2, width=320, height=240)
    raw = tmp_path / "raw.h264"
    copy_to_raw = ["-c", "copy", "-f", "h264", str(raw)]
    subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(mp4), *copy_to_raw], check=True
    )
    assert (await probe_video(ffmpeg, raw)).duration is None

    with pytest.raises(VideoFitError, match="length"):
        await fit_video(ffmpeg, raw, 10 * MIB, work_dir=work_dir)

    fitted = await fit_video(ffmpeg, raw, 10 * MIB, work_dir=work_dir, duration_hint=2)
    assert looks_like_mp4(fitted.path) and fitted.path.parent == work_dir
    assert fitted.size <= 10 * MIB
    assert (fitted.width, fitted.height) == (320, 240)


async def test_a_timeout_kills_ffmpeg_and_cleans_up(ffmpeg, big_1080p, work_dir):
    with pytest.raises(VideoFitError, match="longer than"):
        await fit_video(ffmpeg, big_1080p, 2 * MIB, work_dir=work_dir, timeout=0.5)
    assert list(work_dir.iterdir()) == []
