"""A fake EvoLink server: a real aiohttp app speaking the documented wire format.

Used by tests, local development and the bot's demo mode. Everything time-related goes through
an injected `Clock`, so with a `ScaledClock` a 120 s video "renders" in a fraction of a second
while the bot's cadence rules keep their proportions.

What it simulates (see docs/evolink-api.md):
- the API routes (create image/video tasks, read tasks, credits) and the files host (upload),
  with the documented validation, error bodies and an `x-request-id` on every answer;
- task progress computed from the clock at read time: pending, processing, then completed with
  result URLs served by the fake itself (real PNGs at the requested size), or failed;
- the CDN's refusal of default library User-Agents on result downloads;
- injected HTTP failures (`fail_next`, `fail_every`) and task failures (`fail_tasks_matching`);
- slow answers: create answers delayed past a client's timeout (`stall_next_create`) and result
  downloads that wait until the test lets them through (`hold_results`);
- a crowd of tasks (the load benchmark): each task's duration spread at random around the
  configured seconds (`duration_spread`), progress that rises faster or slower than linearly
  (`progress_curve_spread`), so a client's completion guess is never exact;
- callbacks: a POST of the task to its `callback_url` when it ends, retried after 1, 2 and 4 s, as
  documented. EvoLink only calls public HTTPS hosts; this fake also calls `http://` on loopback,
  because tests have no certificate. Every attempt is recorded in `callbacks`.

Not simulated: a cancel route (none is documented), result expiry after 24 hours.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import logging
import math
import random
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from PIL import Image
from yarl import URL

from bot.clock import Clock

log = logging.getLogger("bot.evolink.fake")

IMAGE_MODEL = "wan2.5-text-to-image"
VIDEO_MODEL = "wan2.5-image-to-video"

# Fractions of a task's duration: pending until PENDING_FRACTION, then processing; a task set up
# to fail fails at FAIL_FRACTION (real failures such as content policy come well before the end).
PENDING_FRACTION = 0.1
FAIL_FRACTION = 0.5

# Prices from the docs' public pricing; the API's credits_reserved is what clients must trust.
IMAGE_CREDITS = Decimal("1.8")  # per image
VIDEO_CREDITS_PER_SECOND = Decimal("5.1")  # at 720p
QUALITY_FACTORS = {"480p": Decimal("0.5"), "720p": Decimal("1"), "1080p": Decimal("1.67")}

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
UPLOAD_LIFETIME = timedelta(hours=72)

# Not a playable video: just an MP4 `ftyp` box plus an empty `free` box, so the bytes look like
# an MP4 to sniffers. ffmpeg is not guaranteed on development machines; replace with a real
# encoded clip if a consumer ever needs to decode it.
PLACEHOLDER_MP4 = (
    b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"  # ftyp: brand isom, compatible isom/iso2
    b"\x00\x00\x00\x08free"
)

# As documented: a callback is tried once, then again after 1, 2 and 4 s, each with a 10 s timeout.
CALLBACK_RETRY_DELAYS = (1.0, 2.0, 4.0)
CALLBACK_TIMEOUT = aiohttp.ClientTimeout(total=10)

_CREATE_PATHS = ("/v1/images/generations", "/v1/videos/generations")
_SIZE_RE = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")
_TASK_ID_CHARS = string.ascii_lowercase + string.digits

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDictProxy[str]  # case-insensitive: headers["authorization"] works too
    json: Any | None  # the parsed JSON body, None when absent or not JSON (e.g. uploads)
    time: float  # clock.monotonic() when received
    request_id: str  # the x-request-id the fake answered with


@dataclass
class FakeTask:
    id: str
    kind: Literal["image", "video"]
    model: str
    prompt: str
    created: int  # unix seconds, from clock.now()
    started_at: float  # clock.monotonic()
    duration: float  # seconds of clock time until completion
    estimated_time: int
    credits_reserved: Decimal
    result_count: int
    size: tuple[int, int] | None = None  # images
    video_duration: int | None = None  # videos
    quality: str | None = None
    image_url: str | None = None
    prompt_extend: bool = True
    callback_url: str | None = None  # called when the task ends
    failure: tuple[str, str] | None = None  # (code, message): the task ends failed
    result_query: str = ""  # added to each result link, e.g. "?sig=...": see result_link_query
    # Progress is share ** exponent over the processing phase: 1 rises linearly, above 1 starts
    # slow and speeds up, below 1 starts fast and slows down.
    progress_exponent: float = 1.0

    @property
    def ends_at(self) -> float:
        """The monotonic clock time at which the task becomes completed (or failed)."""
        share = FAIL_FRACTION if self.failure is not None else 1.0
        return self.started_at + share * self.duration

    def state_at(self, now: float) -> tuple[str, int]:
        """(status, progress) at monotonic clock time `now`: a pure function of elapsed time,
        so progress never goes backwards."""
        fraction = (now - self.started_at) / self.duration if self.duration > 0 else 1.0
        if self.failure is not None and fraction >= FAIL_FRACTION:
            return "failed", _progress(FAIL_FRACTION, self.progress_exponent)
        if fraction >= 1.0:
            return "completed", 100
        if fraction < PENDING_FRACTION:
            return "pending", 0
        return "processing", _progress(fraction, self.progress_exponent)

    def to_wire(self, now: float, base_url: str) -> dict[str, Any]:
        status, progress = self.state_at(now)
        wire: dict[str, Any] = {
            "id": self.id,
            "created": self.created,
            "model": self.model,
            "object": f"{self.kind}.generation.task",
            "type": self.kind,
            "status": status,
            "progress": progress,
            "task_info": {
                "can_cancel": status in ("pending", "processing"),
                "estimated_time": self.estimated_time,
            },
            "usage": {
                "billing_rule": "per_call",
                "credits_reserved": float(self.credits_reserved),
                "user_group": "default",
            },
        }
        if status == "completed":
            wire["results"] = [
                f"{base_url}/results/{self.id}/{i}{self.result_query}" for i in range(self.result_count)
            ]
        elif status == "failed" and self.failure is not None:
            code, message = self.failure
            wire["error"] = {"code": code, "message": message, "type": "task_error"}
        return wire


@dataclass
class FakeUpload:
    data: bytes
    content_type: str
    filename: str


@dataclass(frozen=True)
class CallbackAttempt:
    task_id: str
    status: str  # the task's status in the body sent
    time: float  # clock.monotonic() when sent
    answer: int | None  # the HTTP status received; None when the call failed (refused, timeout)


@dataclass
class _FailRule:
    path_prefix: str
    status: int
    code: str | int
    message: str
    retry_after: str | None
    raw_body: str | None
    remaining: int


@dataclass
class _EveryRule:
    failure: _FailRule  # the error to answer with; its `remaining` is not used
    every: int
    seen: int = 0  # matching requests since fail_every()


@dataclass
class _TaskFailureRule:
    substring: str
    code: str
    message: str


class FakeHold:
    """Requests a fake keeps waiting until the test calls `release()`.

    Lets a test act at the exact moment a request is in flight (e.g. stop the bot while a
    download hangs) instead of guessing with sleeps.
    """

    def __init__(self) -> None:
        self.arrived = asyncio.Event()  # set once a held request is waiting
        self.waiting = 0  # held requests waiting right now
        self._released = asyncio.Event()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def release(self) -> None:
        """Let every waiting request (and any later one) through; the hold is then inactive."""
        self._released.set()

    async def _block(self) -> None:
        self.waiting += 1
        self.arrived.set()
        try:
            await self._released.wait()
        finally:
            self.waiting -= 1


class _Invalid(Exception):
    """A request field breaks a documented rule: answered as 400 invalid_request."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


