"""The fake EvoLink's task API: create image and video tasks (validated, priced and checked
against the balance), read a task, and the account's credits."""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import string
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from bot.evolink.fake.callbacks import Callbacks
from bot.evolink.fake.faults import Faults
from bot.evolink.fake.inputs import INPUT_MAX_BYTES, InputPicture, Inputs, Problem
from bot.evolink.fake.models import FakeTask
from bot.evolink.fake.validation import (
    _bool_field,
    _callback_url,
    _edit_image_urls,
    _image_urls,
    _int_field,
    _Invalid,
    _json_object,
    _model,
    _no_size,
    _prompt,
    _size,
)

IMAGE_MODEL = "wan2.5-text-to-image"
EDIT_MODEL = "wan2.5-image-to-image"
VIDEO_MODEL = "wan2.5-image-to-video"
# What the editing model accepts of each picture (EvoLink's docs), and the formats it reads.
EDIT_SIDE_RANGE = (384, 5000)
EDIT_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP"})

# Prices from the docs' public pricing; the API's credits_reserved is what clients must trust.
IMAGE_CREDITS = Decimal("1.8")  # per image
VIDEO_CREDITS_PER_SECOND = Decimal("5.1")  # at 720p
QUALITY_FACTORS = {"480p": Decimal("0.5"), "720p": Decimal("1"), "1080p": Decimal("1.67")}

_TASK_ID_CHARS = string.ascii_lowercase + string.digits


