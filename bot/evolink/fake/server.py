"""The fake EvoLink server: its settings and state, lifecycle on loopback, the middleware that
records every request, injects failures, checks the key and stamps an `x-request-id`, and the
route table assembling the task and file routes."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import secrets
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from bot.clock import Clock
from bot.evolink.fake.faults import FakeHold, _EveryRule, _FailRule, _TaskFailureRule
from bot.evolink.fake.files import MAX_UPLOAD_BYTES, FileRoutes
from bot.evolink.fake.models import CallbackAttempt, FakeTask, FakeUpload, RecordedRequest
from bot.evolink.fake.tasks import TaskRoutes

log = logging.getLogger("bot.evolink.fake")


class FakeEvoLink(TaskRoutes, FileRoutes):
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
        input_origins: Iterable[str] = (),
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
        # Base URLs whose input pictures the fake downloads and checks as EvoLink would (e.g. the
        # fake Discord's, or Discord's media hosts in demo mode); a picture anywhere else passes
        # unchecked, so the fake never reaches an address it was not given.
        self.input_origins = tuple(input_origins)

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
        self._input_session: aiohttp.ClientSession | None = None  # created by start()

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
        self._input_session = aiohttp.ClientSession(headers={"User-Agent": "EvoLink-Fetch"})
        bound_port = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown_host}:{bound_port}"
        log.debug("fake EvoLink listening on %s", self.base_url)
        return self.base_url

    async def close(self) -> None:
        # Waiting handlers would hold up the runner's shutdown: let them finish first.
        self._closing.set()
        await self._stop_callbacks()
        if self._input_session is not None:
            # Before the runner: a create still fetching its input then ends at once.
            await self._input_session.close()
            self._input_session = None
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