class FakeEvoLink:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        api_key: str | None = None,
        image_seconds: float = 30.0,
        video_seconds: float = 120.0,
        image_estimate: int = 30,
        video_estimate: int = 120,
        duration_spread: float = 0.0,
        progress_curve_spread: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.api_key = api_key  # None: any non-empty bearer token is accepted
        self.image_seconds = image_seconds
        self.video_seconds = video_seconds
        self.image_estimate = image_estimate
        self.video_estimate = video_estimate
        # Each task takes its kind's seconds x uniform(1 - spread, 1 + spread), and its progress
        # exponent is e^uniform(-curve, +curve): 0 and 0 make every task alike (the tests' default).
        self.duration_spread = duration_spread
        self.progress_curve_spread = progress_curve_spread
        self._random = random.Random(seed)
        # Account state for GET /v1/credits; creates beyond the balance get 402.
        self.starting_credits = Decimal("10000")
        self.key_credit_limit = Decimal("100000")
        # Like EvoLink's CDN: result downloads with a default library User-Agent get 403.
        self.refuse_default_user_agents = True
        # A real video file to serve as every video result; None serves PLACEHOLDER_MP4.
        self.video_result: Path | None = None
        # A query string added to the result links of tasks created from now on (the results are
        # served whatever it says): EvoLink's CDN links are signed, and can be long.
        self.result_link_query = ""
        # Images a task returns beyond the `n` it was asked for (EvoLink charges for what it
        # produces; the bot must never charge a member for more than they asked).
        self.extra_image_results = 0

        self.base_url = ""  # set by start()
        self.requests: list[RecordedRequest] = []
        self.tasks: dict[str, FakeTask] = {}
        self.uploads: dict[str, FakeUpload] = {}
        self._fail_rules: list[_FailRule] = []
        self._every_rules: list[_EveryRule] = []
        self._create_stalls: list[float] = []  # seconds, one entry per stalled create
        self._results_hold: FakeHold | None = None
        # Set by close(): ends stalls early so shutting down never waits for them.
        self._closing = asyncio.Event()
        self._task_failure_rules: list[_TaskFailureRule] = []
        self._runner: web.AppRunner | None = None
        self.callbacks: list[CallbackAttempt] = []
        self._callback_session: aiohttp.ClientSession | None = None
        self._callback_tasks: set[asyncio.Task[None]] = set()

        self.app = web.Application(
            middlewares=[self._middleware], client_max_size=MAX_UPLOAD_BYTES + 64 * 1024
        )
        self.app.add_routes(
            [
                web.post("/v1/images/generations", self._create_image),
                web.post("/v1/videos/generations", self._create_video),
                web.get("/v1/tasks/{task_id}", self._get_task),
                web.get("/v1/credits", self._credits),
                web.post("/api/v1/files/upload/stream", self._upload),
                web.get("/results/{task_id}/{index}", self._result),
                web.get("/uploads/{file_id}", self._uploaded),
            ]
        )

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on loopback only (it accepts any key and serves files: never expose it)."""
        if self._runner is not None:
            raise RuntimeError("FakeEvoLink is already started")
        if host == "localhost":
            host = "127.0.0.1"  # "localhost" may bind ::1 and 127.0.0.1 on different ports
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"FakeEvoLink only listens on loopback addresses, not {host!r}")
        self._closing = asyncio.Event()  # a fresh one: events belong to one event loop
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown_host}:{bound_port}"
        log.debug("fake EvoLink listening on %s", self.base_url)
        return self.base_url

    async def close(self) -> None:
        # Waiting handlers would hold up the runner's shutdown: let them finish first.
        self._closing.set()
        for pending in list(self._callback_tasks):
            pending.cancel()
        await asyncio.gather(*self._callback_tasks, return_exceptions=True)
        if self._callback_session is not None:
            await self._callback_session.close()
            self._callback_session = None
        if self._results_hold is not None:
            self._results_hold.release()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeEvoLink:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- test controls ---------------------------------------------------------------------

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        code: str | int,
        message: str = "Simulated failure",
        *,
        retry_after: str | None = None,
        times: int = 1,
        raw_body: str | None = None,
    ) -> None:
        """The next `times` requests whose path starts with `path_prefix` get this HTTP error,
        in the documented error body (the files-API shape under /api/v1/files), with a
        Retry-After header when given. `raw_body` sends that text as text/html instead, like a
        proxy's error page."""
        if times < 1:
            raise ValueError("times must be at least 1")
        self._fail_rules.append(
            _FailRule(path_prefix, status, code, message, retry_after, raw_body, times)
        )

    def fail_every(
        self,
        path_prefix: str,
        every: int,
        status: int,
        code: str | int,
        message: str = "Simulated failure",
        *,
        retry_after: str | None = None,
    ) -> None:
        """From now on every `every`-th request whose path starts with `path_prefix` (the
        every-th, 2*every-th, ... counted from this call) gets this HTTP error, in the same
        body as `fail_next`: a steady, predictable failure rate for retry logic. A pending
        `fail_next` rule answers first; its requests still count here. Until `stop_failing()`."""
        if every < 1:
            raise ValueError("every must be at least 1")
        failure = _FailRule(path_prefix, status, code, message, retry_after, None, 0)
        self._every_rules.append(_EveryRule(failure, every))

    def stop_failing(self) -> None:
        """Remove every `fail_every` rule (`fail_next` rules stay)."""
        self._every_rules.clear()

    def stall_next_create(self, seconds: float, times: int = 1) -> None:
        """The next `times` create requests (image or video) are processed normally: the task
        is created, recorded in `tasks` and its credits reserved. Only the HTTP answer waits
        `seconds` of real time (not clock time), so a client with a shorter timeout gives up
        although EvoLink accepted the task, and must not assume nothing was created.
        Requests refused before the route (auth, injected failures) are answered at once."""
        if times < 1:
            raise ValueError("times must be at least 1")
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._create_stalls.extend([seconds] * times)

    def hold_results(self) -> FakeHold:
        """Result downloads (GET /results/...) do not answer until `release()` on the returned
        hold; then they are served as usual (from the task's state at that moment). One such
        hold at a time; `close()` releases it."""
        if self._results_hold is not None and not self._results_hold.released:
            raise RuntimeError("a results hold is already active; release it first")
        self._results_hold = FakeHold()
        return self._results_hold

    def fail_tasks_matching(self, substring: str, code: str, message: str) -> None:
        """Tasks created from now on whose prompt contains `substring` end as "failed" with this
        error (partway through their duration) instead of completing."""
        self._task_failure_rules.append(_TaskFailureRule(substring, code, message))

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

    # --- middleware: record, inject failures, authenticate, request ids ------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        request_id = f"req-{secrets.token_hex(8)}"
        body: Any = None
        if request.content_type == "application/json" and request.can_read_body:
            try:
                body = await request.json()  # aiohttp caches the body for the handler
            except (ValueError, web.HTTPException):
                body = None
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                json=body,
                time=self.clock.monotonic(),
                request_id=request_id,
            )
        )
        try:
            response = self._injected_failure(request) or self._check_auth(request)
            if response is None:
                response = await handler(request)
                await self._stall_create(request)
        except web.HTTPException as exc:
            # Unknown routes, wrong methods, oversized bodies: answer in the documented shape.
            code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
            response = self._error(
                request, exc.status, code.get(exc.status, "invalid_request"), exc.reason
            )
        response.headers["x-request-id"] = request_id
        return response

    def _injected_failure(self, request: web.Request) -> web.Response | None:
        # Every fail_every rule counts each matching request, whichever rule answers it.
        due: _FailRule | None = None
        for every_rule in self._every_rules:
            if request.path.startswith(every_rule.failure.path_prefix):
                every_rule.seen += 1
                if due is None and every_rule.seen % every_rule.every == 0:
                    due = every_rule.failure
        for rule in self._fail_rules:
            if rule.remaining > 0 and request.path.startswith(rule.path_prefix):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._fail_rules.remove(rule)
                return self._failure_response(request, rule)
        return self._failure_response(request, due) if due is not None else None

    def _failure_response(self, request: web.Request, rule: _FailRule) -> web.Response:
        headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
        if rule.raw_body is not None:
            return web.Response(
                status=rule.status,
                text=rule.raw_body,
                content_type="text/html",
                headers=headers,
            )
        return self._error(request, rule.status, rule.code, rule.message, headers=headers)

    async def _stall_create(self, request: web.Request) -> None:
        if self._create_stalls and request.method == "POST" and request.path in _CREATE_PATHS:
            seconds = self._create_stalls.pop(0)
            try:
                await asyncio.wait_for(self._closing.wait(), seconds)  # a sleep that close() ends
            except TimeoutError:
                pass

    def _check_auth(self, request: web.Request) -> web.Response | None:
        # Results and uploads are served like a CDN: no key (and clients must never send it).
        if not request.path.startswith(("/v1/", "/api/")):
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self._error(
                request, 401, "unauthorized", "Missing Authorization: Bearer <api key> header"
            )
        if self.api_key is not None and token != self.api_key:
            # Never echo the key back.
            return self._error(request, 401, "unauthorized", "Invalid or expired API key")
        return None

    def _error(
        self,
        request: web.Request,
        status: int,
        code: str | int,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        if request.path.startswith("/api/v1/files"):
            # The files host has its own shape: {"success": false, "code": <int>, "msg": ...}.
            body: dict[str, Any] = {
                "success": False,
                "code": code if isinstance(code, int) else status,
                "msg": message,
            }
        else:
            body = {
                "error": {
                    "code": code,
                    "message": message,
                    "type": _ERROR_TYPES.get(status, "api_error"),
                    "param": param,
                }
            }
        return web.json_response(body, status=status, headers=headers)

    def _public_base(self, request: web.Request) -> str:
        # Under pytest-aiohttp's test server start() is not called: use the request's origin.
        return self.base_url or str(request.url.origin())

    # --- API routes ---------------------------------------------------------------------------

    async def _create_image(self, request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            _model(body, IMAGE_MODEL)
            prompt = _prompt(body, 2000)
            width, height = _size(body)
            n = _int_field(body, "n", default=1, allowed=range(1, 5))
            prompt_extend = _bool_field(body, "prompt_extend", default=True)
            callback_url = _callback_url(body)
        except _Invalid as exc:
            return self._error(request, 400, "invalid_request", exc.message, param=exc.param)
        return self._create_task(
            request,
            FakeTask(
                id="",
                kind="image",
                model=IMAGE_MODEL,
                prompt=prompt,
                created=0,
                started_at=0.0,
                duration=self.image_seconds,
                estimated_time=self.image_estimate,
                credits_reserved=IMAGE_CREDITS * n,
                result_count=n + self.extra_image_results,
                size=(width, height),
                prompt_extend=prompt_extend,
                callback_url=callback_url,
            ),
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
                failure=self._input_image_problem(request, image_url),
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
            for rule in self._task_failure_rules:
                if rule.substring in task.prompt:
                    task.failure = (rule.code, rule.message)
                    break
        self.tasks[task.id] = task
        base_url = self._public_base(request)
        if task.callback_url is not None:
            self._spawn_callback(task, base_url)
        return web.json_response(task.to_wire(task.started_at, base_url))

    # --- callbacks ----------------------------------------------------------------------------

    def _spawn_callback(self, task: FakeTask, base_url: str) -> None:
        pending = asyncio.create_task(self._call_back(task, base_url), name=f"callback-{task.id}")
        self._callback_tasks.add(pending)
        pending.add_done_callback(self._callback_tasks.discard)

    async def _call_back(self, task: FakeTask, base_url: str) -> None:
        """When the task ends, POST it to its callback_url like EvoLink: one try and three retries."""
        assert task.callback_url is not None
        await self.clock.sleep(task.ends_at - self.clock.monotonic())
        if self._callback_session is None:
            self._callback_session = aiohttp.ClientSession(headers={"User-Agent": "EvoLink-Callback"})
        for retry_delay in (*CALLBACK_RETRY_DELAYS, None):
            now = self.clock.monotonic()
            body = task.to_wire(now, base_url)
            answer: int | None = None
            try:
                async with self._callback_session.post(
                        task.callback_url, json=body, timeout=CALLBACK_TIMEOUT) as response:
                    answer = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.debug("callback for %s failed: %s", task.id, exc)
            self.callbacks.append(CallbackAttempt(task.id, body["status"], now, answer))
            if (answer is not None and answer < 500 and answer != 429) or retry_delay is None:
                return  # delivered, or refused for good (4xx), or out of retries
            await self.clock.sleep(retry_delay)

    def _input_image_problem(self, request: web.Request, image_url: str) -> tuple[str, str] | None:
        """Check an input image the fake itself hosts (its own uploads), like EvoLink would on
        download. Other URLs are accepted unchecked: the fake never reaches out to the network."""
        url = URL(image_url)
        own = URL(self._public_base(request))
        if url.origin() != own.origin() or not url.path.startswith("/uploads/"):
            return None
        upload = self.uploads.get(url.path.removeprefix("/uploads/"))
        if upload is None:
            return "image_processing_error", "The input image could not be downloaded"
        try:
            with Image.open(io.BytesIO(upload.data)) as image:
                width, height = image.size
        except Exception:  # Pillow raises many types for undecodable data
            return "image_processing_error", "The input image format is not supported"
        if not (360 <= width <= 2000 and 360 <= height <= 2000):
            return (
                "image_dimension_mismatch",
                f"Input image is {width}x{height}; width and height must be within 360..2000 px",
            )
        return None

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

    async def _upload(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            return self._error(request, 400, 400, "file: send multipart/form-data with a 'file'")
        form = await request.post()
        part = form.get("file")
        if not isinstance(part, web.FileField):
            return self._error(request, 400, 400, "file: the multipart field 'file' is required")
        data = part.file.read()
        if not data:
            return self._error(request, 400, 400, "file: the uploaded file is empty")
        if part.content_type not in UPLOAD_TYPES:
            return self._error(
                request, 400, 400, f"file: unsupported type {part.content_type!r} "
                "(jpeg, png, gif or webp)"
            )
        file_id = f"file_{secrets.token_hex(12)}"
        self.uploads[file_id] = FakeUpload(data, part.content_type, part.filename or file_id)
        now = self.clock.now()
        return web.json_response(
            {
                "success": True,
                "code": 200,
                "msg": "File uploaded successfully",
                "data": {
                    "file_id": file_id,
                    "file_name": part.filename or file_id,
                    "original_name": part.filename or file_id,
                    "file_size": len(data),
                    "mime_type": part.content_type,
                    "file_url": f"{self._public_base(request)}/uploads/{file_id}",
                    "upload_time": _iso(now),
                    "expires_at": _iso(now + UPLOAD_LIFETIME),
                },
            }
        )

    # --- "CDN" routes (no auth) -------------------------------------------------------------------

    async def _result(self, request: web.Request) -> web.Response:
        hold = self._results_hold
        if hold is not None and not hold.released:
            await hold._block()
        if self.refuse_default_user_agents and _is_default_user_agent(
            request.headers.get("User-Agent", "")
        ):
            return self._error(
                request, 403, "forbidden", "Default library User-Agent refused; send your own"
            )
        task = self.tasks.get(request.match_info["task_id"])
        try:
            index = int(request.match_info["index"])
        except ValueError:
            index = -1
        if (
            task is None
            or task.state_at(self.clock.monotonic())[0] != "completed"
            or not 0 <= index < task.result_count
        ):
            return self._error(request, 404, "not_found", "No such result")
        if task.kind == "video":
            if self.video_result is not None:
                # A real file chosen by the test or the demo (e.g. a 30 MB MP4), streamed from disk.
                return web.FileResponse(self.video_result, headers={"Content-Type": "video/mp4"})
            return web.Response(body=PLACEHOLDER_MP4, content_type="video/mp4")
        assert task.size is not None
        # Off the event loop: a large PNG takes a few milliseconds; cached after the first call.
        png = await asyncio.to_thread(render_png, task.size[0], task.size[1], index)
        return web.Response(body=png, content_type="image/png")

    async def _uploaded(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return self._error(request, 404, "not_found", "No such file")
        return web.Response(body=upload.data, content_type=upload.content_type)


# --- result images ------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def render_png(width: int, height: int, seed: int = 0) -> bytes:
    """A real, non-blank PNG of exactly width x height: a 16x16 grid of colours forming a
    two-axis gradient (the blue channel varies with `seed` so images of one task differ).

    Built as a 16x16 palette image scaled up with nearest-neighbour: large flat areas in
    palette mode encode in milliseconds even at 1440x1440. No alpha channel, so it is also a
    valid video input image.
    """
    tile = Image.new("P", (16, 16))
    tile.putdata(range(256))
    palette: list[int] = []
    for i in range(256):
        x, y = i % 16, i // 16
        palette += [x * 17, y * 17, (96 + seed * 53) % 256]
    tile.putpalette(palette)
    image = tile.resize((width, height), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


# --- validation helpers ---------------------------------------------------------------------------


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _Invalid("body", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _Invalid("body", "The request body must be a JSON object")
    return body


def _model(body: dict[str, Any], expected: str) -> None:
    if body.get("model") != expected:
        raise _Invalid("model", f"model must be {expected!r}")


def _prompt(body: dict[str, Any], limit: int) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _Invalid("prompt", "prompt is required")
    if len(prompt) > limit:
        raise _Invalid("prompt", f"prompt must be at most {limit} characters")
    return prompt


def _size(body: dict[str, Any]) -> tuple[int, int]:
    size = body.get("size", "1280x1280")
    match = _SIZE_RE.fullmatch(size) if isinstance(size, str) else None
    if match is None:
        raise _Invalid("size", "size must be 'WxH' in pixels, e.g. '1280x1280'")
    width, height = int(match[1]), int(match[2])
    if not 768 * 768 <= width * height <= 1440 * 1440:
        raise _Invalid("size", "size: W*H must be between 768*768 and 1440*1440")
    if not (width * 4 >= height and height * 4 >= width):
        raise _Invalid("size", "size: the aspect ratio W/H must be between 1/4 and 4")
    return width, height


def _int_field(body: dict[str, Any], name: str, *, default: int, allowed: Any) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        choices = (
            f"{allowed.start}..{allowed.stop - 1}"
            if isinstance(allowed, range)
            else " or ".join(map(str, allowed))
        )
        raise _Invalid(name, f"{name} must be an integer, {choices}")
    return value


def _bool_field(body: dict[str, Any], name: str, *, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise _Invalid(name, f"{name} must be a boolean")
    return value


def _callback_url(body: dict[str, Any]) -> str | None:
    value = body.get("callback_url")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("callback_url", "callback_url must be an HTTPS URL")
    url = URL(value)
    # EvoLink wants HTTPS on a public host; loopback over http is this fake's allowance for tests.
    if url.scheme != "https" and not (url.scheme == "http" and _is_loopback_host(url.host)):
        raise _Invalid("callback_url", "callback_url must be an HTTPS URL")
    return value


def _is_loopback_host(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _image_urls(body: dict[str, Any]) -> str:
    urls = body.get("image_urls")
    if (
        not isinstance(urls, list)
        or len(urls) != 1
        or not isinstance(urls[0], str)
        or not urls[0].startswith(("http://", "https://"))
    ):
        raise _Invalid("image_urls", "image_urls must be a list of exactly 1 image URL")
    return urls[0]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _progress(fraction: float, exponent: float = 1.0) -> int:
    # Over the processing phase (after PENDING_FRACTION); 100 only once completed.
    share = max(0.0, (fraction - PENDING_FRACTION) / (1.0 - PENDING_FRACTION))
    return max(0, min(99, int(share**exponent * 100)))


def _is_default_user_agent(user_agent: str) -> bool:
    agent = user_agent.strip().lower()
    # aiohttp sends "Python/3.x aiohttp/3.y"; requests "python-requests/..."; urllib
    # "Python-urllib/...".
    return not agent or agent.startswith(("python/", "python-", "aiohttp"))


__all__ = [
    "CallbackAttempt",
    "FakeEvoLink",
    "FakeHold",
    "FakeTask",
    "FakeUpload",
    "RecordedRequest",
    "render_png",
    "PLACEHOLDER_MP4",
]