class TaskRoutes(Faults, Callbacks, Inputs):
    """POST /v1/images/generations, POST /v1/videos/generations, GET /v1/tasks/{id} and
    GET /v1/credits. A task's failure rules (faults) and its callback are applied at creation."""

    # Set up by FakeEvoLink.__init__ (server.py).
    image_seconds: float
    video_seconds: float
    image_estimate: int
    video_estimate: int
    duration_spread: float
    progress_curve_spread: float
    _random: random.Random
    starting_credits: Decimal
    key_credit_limit: Decimal
    result_link_query: str
    extra_image_results: int

    # --- inspection helpers ------------------------------------------------------------------

    def task_state(self, task_id: str) -> tuple[str, int]:
        """(status, progress) of a task right now."""
        return self.tasks[task_id].state_at(self.clock.monotonic())

    def used_credits(self) -> Decimal:
        """Credits charged so far: completed tasks (failed tasks are not charged)."""
        now = self.clock.monotonic()
        return sum(
            (t.credits_reserved for t in self.tasks.values() if t.state_at(now)[0] == "completed"),
            Decimal(0),
        )

    def _reserved_credits(self) -> Decimal:
        now = self.clock.monotonic()
        return sum(
            (
                t.credits_reserved
                for t in self.tasks.values()
                if t.state_at(now)[0] in ("pending", "processing")
            ),
            Decimal(0),
        )

    # --- API routes ---------------------------------------------------------------------------

    async def _create_image(self, request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            if body.get("model") == EDIT_MODEL:  # one endpoint, two models (EvoLink's docs)
                return await self._create_edit(request, body)
            _model(body, IMAGE_MODEL)
            prompt = _prompt(body, 2000)
            width, height = _size(body)
            n = _int_field(body, "n", default=1, allowed=range(1, 5))
            prompt_extend = _bool_field(body, "prompt_extend", default=True)
            callback_url = _callback_url(body)
        except _Invalid as exc:
            return self._error(request, 400, "invalid_request", exc.message, param=exc.param)
        return self._create_task(request, self._image_task(
            IMAGE_MODEL, prompt, n, size=(width, height), prompt_extend=prompt_extend, callback_url=callback_url))

    async def _create_edit(self, request: web.Request, body: dict) -> web.Response:
        """wan2.5-image-to-image: edit one picture, or fuse two, as the prompt says."""
        try:
            prompt = _prompt(body, 2000)
            image_urls = _edit_image_urls(body)
            _no_size(body)
            n = _int_field(body, "n", default=1, allowed=range(1, 5))
            prompt_extend = _bool_field(body, "prompt_extend", default=True)
            callback_url = _callback_url(body)
        except _Invalid as exc:
            return self._error(request, 400, "invalid_request", exc.message, param=exc.param)
        found = await asyncio.gather(*(self._input_picture(request, url) for url in image_urls))
        failure = next(filter(None, (_checked(f, _edit_problem) for f in found)), None)
        # The output follows the first picture's shape (an unchecked one: a square), and derives from it.
        first = found[0] if isinstance(found[0], InputPicture) else None
        return self._create_task(request, self._image_task(
            EDIT_MODEL, prompt, n, size=first.size if first else (1024, 1024), prompt_extend=prompt_extend,
            callback_url=callback_url, image_urls=image_urls, edit_source=first.data if first else None,
            failure=failure))

    def _image_task(self, model: str, prompt: str, n: int, **fields: Any) -> FakeTask:
        """A task of either image model: the same timing, price per image and results."""
        return FakeTask(
            id="", kind="image", model=model, prompt=prompt, created=0, started_at=0.0,
            duration=self.image_seconds, estimated_time=self.image_estimate,
            credits_reserved=IMAGE_CREDITS * n, result_count=n + self.extra_image_results, **fields,
        )

    async def _create_video(self, request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            _model(body, VIDEO_MODEL)
            prompt = _prompt(body, 1000)
            image_url = _image_urls(body)
            duration = _int_field(body, "duration", default=5, allowed=(5, 10))
            quality = body.get("quality", "720p")
            if quality not in QUALITY_FACTORS:
                raise _Invalid("quality", "quality must be one of 480p, 720p, 1080p")
            prompt_extend = _bool_field(body, "prompt_extend", default=True)
            callback_url = _callback_url(body)
        except _Invalid as exc:
            return self._error(request, 400, "invalid_request", exc.message, param=exc.param)
        credits = (VIDEO_CREDITS_PER_SECOND * duration * QUALITY_FACTORS[quality]).quantize(
            Decimal("0.01")
        )
        first_frame = _checked(await self._input_picture(request, image_url), _first_frame_problem)
        return self._create_task(
            request,
            FakeTask(
                id="",
                kind="video",
                model=VIDEO_MODEL,
                prompt=prompt,
                created=0,
                started_at=0.0,
                duration=self.video_seconds,
                estimated_time=self.video_estimate,
                credits_reserved=credits,
                result_count=1,
                video_duration=duration,
                quality=quality,
                image_url=image_url,
                prompt_extend=prompt_extend,
                callback_url=callback_url,
                failure=first_frame,
            ),
        )

    def _create_task(self, request: web.Request, task: FakeTask) -> web.Response:
        available = self.starting_credits - self.used_credits() - self._reserved_credits()
        if task.credits_reserved > available:
            return self._error(
                request, 402, "insufficient_quota", "Insufficient credits for this request"
            )
        created = int(self.clock.now().timestamp())
        suffix = "".join(secrets.choice(_TASK_ID_CHARS) for _ in range(8))
        task.id = f"task-unified-{created}-{suffix}"
        task.created = created
        task.started_at = self.clock.monotonic()
        task.result_query = self.result_link_query
        if self.duration_spread:
            task.duration *= self._random.uniform(1 - self.duration_spread, 1 + self.duration_spread)
        if self.progress_curve_spread:
            task.progress_exponent = math.exp(
                self._random.uniform(-self.progress_curve_spread, self.progress_curve_spread))
        if task.failure is None:
            task.failure = self._failure_for_prompt(task.prompt)
        self.tasks[task.id] = task
        base_url = self._public_base(request)
        if task.callback_url is not None:
            self._spawn_callback(task, base_url)
        return web.json_response(task.to_wire(task.started_at, base_url))

    async def _get_task(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        if not task_id.startswith("task-unified-"):
            return self._error(request, 400, "invalid_task_id", "Invalid task id format")
        task = self.tasks.get(task_id)
        if task is None:
            return self._error(request, 404, "task_not_found", "Task not found or expired")
        return web.json_response(task.to_wire(self.clock.monotonic(), self._public_base(request)))

    async def _credits(self, request: web.Request) -> web.Response:
        used = self.used_credits()
        return web.json_response(
            {
                "success": True,
                "data": {
                    "user": {
                        "remaining_credits": float(self.starting_credits - used),
                        "used_credits": float(used),
                    },
                    "token": {
                        "remaining_credits": float(self.key_credit_limit - used),
                        "unlimited_credits": False,
                        "used_credits": float(used),
                    },
                },
            }
        )


def _checked(found: InputPicture | Problem | None, rule: Callable[[InputPicture], Problem | None]) -> Problem | None:
    """What a task fails with for one input: its download or decode problem, else what the model's
    rule finds (None: fine, or not readable by the fake and so unchecked)."""
    return rule(found) if isinstance(found, InputPicture) else found


def _edit_problem(picture: InputPicture) -> Problem | None:
    """wan2.5-image-to-image's rules for each picture (EvoLink's docs)."""
    low, high = EDIT_SIDE_RANGE
    width, height = picture.size
    if picture.format not in EDIT_FORMATS:
        return "image_processing_error", f"Input image format {picture.format} is not supported (jpeg, png, bmp, webp)"
    if len(picture.data) > INPUT_MAX_BYTES:
        # A fetch stops one byte past the limit: the size is then "more than", not the file's.
        return "image_too_large", f"Input image is over {INPUT_MAX_BYTES} bytes"
    if picture.transparent:
        return "image_processing_error", "Input image must not have transparency"
    if not (low <= width <= high and low <= height <= high):
        return ("image_dimension_mismatch",
                f"Input image is {width}x{height}; width and height must be within {low}..{high} px")
    return None


def _first_frame_problem(picture: InputPicture) -> Problem | None:
    """wan2.5-image-to-video's rule for its first frame, as far as the fake checks it."""
    width, height = picture.size
    if not (360 <= width <= 2000 and 360 <= height <= 2000):
        return ("image_dimension_mismatch",
                f"Input image is {width}x{height}; width and height must be within 360..2000 px")
    return None
