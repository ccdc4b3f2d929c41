"""The fake Discord's server: its settings and state, lifecycle on loopback, the route table that
assembles the route groups, and the middleware that records every request, checks its body and
applies rate limits and faults before the route answers."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakes.discord.bodies import body_errors
from tests.fakes.discord.faults import Faults, Hold, _DropRule, _FailRule, _HoldRule
from tests.fakes.discord.gateway import _GatewaySession
from tests.fakes.discord.ids import DEFAULT_APPLICATION_ID
from tests.fakes.discord.interactions import InteractionRoutes
from tests.fakes.discord.messages import MiB
from tests.fakes.discord.models import (
    FakeGuild,
    FakeMessage,
    IdentifyRecord,
    InteractionRecord,
    RecordedFile,
    RecordedRequest,
)
from tests.fakes.discord.rate_limits import (
    RATE_LIMIT_RULES,
    RateLimitHit,
    RateLimitRule,
    RateLimits,
    _rate_limit_headers,
    _rate_limited_response,
    _RateLimiter,
)
from tests.fakes.discord.rest import RestRoutes
from tests.fakes.discord.wire import _REC, API_PREFIX, _invalid_form_body, _json, _Reject


class FakeDiscord(InteractionRoutes, RestRoutes, Faults, RateLimits):
    """Fake Discord REST API and gateway on one loopback aiohttp server.

    Each route group is a mixin in its own module (interactions, rest, messages, gateway, faults,
    rate_limits); they share the state set up here.
    """

    def __init__(
        self,
        *,
        application_id: int = DEFAULT_APPLICATION_ID,
        bot_user_id: int | None = None,
        guilds: list[FakeGuild] | None = None,
        shard_count: int = 1,
        max_concurrency: int = 1,
        identify_rate_limit: bool = False,
        rate_limits: bool = False,
    ) -> None:
        self.application_id = application_id
        # Modern applications have bot user id == application id.
        self.bot_user_id = bot_user_id if bot_user_id is not None else application_id
        self.bot_username = "FakeBot"
        self.guilds: dict[int, FakeGuild] = {g.id: g for g in (guilds if guilds is not None else [FakeGuild()])}
        # What GET /gateway/bot reports: the recommended shard count, and how many IDENTIFYs may
        # start sessions per 5 s (one per bucket, bucket = shard_id % max_concurrency).
        self.shard_count = shard_count
        self.max_concurrency = max_concurrency

        # Recorded state, for assertions.
        self.requests: list[RecordedRequest] = []
        self.messages: dict[int, FakeMessage] = {}
        self.interaction_responses: dict[int, InteractionRecord] = {}
        self.commands: dict[int | None, list[dict]] = {}
        self.gateway_received: list[dict] = []  # every op the bot sent (heartbeats included)
        self.identifies: list[IdentifyRecord] = []  # every IDENTIFY, with its shard and time

        # Rules, adjustable per test.
        self.attachment_size_limit = 10 * MiB
        self.interaction_ack_window = 3.0  # seconds for the first callback
        self.token_lifetime = 15 * 60.0  # seconds an interaction token stays valid
        self.valid_token: str | None = None  # when set, any other bot token gets 401
        self.heartbeat_interval_ms = 41250
        self.nonce_window = 5 * 60.0  # seconds a nonce dedupes a repeated channel send
        # Discord's IDENTIFY limit (off by default; settable any time): an IDENTIFY that arrives
        # less than identify_interval seconds after the last accepted one of its bucket gets
        # INVALID_SESSION (op 9, d=false) instead of READY; the client must identify again later.
        self.identify_rate_limit = identify_rate_limit
        self.identify_interval = 5.0
        # Discord-like rate limits (off by default; settable any time). See RATE_LIMIT_RULES.
        self.rate_limits = rate_limits
        self.rate_limit_rules: dict[str, RateLimitRule] = dict(RATE_LIMIT_RULES)
        self.rate_limited: list[RateLimitHit] = []  # every 429 the limiter answered, for benchmarks

        self._by_token: dict[str, InteractionRecord] = {}
        self._fail_rules: list[_FailRule] = []
        self._hold_rules: list[_HoldRule] = []
        self._drop_rules: list[_DropRule] = []
        self._redirects: dict[int, str] = {}  # attachment id -> where its URL redirects to
        self._holds: list[Hold] = []  # every hold handed out, released on close()
        self._rate_limiter = _RateLimiter()
        self._denied: dict[int, set[str]] = {}  # channel id -> permissions the bot lacks there
        self._refused_dms: set[int] = set()  # users whose DMs refuse the bot
        self._dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self._channel_guild: dict[int, int | None] = {}  # channel id -> guild id (None = DM)
        self._command_ids: dict[tuple[str, int], int] = {}  # (name, type) -> stable id
        self._blobs: dict[int, RecordedFile] = {}  # attachment id -> bytes served at its URL
        self._sessions: list[_GatewaySession] = []
        self._resumable: dict[str, int] = {}  # session id -> last seq
        self._identified = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        for guild in self.guilds.values():
            for channel in guild.channels:
                self._channel_guild[channel.id] = guild.id

    # ------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if not _is_loopback(host):
            raise ValueError(f"FakeDiscord only listens on loopback, not {host!r}")
        # Large body limit so oversized uploads reach our 413 logic instead of aiohttp's.
        app = web.Application(middlewares=[self._middleware], client_max_size=512 * MiB)
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        for hold in self._holds:  # a withheld answer would hold up the runner's shutdown
            hold.release()
        for session in list(self._sessions):
            await session.ws.close(code=1001, message=b"fake discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ routing

    def _add_routes(self, app: web.Application) -> None:
        api = API_PREFIX
        tok = "/webhooks/{app_id}/{token}"
        r = app.router
        r.add_get("/gateway", self._gateway_ws)
        r.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._get_attachment)
        r.add_get(api + "/users/@me", self._get_me)
        r.add_get(api + "/oauth2/applications/@me", self._get_application)
        r.add_get(api + "/gateway/bot", self._get_gateway_bot)
        r.add_get(api + "/gateway", self._get_gateway)
        r.add_post(api + "/interactions/{interaction_id}/{token}/callback", self._interaction_callback)
        r.add_post(api + tok, self._followup)
        for method in ("GET", "PATCH", "DELETE"):
            r.add_route(method, api + tok + "/messages/{message_id}", self._token_message)
            r.add_route(method, api + "/channels/{channel_id}/messages/{message_id}", self._channel_message)
        r.add_post(api + "/channels/{channel_id}/messages", self._channel_send)
        r.add_get(api + "/channels/{channel_id}", self._get_channel)
        r.add_post(api + "/users/@me/channels", self._create_dm)
        for method in ("GET", "PUT"):
            r.add_route(method, api + "/applications/{app_id}/commands", self._commands)
            r.add_route(method, api + "/applications/{app_id}/guilds/{guild_id}/commands", self._commands)

    # ------------------------------------------------------------ the middleware: record, check, limit, fault

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path == "/gateway" and request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        rec = await self._record(request)
        limit = self._rate_limit(request, rec) if self.rate_limits else None
        if limit is not None and limit.refused:
            # Refused before fail rules and holds are taken: a rate-limited request has no effect.
            rec.status, rec.rate_limited = 429, True
            self.rate_limited.append(RateLimitHit(rec.route, limit.kind, rec.time))
            return _rate_limited_response(limit, time.monotonic())
        drop = self._take_drop_rule(rec)
        if drop is not None and not drop.after_applying:
            return self._drop_connection(request, rec)
        rule = self._take_fail_rule(rec)
        hold: Hold | None = None
        if rule is not None:
            rec.injected = True
            response = self._injected_response(rule)
        else:
            hold = self._take_hold(rec)
            try:
                self._check_body(request, rec)
                response = await handler(request)
            except _Reject as reject:
                response = reject.response
            except web.HTTPException as exc:
                # Unknown route or method: answer like Discord, and keep the record so tests notice.
                response = _json(exc.status, {"code": 0, "message": f"{exc.status}: {exc.reason}"})
        if drop is not None:
            return self._drop_connection(request, rec)
        rec.status = response.status
        if limit is not None:
            # A fail_next answer counted in the buckets too (Discord saw the request) and keeps any
            # X-RateLimit headers the test gave it.
            for name, value in _rate_limit_headers(limit, time.monotonic()).items():
                response.headers.setdefault(name, value)
        if hold is not None:
            # The effect is applied; the answer waits. If the client gave up meanwhile, aiohttp
            # drops the late answer quietly (handlers are not cancelled on disconnect).
            await hold._block()
        return response

    async def _record(self, request: web.Request) -> RecordedRequest:
        body_json: Any = None
        files: list[RecordedFile] = []
        if request.content_type == "multipart/form-data":
            body_json, files = await _read_multipart(request)
        elif request.can_read_body:
            raw = await request.read()
            if raw and request.content_type == "application/json":
                try:
                    body_json = json.loads(raw)
                except ValueError:
                    body_json = None
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        rec = RecordedRequest(
            method=request.method,
            path=_strip_prefix(request.path),
            query=dict(request.query),
            json=body_json,
            files=files,
            time=time.monotonic(),
            route=f"{request.method} {_strip_prefix(canonical)}",
            headers=dict(request.headers),
        )
        self.requests.append(rec)
        request[_REC] = rec
        return rec

    @staticmethod
    def _check_body(request: web.Request, rec: RecordedRequest) -> None:
        """Discord checks a body before anything else: against its OpenAPI schema and its limits
        (bodies.py). A multipart body without payload_json carries only files."""
        body = rec.json if rec.json is not None or request.content_type != "multipart/form-data" else {}
        errors = body_errors(rec.route, rec.path, body)
        if errors:
            rec.form_errors = errors
            raise _invalid_form_body(errors)


# --------------------------------------------------------------------------- request parsing


async def _read_multipart(request: web.Request) -> tuple[Any, list[RecordedFile]]:
    """payload_json plus files[n] parts, as discord.py sends them (http.py handle_message_parameters)."""
    payload: Any = None
    indexed: list[tuple[int, RecordedFile]] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        name = part.name or ""
        if name == "payload_json":
            payload = json.loads(await part.text())
            continue
        data = bytes(await part.read(decode=False))
        match = re.fullmatch(r"files\[(\d+)\]", name)
        index = int(match.group(1)) if match else len(indexed)
        indexed.append((index, RecordedFile(part.filename or name, part.headers.get("Content-Type"), data)))
    # Keep list position == files[n] index, so attachments {"id": n} map to files[n].
    return payload, [f for _, f in sorted(indexed, key=lambda pair: pair[0])]


def _strip_prefix(path: str) -> str:
    return path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
