"""What differs between an image job, an edit job and a video job: the create call, the polling
cadence, how a downloaded result is checked, and what is charged. The runner does the rest the
same way."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bot.evolink.client import EvoLinkClient
from bot.evolink.models import Task
from bot.jobs.polling import IMAGE_POLLING, VIDEO_POLLING, PollPolicy
from bot.jobs.store import JobKind
from bot.media.downloads import DownloadError
from bot.media.images import inspect_image
from bot.media.video import looks_like_mp4
from bot.pricing import Prices
from bot.requests import EditRequest, ImageRequest, VideoRequest


@dataclass(frozen=True)
class ResultFile:
    """A downloaded result, checked to be what it claims, waiting to be posted."""

    kind: JobKind
    path: Path
    size: int
    extension: str
    source_url: str  # EvoLink's link (lives 24 hours): the fallback when the file cannot be posted
    width: int | None = None
    height: int | None = None


class JobKindRules(Protocol):
    # Read-only: the rules of a kind are fixed for the life of the bot.
    @property
    def kind(self) -> JobKind: ...

    @property
    def polling(self) -> PollPolicy: ...

    @property
    def deadline(self) -> float:
        """Seconds from acceptance before the job is given up."""
        ...

    def estimate(self, request: dict[str, Any]) -> int: ...

    async def create(self, evolink: EvoLinkClient, request: dict[str, Any],
                     callback_url: str | None = None) -> Task: ...

    async def check_result(self, path: Path, source_url: str) -> ResultFile: ...

    def charge(self, request: dict[str, Any], results: list[ResultFile]) -> int: ...


@dataclass(frozen=True)
class ImageJobRules:
    prices: Prices
    deadline: float
    polling: PollPolicy = IMAGE_POLLING
    kind: JobKind = JobKind.IMAGE

    def estimate(self, request: dict[str, Any]) -> int:
        return self.price(request["n"])

    async def create(self, evolink: EvoLinkClient, request: dict[str, Any],
                     callback_url: str | None = None) -> Task:
        image = ImageRequest.from_dict(request)
        return await evolink.create_image_task(
            prompt=image.prompt, size=image.size, n=image.n, prompt_extend=image.prompt_extend,
            callback_url=callback_url,
        )

    async def check_result(self, path: Path, source_url: str) -> ResultFile:
        image = await asyncio.to_thread(inspect_image, path)
        return ResultFile(self.kind, path, image.size, image.extension, source_url,
                          image.width, image.height)

    def charge(self, request: dict[str, Any], results: list[ResultFile]) -> int:
        # Pre-charged for n, charged for the images actually produced: never for more than n,
        # whatever EvoLink returns (the ledger also caps a settlement at its reservation).
        return self.price(min(len(results), request["n"]))

    def price(self, images: int) -> int:
        return self.prices.image_estimate(images)


@dataclass(frozen=True)
class EditJobRules(ImageJobRules):
    """An edit makes images as /imagine does (same polling, checks and charging by the images
    made), from one or two pictures, at the edit price."""

    kind: JobKind = JobKind.EDIT

    async def create(self, evolink: EvoLinkClient, request: dict[str, Any],
                     callback_url: str | None = None) -> Task:
        edit = EditRequest.from_dict(request)
        return await evolink.create_edit_task(
            prompt=edit.prompt, image_urls=edit.image_urls, n=edit.n, prompt_extend=edit.prompt_extend,
            callback_url=callback_url,
        )

    def price(self, images: int) -> int:
        return self.prices.edit_estimate(images)


@dataclass(frozen=True)
class VideoJobRules:
    prices: Prices
    deadline: float
    polling: PollPolicy = VIDEO_POLLING
    kind: JobKind = JobKind.VIDEO

    def estimate(self, request: dict[str, Any]) -> int:
        return self.prices.video_estimate(request["duration"], request["quality"])

    async def create(self, evolink: EvoLinkClient, request: dict[str, Any],
                     callback_url: str | None = None) -> Task:
        video = VideoRequest.from_dict(request)
        return await evolink.create_video_task(
            prompt=video.prompt, image_url=video.image_url, duration=video.duration,
            quality=video.quality, prompt_extend=video.prompt_extend, callback_url=callback_url,
        )

    async def check_result(self, path: Path, source_url: str) -> ResultFile:
        if not await asyncio.to_thread(looks_like_mp4, path):
            raise DownloadError("the video result is not an MP4 file")
        return ResultFile(self.kind, path, path.stat().st_size, "mp4", source_url)

    def charge(self, request: dict[str, Any], results: list[ResultFile]) -> int:
        # Video is charged by duration, whatever the file turns out to be.
        return self.estimate(request)
